# The two commands of the README: `make demo` (a real rotation, locally) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export PYTHONPATH := $(CURDIR)/layers/rotation_core:$(CURDIR)/tools

.PHONY: help demo demo-alternating test test-unit test-integration lint format invoke clean template verified-table \
	rds-ca-bundle

help:
	@echo "make demo               rotate throwaway PostgreSQL and MariaDB users and fake Datadog keys (no AWS, no Docker)"
	@echo "make demo-alternating   the databases with ROTATION_STRATEGY=alternating_users, three rotations"
	@echo "make local-env          what the sample events need, on loopback, until Ctrl-C (PORT=0: a free port);"
	@echo "                        make local-env-status, make local-env-restage FUNCTION_NAME=... in another terminal"
	@echo "make test               the whole test suite (unit + integration against real servers)"
	@echo "                        ROTATION_TEST_SERVERS=postgres-17,mysql-* make test: only those database servers"
	@echo "make test-unit          unit tests only (no servers, no network)"
	@echo "make lint               ruff and mypy"
	@echo "make template           regenerate template.yaml and events/ from the engine registry"
	@echo "make verified-table     write the last full test run's figures into docs/ (verified.md, security.md)"
	@echo "make rds-ca-bundle      refresh the layer's Amazon RDS CA bundle from AWS (needs internet access)"
	@echo "make provider-definitions  refresh the providers' API definition extracts (needs internet access)"
	@echo "make release-artifacts  the release files in dist/ (both architectures, SBOM, SHA256SUMS); publishes nothing"
	@echo "make release-sizes      write the sizes of dist/'s files into docs/ (after make release-artifacts)"
	@echo "make deploy             sam build + sam deploy from this clone, for the Architecture samconfig.toml sets"
	@echo "                        (CONFIG_ENV=dev|prod, DEPLOY_ARGS=--guided the first time; needs python3.13)"
	@echo "make bench              benchmarks (BENCH_ARGS=\"--repeats 7 --fleet 1,10,100,1000\")"
	@echo "make sam-local-invoke   every function's four sample events through the real sam local invoke, each"
	@echo "                        rotation checked (starts Docker if none answers; FUNCTION_NAME=... only those)"
	@echo "make invoke FUNCTION=functions/postgres EVENT=events/... ENDPOINT=http://127.0.0.1:5000"
	@echo "                        run a handler on an event in a Python process, for machines without Docker"

$(PY): requirements-dev.lock
	@tools/bootstrap.sh venv $(VENV) $(PYTHON)

.PHONY: venv servers
venv: $(PY)
	@tools/bootstrap.sh venv $(VENV) $(PYTHON)

servers: venv
	@tools/bootstrap.sh servers $(VENV)

# The demo runs the host's PostgreSQL and MariaDB only: no private root filesystem is built for it.
.PHONY: demo-servers
demo-servers: venv
	@tools/bootstrap.sh servers $(VENV) demo

demo: demo-servers
	$(PY) -m rotation_local demo

demo-alternating: demo-servers
	$(PY) -m rotation_local demo --engine postgres --engine mysql --strategy alternating_users --rotations 3

# The CDK example's synthesis test needs aws-cdk-lib (requirements-cdk.lock, in .venv-cdk) and Node.js.
.PHONY: cdk-venv
cdk-venv:
	@tools/bootstrap.sh cdk .venv-cdk python3

test: servers cdk-venv
	$(PY) -m pytest

test-unit: venv
	$(PY) -m pytest tests/unit

test-integration: servers
	$(PY) -m pytest tests/integration

verified-table: venv
	$(PY) -m rotation_local verified-table --docs docs

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: venv
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

# template.yaml is generated from the engine registry (tests/unit/test_template.py checks it is current).
template: venv
	$(PY) -m rotation_local template

# Replaces layers/rotation_core/certs/rds-global-bundle.pem and its provenance note only if AWS's download
# parses and still holds every root the committed file holds; offline it fails and changes nothing.
rds-ca-bundle: venv
	$(PY) -m rotation_local.rds_ca_bundle

# Refreshes the extracts of the providers' official API definitions (tools/rotation_local/definitions/) that the
# fake providers and the contract tests are held to; offline it fails and changes nothing.
.PHONY: provider-definitions
provider-definitions: venv
	$(PY) -m rotation_local.provider_definitions

invoke: venv
	$(PY) -m rotation_local invoke --function $(FUNCTION) --event $(EVENT) \
		$(if $(ENV_VARS),--env-vars $(ENV_VARS)) $(if $(ENDPOINT),--endpoint $(ENDPOINT))

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .aws-sam
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

.PHONY: bench
bench: servers
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-bench.txt
	$(PY) bench/run.py $(BENCH_ARGS)

# Template, build and supply-chain checks (own venvs: .venv-sam, .venv-scan, .venv-py313).
.PHONY: template-checks sam-build
template-checks:
	bash .ci/template-checks.sh

sam-build:
	bash .ci/template-checks.sh build

# What a release ships, built locally (docs/releasing.md): the x86_64 build the tests run, an arm64
# build, their zips, the SAR-ready templates, the SBOM and SHA256SUMS, in dist/ (gitignored).
.PHONY: release-artifacts
release-artifacts:
	bash .ci/template-checks.sh release

# The sizes of the files in dist/, kept in docs/figures/release-sizes.json and shown in docs/releasing.md
# and docs/deploy.md (a unit test keeps the pages in step with the record and the template).
.PHONY: release-sizes
release-sizes: venv
	$(PY) -m rotation_release release-sizes --dist dist

# Deploy from this clone: one sam build for the Architecture that samconfig.toml's environment deploys
# (CONFIG_ENV, default `default`), then sam deploy of exactly that build. DEPLOY_ARGS=--guided the first time.
# `make deploy-build` stops after the build (.aws-sam/deploy-<env>/build, what examples/cdk deploys from a clone).
.PHONY: deploy deploy-build
deploy deploy-build:
	CONFIG_ENV=$(or $(CONFIG_ENV),default) DEPLOY_ARGS="$(DEPLOY_ARGS)" bash .ci/template-checks.sh $@

# requirements-*.txt and */requirements.in list what we ask for; the requirements-*.lock files (the dev
# environment, the SAM and scanning tools, the tools the workflows install) and the layer's and
# functions' requirements.txt (what sam build installs) pin every package with hashes.
.PHONY: lock
lock:
	python3 -m venv .venv-lock && .venv-lock/bin/pip install -q --disable-pip-version-check pip-tools==7.6.2
	.venv-lock/bin/pip-compile --generate-hashes --allow-unsafe --quiet --no-strip-extras \
		--no-emit-index-url --no-emit-find-links -o requirements-dev.lock requirements-dev.txt \
		layers/rotation_core/requirements.in $(wildcard functions/*/requirements.in)
	# The tool locks name no extras (boto3, not boto3[crt]): pip before 24 would not count boto3[crt]==X
	# as the pin of boto3 that another package asks for, and refuses to install in --require-hashes mode.
	for name in pip sam scan ci actionlint cdk lambda-image; do \
		.venv-lock/bin/pip-compile --generate-hashes --allow-unsafe --quiet --strip-extras \
			--no-emit-index-url --no-emit-find-links -o requirements-$$name.lock requirements-$$name.txt || exit 1; \
	done
	for dir in layers/rotation_core $(dir $(wildcard functions/*/requirements.in)); do \
		(cd $$dir && $(CURDIR)/.venv-lock/bin/pip-compile --generate-hashes --allow-unsafe --quiet \
			--no-strip-extras --no-emit-index-url --no-emit-find-links -o requirements.txt requirements.in) || exit 1; \
	done

# The sample events' environment (docs/local-runner.md): the emulator, a server per database target and a
# fake Datadog API on 127.0.0.1, until Ctrl-C; the other two talk to it (over $LOCAL_ENV or port 5000).
.PHONY: local-env local-env-status local-env-restage
local-env: servers
	$(PY) -m rotation_local local-env $(if $(PORT),--port $(PORT))

local-env-status: venv
	@$(PY) -m rotation_local local-env status $(if $(ENDPOINT),--endpoint $(ENDPOINT))

local-env-restage: venv
	@$(PY) -m rotation_local local-env restage $(if $(FUNCTION_NAME),--function-name $(FUNCTION_NAME)) \
		$(if $(ENDPOINT),--endpoint $(ENDPOINT))

# The real `sam local invoke` on every function's four sample events, in order, each rotation checked through
# local-env (docs/local-runner.md): a Docker engine is started (and stopped) when none answers, the Lambda
# image is AWS's, or an offline stand-in built once when no registry answers. One line per function; exit 1
# naming the functions that failed. FUNCTION_NAME="A B": only those; SAM_LOCAL_ARGS="--image standin" etc.
.PHONY: sam-local-invoke
sam-local-invoke: servers sam-build
	$(PY) -m rotation_local sam-local-invoke $(foreach name,$(FUNCTION_NAME),--function-name $(name)) $(SAM_LOCAL_ARGS)
