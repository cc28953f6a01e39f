"""Converters: rnn family."""
