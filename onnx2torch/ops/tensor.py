"""Converters: tensor family."""
