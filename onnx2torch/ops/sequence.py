"""Converters: sequence family."""
