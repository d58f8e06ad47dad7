# Environment of the embedded default: source it (`. scripts/env.sh`) before `airflow ...` commands.
REPO="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
export MLOPS_REPO_ROOT="$REPO"
export MLOPS_HOME="${MLOPS_HOME:-$REPO/.mlops}"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$MLOPS_HOME/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$REPO/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-sqlite:///$AIRFLOW_HOME/airflow.db}"
export FEAST_USAGE=False
export GX_ANALYTICS_ENABLED=False
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$REPO/.venv/bin:$PATH"
