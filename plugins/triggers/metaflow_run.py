"""Trigger polling a Metaflow run through the Metaflow client until it ends."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from functools import cached_property
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from hooks.metaflow_runner import MetaflowHook

__all__ = ["MetaflowRunTrigger"]


class MetaflowRunTrigger(BaseTrigger):
    """Wait for the Metaflow run ``pathspec`` to finish, without holding a worker slot.

    Polls the run's metadata through the client (never a process handle: the run was
    started by a worker that has exited). Yields one event: ``success``, ``failed`` (with
    the failing step's error output) or ``timeout``.

    A task stopped by hand while deferred (mark failed, clear) stops the run in
    :meth:`on_kill`: its Batch jobs, and its launcher when the triggerer runs on the host that
    started it.

    :param pathspec: the run, ``Flow/run_id``.
    :param env: the ``METAFLOW_*`` variables the run was launched with.
    :param poll_interval: seconds between polls.
    :param timeout_s: seconds after which the wait ends with ``timeout``.
    :param flow_file: the flow's file (for ``batch kill``).
    :param launcher_pid: process id of the run's launcher (it leads its own process group).
    :param launcher_host: host name of the launcher's machine.
    """

    def __init__(self, pathspec: str, env: dict[str, str], poll_interval: float = 30,
                 timeout_s: float = 7200, flow_file: str | None = None,
                 launcher_pid: int | None = None, launcher_host: str | None = None) -> None:
        super().__init__()
        self.pathspec = pathspec
        self.env = env
        self.poll_interval = poll_interval
        self.timeout_s = timeout_s
        self.flow_file = flow_file
        self.launcher_pid = launcher_pid
        self.launcher_host = launcher_host

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "triggers.metaflow_run.MetaflowRunTrigger",
            {"pathspec": self.pathspec, "env": self.env, "poll_interval": self.poll_interval,
             "timeout_s": self.timeout_s, "flow_file": self.flow_file,
             "launcher_pid": self.launcher_pid, "launcher_host": self.launcher_host},
        )

    async def on_kill(self) -> None:
        """Stop the run (see :meth:`MetaflowHook.kill`)."""
        if self.flow_file is None:
            return
        here = self.launcher_host == socket.gethostname()
        if self.launcher_pid is not None and not here:
            self.log.warning("The launcher of %s runs on %s, not here: only its Batch jobs are "
                             "stopped.", self.pathspec, self.launcher_host)
        await asyncio.to_thread(self.hook.kill, self.flow_file, self.pathspec,
                                self.launcher_pid if here else None, True)

    @cached_property
    def hook(self) -> MetaflowHook:
        return MetaflowHook(env=self.env)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        deadline = time.monotonic() + self.timeout_s
        while True:
            state = await asyncio.to_thread(self.hook.describe, self.pathspec)
            if state["status"] == MetaflowHook.SUCCESSFUL:
                yield TriggerEvent({"status": "success", "pathspec": self.pathspec,
                                    "message": state["message"]})
                return
            if state["status"] == MetaflowHook.FAILED:
                yield TriggerEvent({"status": "failed", "pathspec": self.pathspec,
                                    "message": state["message"]})
                return
            if time.monotonic() >= deadline:
                yield TriggerEvent({"status": "timeout", "pathspec": self.pathspec,
                                    "message": f"{self.pathspec} still running after {self.timeout_s}s"})
                return
            await asyncio.sleep(self.poll_interval)
