"""Parsing: line formats, timestamps and levels, and the batch that carries them."""
