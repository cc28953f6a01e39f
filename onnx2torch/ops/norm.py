"""Converters: norm family."""
