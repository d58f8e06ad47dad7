"""Airflow provider for production ML pipelines (``airflow-provider-mlops``)."""

__version__ = "0.1.0"
