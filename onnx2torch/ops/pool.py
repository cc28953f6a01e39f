"""Converters: pool family."""
