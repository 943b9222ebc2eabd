# Skiff — one Makefile for set-up, the local run, tests and benchmarks.
#   make run     install if needed, generate + load a sample, run one hourly DAG interval
#   make test    install if needed, run the test suite (slow tests deselected)
#   make bench   benchmarks in bench/, figures printed and written to bench/results/ (JSON, PNG)
#   make bench-full  the same at the real dataset's size (36M events)
#   make soak    skiff_hourly run by the scheduler HOURS=24 times on live shoppers, faults injected
#   make airflow Airflow's UI on http://127.0.0.1:8090 (AIRFLOW_PORT; no Docker), admin password printed,
#                with the collector (skiff collect) and live shoppers (skiff emit) feeding it
#   make docs    the documentation site (MkDocs) in build/site; README.md is its home page

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(CURDIR)/$(VENV)/bin

# Quiet, offline-safe defaults live in skiff.env (the one place); the shell may override them.
include skiff.env
export $(shell sed -n 's/^\([A-Z_][A-Z0-9_]*\)=.*/\1/p' skiff.env)

export SKIFF_HOME ?= $(CURDIR)/.skiff
export AIRFLOW_HOME ?= $(SKIFF_HOME)/airflow
export AIRFLOW__CORE__DAGS_FOLDER ?= $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER ?= $(CURDIR)/plugins
export USER ?= skiff
export PATH := $(BIN):$(PATH)

DBT_DIR   := include/dbt
MANIFEST  := $(DBT_DIR)/target/manifest.json
INSTALLED := $(VENV)/.skiff-installed
DBT_SRC   := $(shell find $(DBT_DIR) -type f \( -name '*.sql' -o -name '*.yml' \) -not -path '*/target/*' 2>/dev/null)

.PHONY: help install chromium run run-bad test test-all bench bench-full soak airflow screenshot status clean lambda serve docs contract diagram train-image

help:  ## list the targets
	@grep -hE '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: $(INSTALLED) $(MANIFEST)  ## create .venv and build the dbt manifest (no-op when up to date)

$(INSTALLED): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $@

$(MANIFEST): $(INSTALLED) $(DBT_SRC)
	cd $(DBT_DIR) && $(BIN)/dbt parse --quiet --profiles-dir . --project-dir .
	@touch $@

# `airflow dags test` (Airflow 3.3.0) cannot finish a run of a DAG with a Deadline Alert, and
# creates no deadline anyway: the duration alert is off for these two targets (docs/pipeline.md).
run run-bad: export SKIFF_RUN_DURATION_ALERT_MINUTES := 0

# Without a scheduler nothing runs skiff_monitor on skiff_hourly's assets: `make run` runs it
# after the hour (the Skiff page's snapshot; a breach is reported, not a failure of make run).
run: install  ## write the shoppers' history to the landing zone, ingest it, run skiff_hourly for its last hour, then skiff_monitor
	@mkdir -p $(SKIFF_HOME)
	$(BIN)/airflow db migrate > $(SKIFF_HOME)/airflow-migrate.log 2>&1 \
		|| { cat $(SKIFF_HOME)/airflow-migrate.log; exit 1; }
	@read -r LOGICAL_DATE _ <<< "$$($(BIN)/skiff init | tail -n 1)"; \
	$(BIN)/skiff -q run-hour "$$LOGICAL_DATE"; \
	$(BIN)/skiff -q run-hour --dag skiff_monitor "$$LOGICAL_DATE" \
		|| echo "make run: skiff_monitor found a breach (its log above); the Skiff page shows it"
	@$(BIN)/skiff status
	@$(BIN)/skiff report

# A demonstration on a deliberately bad hour, in its own folder ($(SKIFF_HOME)/bad/<defect>):
# the replay source's history is loaded, the bad batch replaces the last hour's delivery
# (SKIFF_REPLAY=off: nothing else is ingested), and the run must stop at a validate task.
BAD_HOME = $(SKIFF_HOME)/bad/$(DEFECT)
run-bad: install  ## run one hour on a bad batch: make run-bad DEFECT=future_timestamps (list: skiff corrupt --list)
	@test -n "$(DEFECT)" || { $(BIN)/skiff corrupt --list; echo "usage: make run-bad DEFECT=<name>"; exit 2; }
	@mkdir -p $(BAD_HOME)
	@export SKIFF_HOME=$(BAD_HOME) AIRFLOW_HOME=$(BAD_HOME)/airflow SKIFF_REPLAY=off SKIFF_INGEST_SOURCE=replay \
		SKIFF_DUCKDB_PATH=$(BAD_HOME)/warehouse.duckdb SKIFF_REPLAY_DIR=$(BAD_HOME)/source; \
	$(BIN)/airflow db migrate > $(BAD_HOME)/airflow-migrate.log 2>&1 \
		|| { cat $(BAD_HOME)/airflow-migrate.log; exit 1; }; \
	LOGICAL_DATE=$$($(BIN)/skiff -q replay-init | tail -n 1); \
	$(BIN)/skiff corrupt --defect $(DEFECT); \
	$(BIN)/skiff -q run-hour "$$LOGICAL_DATE" --log $(BAD_HOME)/dags-test.log || true; \
	if $(BIN)/skiff report; then echo "run-bad: the bad batch passed validation" >&2; exit 1; fi

status:  ## row counts of the raw log and the marts
	@$(BIN)/skiff status

# The UI tests (tests/e2e/test_airflow_ui.py: login, trigger form, the Skiff page) and `make
# screenshot` drive Debian's Chromium through Playwright; installed here when it is missing.
chromium:
	@command -v chromium > /dev/null || { \
		echo "Installing Debian's chromium (the UI tests drive it)"; \
		$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && \
		$(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq --no-install-recommends chromium; }

test: install chromium  ## run the tests (slow ones deselected)
	$(BIN)/python -m pytest

test-all: install chromium  ## run every test, slow ones included
	$(BIN)/python -m pytest -m ""

# The image of the training steps on AWS Batch; its tag is SKIFF_BATCH_IMAGE's default. Push it
# to ECR and set SKIFF_BATCH_IMAGE to the pushed URI (docs/training.md, "Train on AWS Batch").
TRAIN_IMAGE ?= skiff-train:latest
train-image:  ## build the training image of the Batch steps (Dockerfile.train) as $(TRAIN_IMAGE)
	docker build -f Dockerfile.train -t $(TRAIN_IMAGE) .

lambda: build/lambda.zip build/collect.zip  ## the /predict and /collect Lambdas' zips (see include/skiff_api/template.yaml)

build/lambda.zip: include/skiff_api/handler.py include/skiff_api/gateway.py include/skiff_api/package.py
	$(PYTHON) include/skiff_api/package.py $@

build/collect.zip: include/skiff_api/collect.py include/skiff_api/gateway.py include/skiff/data/contract.py include/skiff/data/intake.py include/skiff_api/package.py
	$(PYTHON) include/skiff_api/package.py --collect $@

# the model server logs its answers to the local collector (make airflow runs it; while it is
# down the log drops them, counted): docs/monitoring.md
serve: export SKIFF_PREDLOG_URL ?= http://127.0.0.1:8070/collect
serve: install  ## local model server + GET /predict on http://127.0.0.1:8000 (skiff serve)
	$(BIN)/skiff serve

bench: install  ## run the benchmarks in bench/ (a quick sample)
	$(BIN)/python -m bench

bench-full: install  ## the benchmarks at the real dataset's size (36M events, 5M sessions)
	$(BIN)/python -m bench --scale full

# The soak: HOURS scheduled intervals of MINUTES each (a run must fit in one: catchup is off),
# faults injected; bench/results/soak.json and docs/img/soak.png. About HOURS x MINUTES.
HOURS   ?= 24
MINUTES ?= 10
soak: install  ## skiff_hourly scheduled HOURS times (24) every MINUTES (10) on live shoppers, with faults
	$(BIN)/python -m bench.soak --intervals $(HOURS) --minutes $(MINUTES)

# Not 8080, the local model server's (SKIFF_SERVE_PORT), nor 8081, Docker's model server's.
AIRFLOW_PORT ?= 8090

airflow: install  ## Airflow (SQLite, no Docker) on http://127.0.0.1:8090 (AIRFLOW_PORT), the collector and the live shoppers
	@read -r SAMPLE_END _ <<< "$$($(BIN)/skiff -q init | tail -n 1)"; \
	$(BIN)/python -m skiff.ops.local_airflow --port $(AIRFLOW_PORT) --sample-end "$$SAMPLE_END" --live

screenshot: install chromium  ## the docs' pictures of the Airflow UI on a live run (~25 min), docs/img/airflow-*.png
	$(BIN)/python docs/screenshot.py --out-dir docs/img

# The configuration page's table is generated from skiff.config first (docs/gen_config.py);
# --strict fails on a broken link, anchor or nav entry, as tests/unit/test_docs.py does.
docs: install  ## build the documentation site into build/site (MkDocs, strict)
	$(BIN)/python docs/gen_config.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir build/site

contract: install  ## rewrite the raw GX suites and the README's contract table from include/skiff/data/contract.toml
	$(BIN)/skiff contract --write

diagram: install  ## draw the README's picture of the pipeline, docs/img/pipeline.svg
	$(BIN)/python docs/pipeline_diagram.py && $(BIN)/python docs/data_path_diagram.py

clean:  ## remove generated data, Airflow state and the dbt target (keeps .venv)
	rm -rf $(SKIFF_HOME) $(DBT_DIR)/target $(DBT_DIR)/logs build
