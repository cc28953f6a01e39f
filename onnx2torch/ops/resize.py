"""Converters: resize family."""
