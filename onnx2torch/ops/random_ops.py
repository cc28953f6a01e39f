"""Converters: random_ops family."""
