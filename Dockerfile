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
# The build's egg-info beside the package would make Airflow load the provider's plugin twice (scripts/bootstrap.sh).
RUN pip install --no-cache-dir --no-deps -e /opt/airflow/project && rm -rf /opt/airflow/project/plugins/*.egg-info

# Directories docker-compose.yaml mounts named volumes on: Docker initialises an empty named volume from the
# image's directory, owner and mode included, so they must exist here owned by the runtime user (50000:0, group
# writable for an AIRFLOW_UID override); otherwise they start root-owned 0755 and airflow-init cannot write
# its password file. tests/integration/stack/test_image_layout.py checks every mount against this line.
USER root
RUN install -d -o 50000 -g 0 -m 2775 /opt/airflow/auth /opt/airflow/mlops /opt/airflow/logs
USER airflow

ENV PYTHONPATH=/opt/airflow/project \
    MLOPS_REPO_ROOT=/opt/airflow/project \
    MLOPS_HOME=/opt/airflow/mlops
