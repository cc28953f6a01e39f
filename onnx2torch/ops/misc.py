"""Converters: misc family."""
