"""``make bench``: run every benchmark in ``bench/``, print one table, write JSON and a chart.

Each ``bench/bench_<name>.py`` exposes ``run(scale: str) -> list[Figure]``. Figures are
medians of several repetitions where a repetition is cheap, and ratios are measured side
by side in the same run. ``--only parse,generate`` picks benchmarks (and keeps the other benchmarks' figures of
the last run in the results file); ``--scale full``
uses the real dataset's size (36M events), ``small`` (default) a quick sample.

Before each benchmark the machine's other work is sampled (:mod:`bench.load`) and printed; a
busy machine (other runnable work wanting over half the cores) gets ``--wait-idle`` seconds to
calm down. If it stays busy, the benchmark runs and each of its figures says so in its note
(``BUSY``) and its ``load``; with ``--strict`` it is not run and the exit status is 3.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

from bench.chart import write_chart
from bench.common import Figure
from bench.load import wait_until_idle

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"


def _available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in BENCH_DIR.glob("bench_*.py"))


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help=f"comma-separated subset of {_available()}")
    parser.add_argument("--scale", choices=("small", "full"), default="small")
    parser.add_argument("--wait-idle", type=float, default=120.0, metavar="SECONDS",
                        help="most seconds to wait for a busy machine before each benchmark")
    parser.add_argument("--strict", action="store_true",
                        help="refuse to run a benchmark on a machine still busy after waiting")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else _available()
    figures: list[Figure] = []
    refused: list[str] = []
    for name in names:
        module = importlib.import_module(f"bench.bench_{name}")
        load = wait_until_idle(args.wait_idle, log=_say)
        _say(f"==> {name} ({args.scale}); before it: {load.describe()}")
        if load.busy and args.strict:
            _say(f"    refused: the machine is busy ({load.describe()}); figures would not be "
                "comparable")
            refused.append(name)
            continue
        started = time.perf_counter()
        mark = f"BUSY machine before the run ({load.describe()})" if load.busy else ""
        figures += [replace(f, load=load.describe(),
                            note="; ".join(filter(None, (mark, f.note))))
                    for f in module.run(args.scale)]
        _say(f"    done in {time.perf_counter() - started:.1f}s")
    names = [n for n in names if n not in refused]
    print(Figure.table(figures))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"bench-{args.scale}.json"
    if args.only and out.is_file():  # keep the figures of the benches not re-run
        kept = [Figure(**f) for f in json.loads(out.read_text())["figures"] if f["bench"] not in names]
        figures = kept + figures
    out.write_text(json.dumps({
        "scale": args.scale,
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count(),
                    "platform": platform.platform()},
        "figures": [f.as_dict() for f in figures],
    }, indent=2))
    print(f"\nwritten: {out}")
    chart = write_chart(figures, RESULTS / f"bench-{args.scale}.png",
                        title=f"Skiff benchmarks, {args.scale} scale: "
                              f"{os.cpu_count()} cores, {platform.platform()}")
    if chart:
        print(f"written: {chart}")
    if refused:
        print(f"refused on a busy machine: {', '.join(refused)}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
