"""Converters: linalg family."""
