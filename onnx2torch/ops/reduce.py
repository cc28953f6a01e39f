"""Converters: reduce family."""
