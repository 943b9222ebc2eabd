"""Training throughput of both models on the largest log of the scale, and one epoch's time.

A worker process (a fresh TensorFlow, whatever threads another benchmark configured) reads
every session of the log's marts and builds the examples as the flows do (``intent.prepare``,
``next_item.prepare``; the latest 20% of sessions held out), then fits each model, built as
``intent.train`` / ``next_item.train`` build it, with ``skiff.train.models``' own fit and batch
size on a random sample of the training examples: examples/s is timed over a fixed number of
steps after a warm-up (tracing, first allocations). One epoch over the whole training set is
too long for 2 cores at ``full`` scale: when the rate says it takes over
:data:`EPOCH_LIMIT_S` (``BENCH_TRAIN_EPOCH_LIMIT_S``), its time is projected (examples /
examples-per-s) and marked so; otherwise one real epoch is fitted and timed. The machine's
load average before the fits is in the notes: on a shared 2-core machine it moves every
figure here.

Each fit runs as the flows' fits do: a ``tf.data`` pipeline, under the precision policy
``SKIFF_TRAIN_MIXED_PRECISION`` gives (by default mixed_float16 on a GPU, float32 on a CPU).
``--device`` picks where: ``cpu`` (GPUs hidden), ``gpu`` (the first GPU; on a machine
without one, a note and the CPU instead, exit 0), ``auto`` (default, what ``make bench``
runs): the CPU, and again the GPU when TensorFlow sees one. The device used and the policy
are printed, and named in each figure's note.

Run: ``python -m bench.bench_train [small|full] [--device auto|cpu|gpu]``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Figure, run_worker, skiff_env
from bench.data import LOGS, ensure_marts, get_log

#: This module, as the worker processes import it.
WORKER = "bench.bench_train"
#: ``{scale: (warm-up steps, timed steps)}``.
STEPS = {"small": (10, 100), "full": (20, 200)}
HOLDOUT = 0.2  # the flows' default
WINDOW = 10  # RecFlow's default
#: One epoch over every example is run (not projected) when the rate says it takes at most this
#: many seconds: ``BENCH_TRAIN_EPOCH_LIMIT_S`` (e.g. 900 to time issue 18's "one epoch over the
#: 36M log's sequences < 10 min" for real, ~10 min more at ``full`` scale), default 30.
EPOCH_LIMIT_S = float(os.environ.get("BENCH_TRAIN_EPOCH_LIMIT_S", "30"))
#: The fits as they were before issue 18 (full softmax; intent in batches of 128), measured in
#: the same worker as today's defaults so a before/after pair shares the machine's load.
BEFORE = {"intent": {"batch_size": 128, "bucket": 0},
          "rec": {"head": "full", "batch_size": 512, "bucket": 0}}
#: Values of ``--device``.
DEVICES = ("auto", "cpu", "gpu")


def _throughput(build: Any, fit: Any, inputs: dict[str, Any], labels: Any, *, warmup: int,
                steps: int, seed: int = 42, options: dict[str, Any] | None = None
                ) -> dict[str, Any]:
    """Fit a fresh model on a sample of ``warmup + steps`` batches: examples/s of the timed
    steps, and one epoch over every example (measured when it takes at most
    :data:`EPOCH_LIMIT_S` by that rate, else projected).

    :param options: arguments of ``fit`` other than its defaults (e.g. the :data:`BEFORE` ones).
    """
    import keras
    import numpy as np

    class StepClock(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.began = 0.0
            self.ends: list[float] = []

        def on_train_begin(self, logs: Any = None) -> None:
            self.began = time.perf_counter()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.ends.append(time.perf_counter())

    options = options or {}
    batch_size = options.get("batch_size",
                             inspect.signature(fit).parameters["batch_size"].default)
    n = len(labels)
    rows = np.random.default_rng(seed).permutation(n)[:(warmup + steps) * batch_size]
    epochs = -(-(warmup + steps) * batch_size // len(rows))  # more than one when data is short
    clock = StepClock()
    fitted = fit(build(), {k: v[rows] for k, v in inputs.items()}, labels[rows], epochs=epochs,
                 seed=seed, callbacks=[clock], **options)
    timed = clock.ends[warmup - 1:warmup + steps]  # ends of batches warmup .. warmup+steps-1
    rate = (len(timed) - 1) * batch_size / (timed[-1] - timed[0])
    startup = clock.ends[0] - clock.began - batch_size / rate  # tracing, first allocations
    result = {"examples_per_s": rate, "train_examples": n, "batch_size": batch_size,
              "num_sampled": fitted.params.get("num_sampled"),
              "timed_steps": len(timed) - 1, "startup_s": startup,
              "epoch_s": startup + n / rate, "epoch_measured": False}
    if result["epoch_s"] <= EPOCH_LIMIT_S:
        result["epoch_s"] = fit(build(), inputs, labels, epochs=1, seed=seed, **options).seconds
        result["epoch_measured"] = True
    return result


def worker(request: str) -> None:
    """Entry point of a worker process: measure both models, write the results as JSON.

    :param request: path of a JSON file ``{"db", "device", "warmup", "steps", "out"}``;
        ``device`` ``cpu`` hides the GPUs, ``gpu`` uses the first (the CPU when there is none).
    """
    spec = json.loads(Path(request).read_text())
    import tensorflow as tf

    gpus = len(tf.config.list_physical_devices("GPU"))
    if spec["device"] == "cpu":
        tf.config.set_visible_devices([], "GPU")
    import numpy as np

    from skiff.data import DuckDBWarehouse
    from skiff.train import datasets, device, intent, models, next_item

    started = time.perf_counter()
    marts = datasets.read_marts(DuckDBWarehouse(Path(spec["db"])))
    cutoff = datasets.time_cutoff(marts.sessions["session_start_at"], HOLDOUT)
    read_s = time.perf_counter() - started
    started = time.perf_counter()
    intent_data = intent.prepare(marts, cutoff)
    intent_prep_s = time.perf_counter() - started
    started = time.perf_counter()
    rec_data = next_item.prepare(marts.sequences, cutoff, window=WINDOW)
    rec_prep_s = time.perf_counter() - started
    sessions = marts.sessions.num_rows
    del marts

    def build_rec() -> Any:
        prior = np.log(rec_data.counts + 1.0)
        return models.build_next_item_model(len(rec_data.vocab), max_position=rec_data.window,
                                            item_log_prior=prior - prior.mean())

    steps = {"warmup": spec["warmup"], "steps": spec["steps"]}
    load = os.getloadavg()[0]
    with device.training_precision() as policy:  # as intent.train / next_item.train fit
        results = {}
        for when, options in (("before", BEFORE), ("now", {})):
            suffix = "_before" if when == "before" else ""
            results["intent" + suffix] = _throughput(
                lambda: models.build_intent_model(len(intent_data.vocab)), models.train_intent,
                intent_data.tokens("train"), intent_data.train.labels,
                options=options.get("intent"), **steps)
            results["rec" + suffix] = _throughput(
                build_rec, models.train_next_item, rec_data.train_examples.inputs(),
                rec_data.train_examples.target, options=options.get("rec"), **steps)
        blockers = [device.cudnn_blockers(build().get_layer("encoder"))
                    for build in (lambda: models.build_intent_model(len(intent_data.vocab)),
                                  build_rec)]
    results["intent"]["prepare_s"], results["rec"]["prepare_s"] = intent_prep_s, rec_prep_s
    results["rec"]["items"] = results["rec_before"]["items"] = len(rec_data.vocab)
    Path(spec["out"]).write_text(json.dumps({
        "gpus": gpus, "device": device.device_name(), "policy": policy,
        "cudnn_eligible": not any(blockers), "load": load, "sessions": sessions,
        "read_s": read_s, "models": results,
        "threads": [tf.config.threading.get_intra_op_parallelism_threads(),
                    tf.config.threading.get_inter_op_parallelism_threads()],
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }))


def _figures(result: dict[str, Any], log_name: str) -> list[Figure]:
    names = {"intent": "intent (GRU over event tokens)",
             "rec": "next item (GRU + copy head, sampled softmax)",
             "intent_before": "BEFORE intent (no length buckets)",
             "rec_before": "BEFORE next item (full softmax)"}
    device = "CPU" if result["device"] == "CPU" else "GPU"
    on = f"on {result['device']}, {result['policy']}"
    if device == "GPU":
        on += ", encoders cuDNN-eligible" if result["cudnn_eligible"] else ", NOT cuDNN-eligible"
    figures = []
    for key, name in names.items():
        r = result["models"][key]
        detail = (f"{on}; batch {r['batch_size']}, {r['timed_steps']} steps timed after "
                  f"warm-up; load {result['load']:.1f} on {os.cpu_count()} cores before")
        if key == "rec":
            detail += (f"; sampled softmax ({r['num_sampled']:,} draws) over {r['items']:,} "
                       "items, evaluated on the full one")
        elif key == "rec_before":
            detail += f"; {r['items']:,}-item softmax"
        examples = f"{r['train_examples']:,} training examples of the {log_name} log"
        if r["epoch_measured"]:
            epoch, epoch_note = "one epoch", f"measured: one fit over the {examples}"
        else:
            epoch = "one epoch, projected"
            epoch_note = (f"PROJECTED: {r['startup_s']:.1f} s start-up + {examples} / examples/s "
                          f"(a real epoch over {EPOCH_LIMIT_S:.0f} s is not run)")
        figures += [
            Figure("train", f"{name}: examples/s ({device})", r["examples_per_s"], "examples/s",
                   "", detail),
            Figure("train", f"{name}: {epoch} ({device})", r["epoch_s"], "s", "", epoch_note),
        ]
    for key, target in (("rec", ">= 5x"), ("intent", ">= 2x")):
        now, before = result["models"][key], result["models"][f"{key}_before"]
        figures.append(Figure(
            "train", f"{names[key]}: speed-up over BEFORE ({device})",
            now["examples_per_s"] / before["examples_per_s"], "x", target,
            f"examples/s, both fits in one worker (load {result['load']:.1f} before)"))
    return figures


def run(scale: str, device: str = "auto") -> list[Figure]:
    """Measure on the device ``device`` picks (see the module docstring).

    :param scale: ``small`` or ``full`` (:data:`bench.data.LOGS`).
    :param device: ``auto``, ``cpu`` or ``gpu``.
    :return: the figures; the device used is printed to stderr as each worker ends.
    """
    if device not in DEVICES:
        raise ValueError(f"device={device!r}; use one of {DEVICES}")
    name = list(LOGS[scale])[-1]
    log = ensure_marts(get_log(name, *LOGS[scale][name]))
    warmup, steps = STEPS[scale]
    with tempfile.TemporaryDirectory(prefix="skiff-bench-train-") as tmp:
        env = skiff_env(Path(tmp) / "home")
        request = {"db": str(log.db), "warmup": warmup, "steps": steps}
        first_device = "gpu" if device == "gpu" else "cpu"
        measured = [run_worker(WORKER, Path(tmp) / first_device, env, device=first_device,
                               **request)]
        _say(measured[0])
        if device == "auto" and measured[0]["gpus"]:
            measured.append(run_worker(WORKER, Path(tmp) / "gpu", env, device="gpu", **request))
            _say(measured[1])
    first = measured[0]
    intra, inter = first["threads"]
    threads = f"TensorFlow threads intra {intra or 'auto'}, inter {inter or 'auto'}"
    figures = [
        Figure("train", "read the marts (every session)", first["read_s"], "s", "",
               f"{first['sessions']:,} sessions of the {name} log, DuckDB -> Arrow"),
        Figure("train", "intent: build examples", first["models"]["intent"]["prepare_s"], "s",
               "", "intent.prepare: prefixes at the add and after it"),
        Figure("train", "next item: build examples", first["models"]["rec"]["prepare_s"], "s",
               "", f"next_item.prepare: every position, window {WINDOW}"),
        *_figures(first, name),
        Figure("train", "peak RSS of the training process", first["peak_rss"] / 2**30, "GiB",
               "", f"marts, examples and both fits; {threads}"),
    ]
    for result in measured[1:]:
        figures += _figures(result, name)
    if not first["gpus"] and device != "cpu":
        note = ("--device gpu, but TensorFlow sees no GPU here: measured on the CPU instead"
                if device == "gpu" else "no GPU here: GPU figures not measured")
        figures.append(Figure("train", "GPUs visible to TensorFlow", 0, "", "", note))
    return figures


def _say(result: dict[str, Any]) -> None:
    """Print the device a worker trained on, its policy and its rates (stderr)."""
    rates = ", ".join(f"{key} {r['examples_per_s']:,.0f} examples/s, epoch {r['epoch_s']:.1f} s"
                      + ("" if r["epoch_measured"] else " (projected)")
                      for key, r in result["models"].items())
    print(f"    trained on {result['device']} ({result['policy']}): {rates}", file=sys.stderr,
          flush=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.bench_train``: the table of :func:`run`.

    :param argv: ``[small|full] [--device auto|cpu|gpu]``.
    :return: 0 (a missing GPU is a note, not a failure).
    """
    parser = argparse.ArgumentParser(prog="python -m bench.bench_train",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("scale", nargs="?", choices=tuple(LOGS), default="small")
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="where to train: auto (CPU, and the GPU when there is one), cpu, "
                             "or gpu (the CPU with a note when there is none)")
    args = parser.parse_args(argv)
    figures = run(args.scale, args.device)
    if args.device == "gpu" and any(f.name == "GPUs visible to TensorFlow" for f in figures):
        print("note: --device gpu, but TensorFlow sees no GPU on this machine; measured on the "
              "CPU instead.")
    print(Figure.table(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
