"""Evaluation: pixel- and image-level metrics (see :mod:`fakeseg.evaluation.metrics`)."""
