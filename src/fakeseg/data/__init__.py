"""Data: paired datasets, composites and the built-in demo dataset."""
