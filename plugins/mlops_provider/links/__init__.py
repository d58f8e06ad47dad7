"""Links of the MLOps provider."""
