"""Adapters to storage and services: lake, sources, model store (MLflow), feature store (Feast), validation (GX), email."""
