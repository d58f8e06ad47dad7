"""What the tests, the benchmarks and the demo share, and nothing the platform runs on.

``simulation`` drives the DAGs day by day as the scheduler would (``scripts/demo.py``, ``tests/e2e``,
``bench/chain.py``); ``datagen`` makes the deterministic sample data of the bundled projects, with its
bad-data and drift scenarios; ``stack`` and ``airflow_api`` bring up and drive a ``scripts/stack.py``
production stack of its own (the stack tests, ``bench/alert.py``); ``services`` says where the local
PostgreSQL and Redis are and which Redis db index each of those users owns. The provider
(``plugins/mlops_provider``) and the DAGs never import it (a ruff ``banned-api`` rule, see pyproject.toml):
a deployment ships ``plugins/``, ``dags/`` and ``include/`` without it.
"""
