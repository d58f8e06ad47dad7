"""Hooks of the MLOps provider."""
