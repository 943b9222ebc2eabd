"""The live data path on this machine: ``skiff collect`` and ``skiff emit`` as background processes.

:class:`LiveShoppers` starts the collector (waiting for its ``/health``) and the live emitter
posting to it, continuing where ``skiff init``'s history ends, so the landing zone gains a
file every ``SKIFF_COLLECT_ROLL_SECONDS`` and every scheduled interval of ``skiff_hourly`` finds
fresh events. ``make airflow`` runs them beside Airflow, the soak drives them (and kills and
restarts the collector on purpose). Each process runs in its own session, its output in
``<SKIFF_HOME>/logs/``; :meth:`LiveShoppers.stop` ends them gracefully (SIGTERM: the
collector rolls what its log holds into landing files). With a ``predict_url`` the sampled
shoppers also ask the served model as they browse (:mod:`skiff.data.emitter_predict`); a
server that is not up yet only counts failed requests in ``emit.log``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from skiff.exceptions import SkiffError

__all__ = ["LiveShoppers", "LiveShoppersError", "run_skiff"]


class LiveShoppersError(SkiffError):
    """The collector or the emitter did not start, or died."""


def run_skiff(env: Mapping[str, str], *args: str, timeout: float = 900) -> str:
    """``skiff -q <args>`` (e.g. ``init``) in a fresh process with ``env``; its output.

    :raises LiveShoppersError: the command failed (the end of its errors is in the message).
    """
    done = subprocess.run([sys.executable, "-m", "skiff.cli", "-q", *args], env=dict(env),
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise LiveShoppersError(f"skiff {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


class LiveShoppers:
    """The collector and the live emitter, started and stopped together.

    :param home: ``SKIFF_HOME`` (logs go to ``<home>/logs``).
    :param port: the collector's port on 127.0.0.1.
    :param env: environment of both processes (the collector's settings, the emitter's);
        default this process's.
    :param speed: the emitter's speed (``SKIFF_EMIT_SPEED`` when None).
    :param predict_url: the ``GET /predict`` the shoppers ask (``SKIFF_EMIT_PREDICT_URL``
        when None; empty: they ask nothing).
    """

    def __init__(self, home: str | Path, *, port: int, env: Mapping[str, str] | None = None,
                 speed: float | None = None, predict_url: str | None = None) -> None:
        self.home = Path(home)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.logs = self.home / "logs"
        self.env = {**(os.environ if env is None else env), "SKIFF_HOME": str(self.home),
                    "SKIFF_COLLECT_HOST": "127.0.0.1", "SKIFF_COLLECT_PORT": str(port),
                    "SKIFF_COLLECT_URL": f"{self.url}/collect"}
        self.speed = speed
        if predict_url is not None:
            self.env["SKIFF_EMIT_PREDICT_URL"] = predict_url
        self.collector: subprocess.Popen[bytes] | None = None
        self.emitter: subprocess.Popen[bytes] | None = None

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{name}.log", "ab") as log:
            return subprocess.Popen([sys.executable, "-m", "skiff.cli", *args], env=self.env,
                                    stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)

    def start(self) -> LiveShoppers:
        """Start the collector, wait until it answers, then the emitter."""
        self.start_collector()
        speed = [] if self.speed is None else ["--speed", str(self.speed)]
        self.emitter = self._spawn("emit", "emit", "--after-history", *speed)
        return self

    def start_collector(self, timeout: float = 60) -> None:
        """Start ``skiff collect`` and wait for ``/health`` (it first rolls what a kill left)."""
        self.collector = self._spawn("collect", "collect")
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if self.collector.poll() is not None:
                raise LiveShoppersError(f"skiff collect exited ({self.collector.returncode}); "
                                        f"see {self.logs / 'collect.log'}")
            if time.monotonic() > deadline:
                raise LiveShoppersError(f"skiff collect did not answer on {self.url}/health in "
                                        f"{timeout:.0f}s; see {self.logs / 'collect.log'}")
            time.sleep(0.2)

    def kill_collector(self) -> None:
        """SIGKILL the collector (a crash): what it acknowledged is in its log, rolled at restart."""
        self._end(self.collector, signal.SIGKILL)

    def check(self) -> None:
        """Raise if the collector or the emitter has died."""
        for name, proc in (("collect", self.collector), ("emit", self.emitter)):
            if proc is not None and proc.poll() is not None:
                raise LiveShoppersError(f"skiff {name} exited ({proc.returncode}); see "
                                        f"{self.logs / f'{name}.log'}")

    def stop(self) -> None:
        """Stop the emitter, then the collector (SIGTERM; SIGKILL after 30 s)."""
        self._end(self.emitter, signal.SIGTERM)
        self._end(self.collector, signal.SIGTERM)

    @staticmethod
    def _end(proc: subprocess.Popen[bytes] | None, sig: int) -> None:
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def __enter__(self) -> LiveShoppers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
