# The two commands of the README: `make demo` (a real rotation, locally) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export PYTHONPATH := $(CURDIR)/layers/rotation_core:$(CURDIR)/tools

.PHONY: help demo demo-alternating test test-unit test-integration lint format invoke clean

help:
	@echo "make demo               rotate a throwaway PostgreSQL user end to end (no AWS, no Docker)"
	@echo "make demo-alternating   the same with ROTATION_STRATEGY=alternating_users"
	@echo "make test               the whole test suite (unit + integration against real servers)"
	@echo "make test-unit          unit tests only (no servers, no network)"
	@echo "make lint               ruff and mypy"
	@echo "make bench              benchmarks (BENCH_ARGS=\"--repeats 7 --fleet 1,10,100,1000\")"
	@echo "make invoke FUNCTION=functions/postgres EVENT=events/... ENDPOINT=http://127.0.0.1:5000"
	@echo "                        run a handler on an event, like sam local invoke, without Docker"

$(PY): requirements-dev.txt
	@tools/bootstrap.sh venv $(VENV) $(PYTHON)

.PHONY: venv postgres
venv: $(PY)
	@tools/bootstrap.sh venv $(VENV) $(PYTHON)

postgres: venv
	@tools/bootstrap.sh postgres $(VENV)

demo: postgres
	$(PY) -m rotation_local demo

demo-alternating: postgres
	$(PY) -m rotation_local demo --strategy alternating_users --rotations 3

test: postgres
	$(PY) -m pytest

test-unit: venv
	$(PY) -m pytest tests/unit

test-integration: postgres
	$(PY) -m pytest tests/integration

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: venv
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

invoke: venv
	$(PY) -m rotation_local invoke --function $(FUNCTION) --event $(EVENT) \
		$(if $(ENV_VARS),--env-vars $(ENV_VARS)) $(if $(ENDPOINT),--endpoint $(ENDPOINT))

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .aws-sam
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

.PHONY: bench
bench: postgres
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-bench.txt
	$(PY) bench/run.py $(BENCH_ARGS)
