"""Airflow-free logic of each pipeline stage; operators are thin wrappers around it."""
