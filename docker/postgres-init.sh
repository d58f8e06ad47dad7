#!/bin/bash
# First start of the compose PostgreSQL: one role and database per consumer, passwords from the
# environment (.env). Runs once, when the data volume is empty.
set -euo pipefail
for name in airflow mlflow feast source state; do
  var="$(echo "$name" | tr '[:lower:]' '[:upper:]')_DB_PASSWORD"
  password="${!var:?$var is not set}"
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
       -v role="mlops_$name" -v password="$password" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"role" OWNER :"role";
SQL
done
