"""Pure policy: lake layout, features, metrics, drift verdicts, promotion and retrain decisions, alerts, errors.

Nothing here reads or writes storage or imports Airflow; every function works on values and frames.
"""
