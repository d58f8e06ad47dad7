# Airflow image of the production stack (docker-compose.yaml): Airflow 3.3.2 + the pinned requirements
# + the provider and the project (DAGs, configs, suites). The MLflow server service reuses it.
FROM apache/airflow:3.3.2-python3.11

COPY --chown=airflow:root requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt

COPY --chown=airflow:root pyproject.toml README.md /opt/airflow/project/
COPY --chown=airflow:root plugins /opt/airflow/project/plugins
COPY --chown=airflow:root dags /opt/airflow/project/dags
COPY --chown=airflow:root include /opt/airflow/project/include
COPY --chown=airflow:root docs /opt/airflow/project/docs
COPY --chown=airflow:root airflow_settings.yaml /opt/airflow/project/
RUN pip install --no-cache-dir --no-deps -e /opt/airflow/project

ENV PYTHONPATH=/opt/airflow/project \
    MLOPS_REPO_ROOT=/opt/airflow/project \
    MLOPS_HOME=/opt/airflow/mlops
