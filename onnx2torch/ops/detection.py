"""Converters: detection family."""
