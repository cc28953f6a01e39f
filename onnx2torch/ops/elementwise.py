"""Converters: elementwise family."""
