# Two set-up commands: `make demo` runs the pipeline on the embedded default; `make test` runs the tests.
SHELL := /bin/bash
ENV := . scripts/env.sh &&

.PHONY: install airflow-db demo test test-deps test-fast lint suites lock clean

install:
	scripts/bootstrap.sh

airflow-db: install
	$(ENV) mkdir -p "$$AIRFLOW_HOME" && airflow db migrate >/dev/null && \
	  airflow pools set mlops_promotion 1 "one alias writer at a time (promote / rollback)" >/dev/null

demo: airflow-db
	$(ENV) python scripts/demo.py $(DEMO_ARGS)

# Airflow's web UI on the embedded default (scripts/ui.py): api-server, scheduler, dag-processor and triggerer
# on the SQLite state, 127.0.0.1 only; prints the URL and the admin password. UI_ARGS="--port 8081".
.PHONY: ui
ui: airflow-db
	$(ENV) python scripts/ui.py $(UI_ARGS)

# .pre-commit-config.yaml (local hooks: ruff with the import contracts) over the whole tree, offline.
lint: install
	PRE_COMMIT_HOME="$(CURDIR)/.mlops/pre-commit" .venv/bin/pre-commit run --all-files --show-diff-on-failure

# What CI runs (.ci/run = start PostgreSQL and Redis if stopped, then this). MLOPS_REQUIRE_ALL_TESTS=1 turns a
# test that would skip for something missing (a tool, a service) into a failure (tests/conftest.py).
test: lint test-deps
	$(ENV) MLOPS_REQUIRE_ALL_TESTS=1 python -m pytest -q --durations=15 tests; rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

# System tools of the tests (chromium, chromium-driver, docker-compose): installed if missing, or a clear error.
test-deps:
	scripts/test-deps.sh

test-fast: install
	$(ENV) python -m pytest -q --durations=15 -m "not slow and not integration and not stack and not faults" tests

suites: install
	$(ENV) python -m mlops_provider.io.validation

lock:
	uv pip compile requirements.in -p 3.11 -o requirements.txt

clean:
	rm -rf .mlops

# Production topology without Docker (scripts/stack.py): real services on 127.0.0.1, CeleryExecutor, 2 workers.
.PHONY: stack-up stack-down stack-status stack-deps test-stack

stack-deps:
	scripts/stack-deps.sh

stack-up: install stack-deps
	$(ENV) python scripts/stack.py up $(STACK_ARGS)

stack-down:
	$(ENV) python scripts/stack.py down

stack-status:
	$(ENV) python scripts/stack.py status

test-stack: install test-deps
	$(ENV) MLOPS_REQUIRE_ALL_TESTS=1 python -m pytest -q -m stack tests/integration/stack

# Benchmarks (issue 6): JSON in bench/results/, tables in docs/performance.md. BENCH_ARGS="--only parse,drift".
.PHONY: bench bench-quick
bench: install
	$(ENV) python -m bench.run $(BENCH_ARGS)

bench-quick: install
	$(ENV) python -m bench.run --quick $(BENCH_ARGS)
