"""Converters: loss family."""
