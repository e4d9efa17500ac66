"""Inference: the trained model as a user-facing object, and bulk prediction over folders."""
