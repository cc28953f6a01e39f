"""Converters: conv family."""
