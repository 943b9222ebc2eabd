"""bench/load.py and python -m bench: the machine's other work is measured and a busy run is marked."""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import types

import pytest

import bench.__main__ as bench_main
from bench.common import Figure
from bench.load import Load, sample


def _spin(seconds: float) -> None:
    import time

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_spinning_processes_show_as_runnable_and_busy_cpu() -> None:
    cores = os.cpu_count() or 1
    before = sample(seconds=1.0)
    spinners = [multiprocessing.get_context("fork").Process(target=_spin, args=(4.0,))
                for _ in range(cores + 1)]
    for p in spinners:
        p.start()
    try:
        during = sample(seconds=1.5)
    finally:
        for p in spinners:
            p.join()
    assert during.runnable >= before.runnable + cores / 2 and during.busy
    assert during.cpu_busy > 0.8
    assert "runnable" in during.describe() and f"on {cores} cores" in during.describe()


def _fake_bench(monkeypatch: pytest.MonkeyPatch, load: Load) -> list[str]:
    ran: list[str] = []
    module = types.ModuleType("bench.bench_fake")
    module.run = lambda scale: ran.append(scale) or [Figure("fake", "f", 1.0, "s", "", "n")]
    monkeypatch.setitem(sys.modules, "bench.bench_fake", module)
    monkeypatch.setattr(bench_main, "wait_until_idle", lambda timeout, log: load)
    return ran


BUSY = Load(runnable=3.0, cpu_busy=1.0, load_1m=3.5, cores=2)
IDLE = Load(runnable=0.1, cpu_busy=0.02, load_1m=0.3, cores=2)


@pytest.mark.parametrize(("load", "mark"), [(IDLE, False), (BUSY, True)])
def test_figures_carry_the_load_and_a_busy_run_is_marked(monkeypatch, tmp_path, load, mark):
    ran = _fake_bench(monkeypatch, load)
    monkeypatch.setattr(bench_main, "RESULTS", tmp_path)
    assert bench_main.main(["--only", "fake", "--wait-idle", "0"]) == 0 and ran == ["small"]
    (figure,) = json.loads((tmp_path / "bench-small.json").read_text())["figures"]
    assert figure["load"] == load.describe()
    assert figure["note"].startswith("BUSY machine") is mark and figure["note"].endswith("n")


def test_strict_refuses_a_busy_machine(monkeypatch, tmp_path) -> None:
    ran = _fake_bench(monkeypatch, BUSY)
    monkeypatch.setattr(bench_main, "RESULTS", tmp_path)
    assert bench_main.main(["--only", "fake", "--strict"]) == 3 and ran == []
