"""Converters: attention family."""
