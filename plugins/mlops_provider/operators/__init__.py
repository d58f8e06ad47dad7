"""Operators of the MLOps provider."""
