"""Converters: shape family."""
