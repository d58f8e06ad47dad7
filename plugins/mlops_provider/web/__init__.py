"""The provider's pages in the Airflow UI's own web server: reports, GX Data Docs and the runbook over http(s)."""
