"""Converters: sampling family."""
