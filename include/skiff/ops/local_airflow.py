"""Airflow on this machine, without Docker, and a small client of its REST API.

:class:`LocalAirflow` runs ``airflow standalone`` (api-server, scheduler, dag-processor and
triggerer; SQLite metadata DB, LocalExecutor, simple auth manager) on one port of 127.0.0.1,
in its own process group, and talks to it as the UI does: ``POST /auth/token`` with the
generated admin password, then ``/api/v2``. ``make airflow`` runs it in the foreground
(``python -m skiff.ops.local_airflow --live``, with the collector and the live shoppers of
:mod:`skiff.ops.shoppers` beside it) and prints the credentials; the UI test and
``docs/screenshot.py`` start one on a free port in a throwaway home.

No Airflow import: it drives the ``airflow`` command of the running interpreter's venv.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from skiff.config import REPO_ROOT, CollectConfig, ServingConfig
from skiff.exceptions import SkiffError
from skiff.ops.shoppers import LiveShoppers, LiveShoppersError

__all__ = ["LocalAirflow", "LocalAirflowError", "banner", "free_port", "sandbox_env",
           "scheduled_env", "main"]

#: What ``/api/v2/monitor/health`` reports on, all of which must be healthy.
COMPONENTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")
#: States a DAG run ends in.
FINISHED = {"success", "failed"}


class LocalAirflowError(SkiffError):
    """The local Airflow did not start, or its API answered with an error."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def sandbox_env(skiff_home: str | Path) -> dict[str, str]:
    """The environment of an Airflow in a throwaway ``skiff_home`` (tests, screenshots).

    Its own SQLite DB and Skiff folder; this checkout's DAGs and plugins; free ports for the log
    servers and the model server, so that nothing of a developer's own Airflow or ``skiff
    serve`` is reached; and only the runs one triggers (``[scheduler] use_job_schedule`` off:
    no scheduled runs).
    """
    skiff_home = Path(skiff_home)
    return {
        **os.environ,
        "SKIFF_HOME": str(skiff_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{skiff_home}/airflow/airflow.db",
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "SKIFF_SERVE_PORT": str(free_port()),
        "SKIFF_SERVE_CONTROL_PORT": str(free_port()),
        "SKIFF_API_PORT": str(free_port()),
    }


def scheduled_env(skiff_home: str | Path, minutes: int) -> dict[str, str]:
    """:func:`sandbox_env` with the scheduler on, on live shoppers, every ``minutes``.

    ``SKIFF_SCHEDULE`` fires every ``minutes``, each interval ingests what the collector
    (on a free port) landed, and the shoppers post an hour's traffic in each interval, so
    that every interval holds as many events as an hourly one (the suites' shares are checked
    on samples that size), over a history of about ``make run``'s size. ``make soak`` and
    ``docs/screenshot.py`` run on it; skiff_hourly starts paused.
    """
    skiff_home = Path(skiff_home)
    return {
        **sandbox_env(skiff_home),
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "True",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "SKIFF_SCHEDULE": f"*/{minutes} * * * *",
        "SKIFF_INGEST_SOURCE": "landing",
        "SKIFF_INGEST_GRACE_MINUTES": "2",
        "SKIFF_INGEST_POLL_S": "10",
        "SKIFF_COLLECT_ROLL_SECONDS": "20",
        "SKIFF_COLLECT_LOG_DIR": str(skiff_home / "collector"),
        "SKIFF_COLLECT_PORT": str(free_port()),
        "SKIFF_EMIT_SESSIONS_PER_HOUR": str(450 * 60 / minutes),
        "SKIFF_SAMPLE_SPAN_HOURS": str(max(2, 72 * minutes // 60)),
    }


class LocalAirflow:
    """``airflow standalone`` on ``http://127.0.0.1:<port>``, with its home in ``home``.

    :param home: ``AIRFLOW_HOME``; the SQLite DB, logs and the admin password file live there.
    :param port: port of the api-server (UI, REST API and the tasks' execution API).
    :param env: environment of the Airflow processes; default this process's.
    :param log_path: where the components' output goes; default ``<home>/standalone.log``.
    """

    user = "admin"

    def __init__(self, home: str | Path, *, port: int, env: Mapping[str, str] | None = None,
                 log_path: str | Path | None = None) -> None:
        self.home = Path(home)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = Path(log_path) if log_path else self.home / "standalone.log"
        self.airflow_bin = str(Path(sys.executable).with_name("airflow"))
        bin_dir = str(Path(sys.executable).parent)  # standalone starts `airflow <component>`
        base = dict(os.environ if env is None else env)
        self.env = {
            **base,
            "PATH": os.pathsep.join([bin_dir, base.get("PATH", "")]),
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            # LocalExecutor forks this many workers at start (~150 MB each; Airflow's default 32)
            "AIRFLOW__CORE__PARALLELISM": base.get("AIRFLOW__CORE__PARALLELISM", "4"),
        }
        self.process: subprocess.Popen | None = None
        self._token: str | None = None

    # -- processes ---------------------------------------------------------------------------

    def start(self) -> LocalAirflow:
        """Start ``airflow standalone`` in a new process group (see :meth:`stop`)."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [self.airflow_bin, "standalone"],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    def stop(self, timeout: float = 30) -> None:
        """Stop every process of the group (components, executor workers, tasks)."""
        if self.process is None:
            return
        pgid = self.process.pid  # the group leader: start_new_session=True
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and self._group_alive(pgid):
                time.sleep(0.2)
            if not self._group_alive(pgid):
                break
        self.process.wait(timeout=5)
        self.process = None

    def _group_alive(self, pgid: int) -> bool:
        """Whether a process of the group still runs (its exited, unreaped ones do not count)."""
        self.process.poll()  # reap the leader
        proc = Path("/proc")
        if not proc.is_dir():  # not Linux: ask the kernel, zombies included
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return False
            return True
        for stat in proc.glob("[0-9]*/stat"):
            try:  # "pid (comm) state ppid pgrp ..."
                state, _, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
            except (OSError, IndexError):
                continue  # the process exited meanwhile
            if int(group) == pgid and state != "Z":
                return True
        return False

    def cli(self, *args: str, timeout: float = 120) -> str:
        """Run ``airflow <args>`` against this instance; returns its output.

        :raises LocalAirflowError: the command failed (the message has its stderr).
        """
        done = subprocess.run([self.airflow_bin, *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        if done.returncode:
            raise LocalAirflowError(f"airflow {' '.join(args)} exited with {done.returncode}:\n"
                                    f"{done.stderr[-3000:]}")
        return done.stdout

    def __enter__(self) -> LocalAirflow:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_ready(self, dag_id: str, timeout: float = 240) -> None:
        """Wait until every component is healthy and ``dag_id`` is parsed.

        :raises LocalAirflowError: Airflow exited, the DAG file has an import error, or the
            timeout (in seconds) passed; the message ends with the log's last lines.
        """
        deadline = time.monotonic() + timeout
        pending = "the api-server"
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise self.error("airflow standalone exited")
            pending = self._not_ready(dag_id)
            if not pending:
                return
            time.sleep(1)
        raise self.error(f"Airflow was not ready after {timeout:.0f}s (waiting for {pending})")

    def _not_ready(self, dag_id: str) -> str | None:
        """What is not ready yet (None when all is)."""
        try:
            status, health = self.request("GET", "/api/v2/monitor/health", auth=False)
        except OSError:
            return "the api-server"
        sick = [c for c in COMPONENTS if (health.get(c) or {}).get("status") != "healthy"]
        if status != 200 or sick:
            return ", ".join(sick) or "the api-server"
        if not self.password_file.exists():
            return "the admin password file"
        status, _ = self.request("GET", f"/api/v2/dags/{dag_id}")
        if status == 200:
            return None
        errors = self.api("GET", "/api/v2/importErrors")["import_errors"]
        if errors:
            raise LocalAirflowError("DAG import errors:\n" + "\n".join(
                f"{e['filename']}: {e['stack_trace']}" for e in errors))
        return f"the DAG {dag_id} to be parsed"

    def error(self, message: str) -> LocalAirflowError:
        """An error whose message ends with the last lines of the components' output."""
        lines = self.log_path.read_text(errors="replace").splitlines()[-40:]
        return LocalAirflowError(f"{message}; last lines of {self.log_path}:\n" + "\n".join(lines))

    # -- credentials and REST ----------------------------------------------------------------

    @property
    def password_file(self) -> Path:
        """Where the simple auth manager keeps the generated passwords."""
        return self.home / "simple_auth_manager_passwords.json.generated"

    @property
    def password(self) -> str:
        """The admin user's password (generated by Airflow at its first start)."""
        return json.loads(self.password_file.read_text())[self.user]

    def token(self) -> str:
        """A JWT for the admin user, from ``POST /auth/token`` (what the login form does)."""
        if self._token is None:
            status, body = self.request("POST", "/auth/token", {"username": self.user,
                                                                 "password": self.password},
                                        auth=False)
            if status != 201:
                raise LocalAirflowError(f"POST /auth/token for {self.user!r}: {status} {body}")
            self._token = body["access_token"]
        return self._token

    def request(self, method: str, path: str, body: Any = None, *,
                auth: bool = True) -> tuple[int, Any]:
        """One HTTP call; returns the status and the decoded JSON body (errors included)."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as answer:
                status, raw = answer.status, answer.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """An authenticated call that must succeed; returns its JSON body.

        :raises LocalAirflowError: the API answered 4xx or 5xx (the message has its detail).
        """
        status, answer = self.request(method, path, body)
        if status >= 400:
            raise LocalAirflowError(f"{method} {path}: {status} {answer}")
        return answer

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 1800,
                     poll: float = 5) -> dict[str, Any]:
        """Poll a DAG run until it succeeds or fails; returns the run.

        :raises LocalAirflowError: still not finished after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            run = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] in FINISHED:
                return run
            if time.monotonic() > deadline:
                raise LocalAirflowError(f"{dag_id} run {run_id} still {run['state']} after "
                                        f"{timeout:.0f}s")
            time.sleep(poll)


def banner(airflow: LocalAirflow, dag_id: str, sample_end: str | None = None,
           shoppers: LiveShoppers | None = None) -> str:
    """Where to log in, with what, and which hour of the history to trigger."""
    lines = [
        f"Airflow UI   {airflow.url}/dags/{dag_id}",
        f"user         {airflow.user}",
        f"password     {airflow.password}   (kept in {airflow.password_file})",
    ]
    if shoppers is not None:
        lines += [
            f"collector    {shoppers.url}/collect   (skiff collect; log {shoppers.logs}/collect.log)",
            f"shoppers     skiff emit, live, posting to it   (log {shoppers.logs}/emit.log)",
            f"             asking {shoppers.env.get('SKIFF_EMIT_PREDICT_URL') or 'no model'} as "
            "they browse (SKIFF_EMIT_PREDICT_URL)",
            f"             Unpause {dag_id}: each interval of SKIFF_SCHEDULE ingests what landed",
        ]
    if sample_end:
        end = datetime.fromisoformat(sample_end)
        start, later = end - timedelta(hours=1), end + timedelta(hours=1)
        lines += [
            f"sample       {start:%Y-%m-%d %H:%M}-{end:%H:%M} UTC, its last hour, is left to "
            f"ingest: Trigger {dag_id}",
            f"             (a logical date from {end:%H:%M} to {later:%H:%M} UTC infers that "
            "interval;",
            "             else set Data Interval > Specify Manually)",
        ]
    lines += [f"logs         {airflow.log_path}", "stop         Ctrl-C"]
    rule = "=" * max(map(len, lines))
    return "\n".join([rule, *lines, rule])


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """``make airflow``: start Airflow, print where and how to log in, run until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m skiff.ops.local_airflow", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True, help="api-server port (AIRFLOW_PORT)")
    parser.add_argument("--dag-id", default="skiff_hourly", help="the DAG to wait for")
    parser.add_argument("--sample-end", help="end of the history (ISO 8601): its last "
                        "hour is left for the DAG, shown as a hint")
    parser.add_argument("--live", action="store_true", help="also run the collector and the "
                        "live shoppers (skiff collect, skiff emit --after-history)")
    args = parser.parse_args(argv)

    airflow = LocalAirflow(os.environ.get("AIRFLOW_HOME", "airflow"), port=args.port)
    for sig in (signal.SIGTERM, signal.SIGHUP):  # a closed terminal or a kill stops Airflow too
        signal.signal(sig, _interrupt)
    print(f"Starting Airflow (api-server, scheduler, dag-processor, triggerer) on {airflow.url}; "
          f"output in {airflow.log_path}", flush=True)
    shoppers = None
    if args.live:
        # the shoppers ask the local /predict (skiff serve's, the deploy's) unless told otherwise
        predict = os.environ.get("SKIFF_EMIT_PREDICT_URL", "http://127.0.0.1:%d/predict"
                                 % ServingConfig.from_env().api_port)
        shoppers = LiveShoppers(os.environ.get("SKIFF_HOME", ".skiff"),
                                port=CollectConfig.from_env().port, predict_url=predict)
    try:
        if shoppers is not None:
            shoppers.start()
        airflow.start()
        airflow.wait_ready(args.dag_id)
        print(banner(airflow, args.dag_id, args.sample_end, shoppers), flush=True)
        while airflow.process.poll() is None:
            if shoppers is not None:
                shoppers.check()
            time.sleep(2)
        raise airflow.error("airflow standalone exited")
    except KeyboardInterrupt:
        print("\nStopping Airflow ...", flush=True)
        return 0
    except (LocalAirflowError, LiveShoppersError) as exc:
        print(f"make airflow: {exc}", file=sys.stderr)
        return 1
    finally:
        # a second Ctrl-C (or the SIGTERM a shell sends the whole group) must not cut the
        # clean-up short and leave processes behind: each stop is bounded by its own timeouts
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        try:
            airflow.stop()
        finally:
            if shoppers is not None:
                shoppers.stop()


if __name__ == "__main__":
    sys.exit(main())
