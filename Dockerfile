# syntax=docker/dockerfile:1
# Skiff's Airflow image: the official apache/airflow image of the pinned version with Skiff's
# runtime stack, its DAG, plugins and include/ folder, and the dbt manifest Cosmos renders the
# DAG from. docker-compose.yaml builds it (`docker compose build`); alone: `docker build -t skiff-airflow .`
#
# No credentials are baked in: .dockerignore admits only the paths copied below (no .env,
# nothing from ~/.aws); settings and connections come from the environment at run time.
ARG AIRFLOW_VERSION=3.3.0
ARG PYTHON_VERSION=3.11
FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}

ARG AIRFLOW_VERSION

# Skiff's working folder (warehouse, replay source, Metaflow datastore, reports, served models);
# docker-compose.yaml mounts the skiff-home volume here.
ENV SKIFF_HOME=/opt/airflow/skiff

# One environment for Airflow, dbt and the training stack: Cosmos runs dbt in-process
# (InvocationMode.DBT_RUNNER), and the watcher's producer runs this install's `dbt` as a
# process, so dbt needs no venv of its own. Airflow is named with its pin
# so that resolving the rest cannot move it.
COPY --chown=airflow:0 requirements.txt /opt/airflow/requirements.txt
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /opt/airflow/requirements.txt

# The skiff package, editable: skiff.config finds the dbt project, the GX suites and the flows
# beside its source, so it runs from /opt/airflow/include, not from a copy in site-packages.
COPY --chown=airflow:0 pyproject.toml skiff.env /opt/airflow/
COPY --chown=airflow:0 include /opt/airflow/include
RUN pip install --no-cache-dir --no-deps -e /opt/airflow \
    && mkdir -p "${SKIFF_HOME}"

# The manifest Cosmos loads (LoadMode.DBT_MANIFEST: no dbt at DAG parse time), built as
# `make install` builds it, with skiff.env's quiet defaults (no telemetry).
WORKDIR /opt/airflow/include/dbt
RUN set -a && . /opt/airflow/skiff.env && set +a \
    && dbt parse --quiet --profiles-dir . --project-dir . --log-path /tmp/dbt-logs \
    && rm -rf /tmp/dbt-logs
WORKDIR /opt/airflow

COPY --chown=airflow:0 plugins /opt/airflow/plugins
COPY --chown=airflow:0 dags /opt/airflow/dags
