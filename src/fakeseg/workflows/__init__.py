"""Workflows: the multi-step jobs that train, evaluate and report together (benchmark, demo)."""
