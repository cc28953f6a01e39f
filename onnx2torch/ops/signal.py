"""Converters: signal family."""
