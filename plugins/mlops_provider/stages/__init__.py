"""One entry per pipeline stage (``run_*``), composed from ``domain`` and ``io``; no Airflow here."""
