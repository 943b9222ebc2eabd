"""The local serving path: GET /predict over HTTP through the Lambda handler to the model.

This process runs what ``skiff serve`` runs (the model server and the ``/predict`` adapter
calling the Lambda handler with an in-process runtime client, on uvicorn); a SECOND process on loopback
drives it with concurrent keep-alive clients for a fixed time and reports every request's
latency. Measured side by side:

- the model's raw cost: one call of the SavedModel's traced ``serve`` function (batch 1 and
  batch 32), so the HTTP and handler overhead is visible;
- ``/predict`` with micro-batching (the default) and without (``SKIFF_SERVE_MAX_BATCH=1``):
  latency with 4 concurrent clients, throughput with 16 (at 16 in flight, latency is
  16 / throughput by Little's law, whatever the server does);
- ``/predict`` through boto3's ``sagemaker-runtime`` client to the model server (two HTTP hops,
  the path a Lambda takes to SageMaker), fewer clients;
- ``/predict`` with the prediction log on (``SKIFF_PREDLOG_URL``: every answer handed to the
  log's sender process, at ``SKIFF_PREDLOG_NICE``, which posts it to a ``skiff collect`` in
  a third process), and with it on while the collector is down (a port
  nothing listens on: every post fails, events are dropped and counted), against the same
  run without it, in interleaved rounds: the log must leave the p99 as it is. In production
  the collector is another host; here it shares the 2 cores with the server and the load
  generator, and its CPU (parsing, checking and fsync'ing every event, about 80 us an event)
  lands on the measured latency. So the log's figure runs the collector under
  ``nice -n 19`` (it gets the CPU the server and the clients leave: the other host's model),
  and a second figure runs it at the server's priority (the same-machine cost).

The model is an untrained next-item model of the training library's default size (random
weights cost the same as trained ones): 2,000 SKUs at ``small`` scale, 50,000 (the real
catalogue's order) at ``full``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from bench.common import REPO, Figure, skiff_env

# The client process: N threads, one keep-alive connection each, random sessions, fixed time.
_CLIENT = r"""
import http.client, json, random, sys, threading, time
host, port, clients, seconds, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
skus = json.loads(sys.stdin.read())
lat, errors, stop, go = [], [], threading.Event(), threading.Barrier(clients + 1)
def client(seed):
    rng = random.Random(seed)
    conn = http.client.HTTPConnection(host, port, timeout=10)
    mine, bad = [], 0
    go.wait()
    t_measure = time.perf_counter() + warmup
    while not stop.is_set():
        path = "/predict?session=" + ",".join(rng.choices(skus, k=rng.randint(1, 10)))
        t0 = time.perf_counter()
        try:
            conn.request("GET", path)
            answer = conn.getresponse(); answer.read()
            ok = answer.status == 200
        except Exception:
            ok = False; conn.close(); conn = http.client.HTTPConnection(host, port, timeout=10)
        t1 = time.perf_counter()
        if t0 >= t_measure:
            if ok: mine.append(t1 - t0)
            else: bad += 1
    lat.extend(mine); errors.append(bad)
threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
for t in threads: t.start()
go.wait(); time.sleep(warmup + seconds); stop.set()
for t in threads: t.join()
print(json.dumps({"latencies": lat, "errors": sum(errors), "seconds": seconds}))
"""


def _bundle(root: Path, n_items: int) -> Path:
    """An untrained next-item model of the flows' default size, as a bundle."""
    from skiff.serve import write_bundle
    from skiff.train import features, models

    vocab = features.Vocabulary((features.PAD_TOKEN, features.OOV_TOKEN,
                                 *(f"{i:064x}" for i in range(n_items - 2))))
    model = models.build_next_item_model(len(vocab), max_position=10)
    return write_bundle(model, root / "rec", kind="rec", vocabulary=vocab, version="BenchFlow/1",
                        max_len=10, k=20)


def _raw_cost(bundle: Path) -> dict[str, float]:
    """Median seconds of one traced-function call, batch 1 and batch 32."""
    import numpy as np

    from skiff.serve import LoadedModel

    loaded = LoadedModel.load(bundle)
    rng = np.random.default_rng(0)
    out = {}
    for batch in (1, 32):
        items = rng.integers(2, len(loaded.codec.tokens), (batch, 10)).astype(np.int32)
        first = items[:, 0].copy()
        fn = loaded._fn  # the concrete function the server calls

        def call() -> None:
            fn(items=items, first=first)["items"].numpy()

        for _ in range(20):
            call()
        times = []
        for _ in range(300):
            started = time.perf_counter()
            call()
            times.append(time.perf_counter() - started)
        out[batch] = statistics.median(times)
    return out


def _drive(port: int, skus: list[str], clients: int, seconds: float, env: dict) -> dict:
    """Run the client process against 127.0.0.1:port; latencies in seconds."""
    proc = subprocess.run(
        [sys.executable, "-c", _CLIENT, "127.0.0.1", str(port), str(clients), str(seconds), "1.0"],
        input=json.dumps(skus), capture_output=True, text=True, env=env, check=True,
        timeout=seconds + 120)
    result = json.loads(proc.stdout)
    lat = sorted(result["latencies"])
    if not lat:
        raise RuntimeError(f"no successful request ({result['errors']} errors)")
    return {"p50": lat[len(lat) // 2], "p99": lat[int(len(lat) * 0.99)],
            "rps": len(lat) / result["seconds"], "n": len(lat), "errors": result["errors"]}


@contextmanager
def _collector(home: Path, env: dict, nice: int = 0):
    """``skiff collect`` in its own process and home; yields its ``/collect`` URL.

    :param nice: the collector's niceness (19: it runs on what the other processes leave).
    """
    import httpx

    from skiff.ops.local_airflow import free_port

    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    prefix = ["nice", "-n", str(nice)] if nice else []
    proc = subprocess.Popen([*prefix, sys.executable, "-m", "skiff.cli", "collect"],
                            env={**env, "SKIFF_HOME": str(home), "SKIFF_COLLECT_PORT": str(port)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("skiff collect did not start")
            time.sleep(0.1)
        yield f"{url}/collect"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _serve_and_drive(bundle: Path, skus: list[str], *, max_batch: int, clients: int,
                     seconds: float, env: dict, via_boto3: bool = False,
                     predlog_url: str = "") -> dict:
    from skiff.config import ServingConfig
    from skiff.serve import EndpointStore, serving_server
    from skiff.web import ServerGroup
    from skiff_api import handler, local_adapter
    from skiff_api.local_stack import LocalStack

    with tempfile.TemporaryDirectory() as store:
        config = ServingConfig(max_batch=max_batch, token_file=Path(store) / "token",
                               predlog_url=predlog_url)
        stack = LocalStack.build(config, bundles={"skiff-rec": bundle},
                                 store=EndpointStore(store), port=0, api_port=0,
                                 control_port=0).start()
        extra = None
        try:
            port = stack.port("api")
            if via_boto3:  # a second adapter whose handler reaches the model server via boto3
                settings = handler.Settings({"SKIFF_RUNTIME_URL": stack.urls["models"]})
                app = local_adapter.create_app(settings=settings, config=config)
                extra = ServerGroup([("api", serving_server(app, config), "127.0.0.1", 0)])
                port = extra.start().address("api")[1]
            result = _drive(port, skus, clients, seconds, env)
            batches = stack.models.endpoint("skiff-rec").describe().get("batches")
            if batches and batches["calls"]:
                result["rows_per_call"] = batches["rows"] / batches["calls"]
        finally:
            if extra is not None:
                extra.stop()
            stack.close()  # the prediction log posts what it holds, then stops
        if stack.models.predlog is not None:
            result["predlog"] = stack.models.predlog.stats()
        return result


def _ms_list(result: dict) -> str:
    return "p99s " + ", ".join(f"{p * 1000:.1f}" for p in result["p99s"]) + " ms"


def _median_round(rounds: list[dict]) -> dict:
    """The round of median p99, with the prediction log's counters summed over the rounds."""
    chosen = dict(sorted(rounds, key=lambda r: r["p99"])[len(rounds) // 2])
    if "predlog" in chosen:
        chosen["predlog"] = {k: sum(r["predlog"][k] for r in rounds)
                             for k in ("sent", "dropped", "posts_failed")}
    chosen["p99s"] = [r["p99"] for r in rounds]
    return chosen


def run(scale: str) -> list[Figure]:
    from skiff.config import ServingConfig
    from skiff.serve import configure_tensorflow, read_bundle_meta

    n_items, seconds = (2_000, 6.0) if scale == "small" else (50_000, 20.0)
    configure_tensorflow(ServingConfig().tf_threads)  # as skiff serve does, before any model
    with tempfile.TemporaryDirectory() as home:
        env = skiff_env(Path(home))
        bundle = _bundle(Path(home), n_items)
        skus = read_bundle_meta(bundle)["vocabulary"][2:]
        raw = _raw_cost(bundle)
        runs = {(batch, clients): _serve_and_drive(bundle, skus, max_batch=batch, clients=clients,
                                                   seconds=seconds, env=env)
                for batch in (64, 1) for clients in (4, 16)}
        boto = _serve_and_drive(bundle, skus, max_batch=64, clients=4, seconds=seconds / 2,
                                env=env, via_boto3=True)
        # the prediction log: off, on, on with the collector down, in interleaved rounds
        # (the machine's noise hits the three alike); each mode's median round is reported
        from skiff.ops.local_airflow import free_port

        modes: dict[str, list[dict]] = {"off": [], "on": [], "same": [], "down": []}
        with _collector(Path(home) / "collector", env, nice=19) as url, \
                _collector(Path(home) / "collector-same", env) as same_url:
            dead = f"http://127.0.0.1:{free_port()}/collect"
            for _ in range(5):
                for mode, target in (("off", ""), ("on", url), ("same", same_url),
                                     ("down", dead)):
                    modes[mode].append(_serve_and_drive(
                        bundle, skus, max_batch=64, clients=4, seconds=seconds / 2, env=env,
                        predlog_url=target))
        unlogged, logged, same, down = (_median_round(modes[m])
                                        for m in ("off", "on", "same", "down"))
    ms = 1000.0
    lat, thr = runs[64, 4], runs[64, 16]
    one_lat, one_thr = runs[1, 4], runs[1, 16]
    note = f"{n_items:,} SKUs, sessions of 1-10 SKUs, client threads in a 2nd process"
    return [
        Figure("serve", "model call, batch 1 (traced serve function)", raw[1] * ms, "ms", "",
               "median of 300: the floor under /predict"),
        Figure("serve", "model call, batch 32", raw[32] * ms, "ms", "",
               f"{raw[32] / raw[1]:.1f}x batch 1 for 32x the rows"),
        Figure("serve", "/predict p50, 4 concurrent clients", lat["p50"] * ms, "ms", "< 5 ms",
               note),
        Figure("serve", "/predict p99, 4 concurrent clients", lat["p99"] * ms, "ms", "< 15 ms",
               f"{lat['n']:,} requests, {lat['errors']} errors"),
        Figure("serve", "/predict throughput, 16 concurrent clients", thr["rps"], "req/s",
               ">= 1000", f"{thr.get('rows_per_call', 1):.1f} sessions per model call; "
                          f"p50 {thr['p50'] * ms:.1f} ms, p99 {thr['p99'] * ms:.1f} ms"),
        Figure("serve", "/predict throughput, 4 concurrent clients", lat["rps"], "req/s", "",
               f"{lat.get('rows_per_call', 1):.1f} sessions per model call"),
        Figure("serve", "no batching: p50 / 4 clients", one_lat["p50"] * ms, "ms", "",
               f"SKIFF_SERVE_MAX_BATCH=1; p99 {one_lat['p99'] * ms:.1f} ms"),
        Figure("serve", "no batching: throughput / 16 clients", one_thr["rps"], "req/s", "",
               f"p50 {one_thr['p50'] * ms:.1f} ms, p99 {one_thr['p99'] * ms:.1f} ms"),
        Figure("serve", "via boto3 runtime client: p50 / 4 clients", boto["p50"] * ms, "ms", "",
               f"adapter -> boto3 sagemaker-runtime -> model server; {boto['rps']:.0f} req/s"),
        Figure("serve", "prediction log off: p99 / 4 clients", unlogged["p99"] * ms, "ms", "",
               f"median of 5 rounds interleaved with the three below ({_ms_list(unlogged)}); "
               f"p50 {unlogged['p50'] * ms:.1f} ms, {unlogged['rps']:.0f} req/s"),
        Figure("serve", "prediction log on: p99 / 4 clients", logged["p99"] * ms, "ms",
               "= log off", f"every answer to skiff collect (3rd process, nice 19: the other "
               f"host's model; {_ms_list(logged)}): {logged['predlog']['sent']:,} events sent, "
               f"{logged['predlog']['dropped']} dropped; p50 {logged['p50'] * ms:.1f} ms, "
               f"{logged['rps']:.0f} req/s"),
        Figure("serve", "prediction log on, collector at the server's priority: p99 / 4 clients",
               same["p99"] * ms, "ms", "", f"the collector's CPU competes for the same 2 cores "
               f"({_ms_list(same)}); {same['predlog']['sent']:,} events sent; p50 "
               f"{same['p50'] * ms:.1f} ms, {same['rps']:.0f} req/s"),
        Figure("serve", "prediction log on, collector down: p99 / 4 clients", down["p99"] * ms,
               "ms", "= log off", f"{_ms_list(down)}; {down['predlog']['dropped']:,} events "
               f"dropped (counted), {down['predlog']['posts_failed']} posts failed; p50 "
               f"{down['p50'] * ms:.1f} ms, {down['rps']:.0f} req/s"),
    ]


if __name__ == "__main__":  # python -m bench.bench_serve [full]
    sys.path.insert(0, str(REPO))
    print(Figure.table(run(sys.argv[1] if len(sys.argv) > 1 else "small")))
