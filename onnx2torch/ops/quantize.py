"""Converters: quantize family."""
