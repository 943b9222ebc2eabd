"""The collector: events/s and request latency of ``skiff collect``, durable (fsync'd) answers.

``skiff collect`` runs in its own process on loopback, as deployed (uvicorn, the append log
fsync'd before each answer, the roller cutting landing files every 60 s / 5 MiB); two
client processes drive it with httpx threads, one keep-alive connection each, posting for
a fixed time and recording every request's latency. Measured side by side:

- batches of 100 events (JSON arrays), 8 clients as fast as answers come: the throughput
  target (>= 5,000 events/s), at saturation;
- batches of 100 at the target rate, 5,000 events/s (4 clients on a fixed schedule): the
  latency target (p99 < 20 ms), counted from each request's due time;
- batches of 10, 8 clients, and single events, 8 clients: the cost per request;
- events per fsync: how many requests the group commit folds into one sync.

Afterwards every acknowledged event must be in the landing files (the server is stopped
with SIGTERM, which rolls what its log holds).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import REPO, Figure, skiff_env

# The client process: N threads, one httpx keep-alive connection each, fixed time. With a
# rate, each thread sends on a fixed schedule and a request's latency counts from the time it
# was due (a late client does not hide the server's delay: no coordinated omission).
_CLIENT = r"""
import hashlib, json, sys, threading, time
import httpx
url, clients, batch, seconds, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
rate = float(sys.argv[6])  # requests/s of each thread; 0: as fast as answers come
now = int(time.time() * 1000)
def h(text): return hashlib.sha256(text.encode()).hexdigest()
def event(i):
    e = {"session_id_hash": h(f"s{i // 8}"), "event_type": "event_product", "product_action": "detail",
         "product_sku_hash": h(f"p{i % 5000}"), "server_timestamp_epoch_ms": now - 1000 + i % 1000,
         "hashed_url": h(f"u{i % 3000}")}
    if i % 3 == 0:
        e.update(event_type="pageview", product_action=None, product_sku_hash=None)
    return e
bodies = [json.dumps([event(b * batch + j) for j in range(batch)] if batch > 1 else event(b)).encode()
          for b in range(200)]
lat, errors, accepted, stop, go = [], [], [], threading.Event(), threading.Barrier(clients + 1)
def client(seed):
    mine, bad, ok_events = [], 0, 0
    with httpx.Client(timeout=10, headers={"content-type": "application/json"}) as http:
        go.wait()
        t_measure = time.perf_counter() + warmup
        n = seed
        due = time.perf_counter() + seed / max(rate, 1) / clients  # threads spread out
        while not stop.is_set():
            body = bodies[n % len(bodies)]; n += clients
            if rate:
                time.sleep(max(0.0, due - time.perf_counter()))
                t0, due = due, due + 1 / rate
            else:
                t0 = time.perf_counter()
            try:
                answer = http.post(url, content=body)
                ok = answer.status_code == 200
            except httpx.HTTPError:
                ok = False
            t1 = time.perf_counter()
            if ok:
                ok_events += batch
            if t0 >= t_measure:
                if ok: mine.append(t1 - t0)
                else: bad += 1
    lat.extend(mine); errors.append(bad); accepted.append(ok_events)
threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
for t in threads: t.start()
go.wait(); time.sleep(warmup + seconds); stop.set()
for t in threads: t.join()
print(json.dumps({"latencies": lat, "errors": sum(errors), "seconds": seconds,
                  "accepted": sum(accepted)}))
"""


def _start(home: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """``skiff collect`` on a free loopback port; its /collect URL."""
    import httpx
    from skiff.ops.local_airflow import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "skiff.cli", "collect", "--port", str(port)],
                            env={**env, "SKIFF_COLLECT_LOG_DIR": str(home / "collector")},
                            cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=open(home / "collector.log", "w"))
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("skiff collect did not start:\n"
                               + (home / "collector.log").read_text()[-3000:])
        time.sleep(0.1)


def _drive(url: str, clients: int, batch: int, seconds: float, env: dict,
           processes: int = 2, events_per_s: float = 0) -> dict:
    """``processes`` client processes of ``clients // processes`` threads each, at once.

    :param events_per_s: the offered load, spread over the threads; 0: closed loop (each
        thread sends its next request when the last one is answered).
    """
    rate = events_per_s / batch / clients
    procs = [subprocess.Popen(
        [sys.executable, "-c", _CLIENT, url, str(clients // processes), str(batch),
         str(seconds), "1.0", str(rate)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env) for _ in range(processes)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=seconds + 120)
        if proc.returncode:
            raise RuntimeError(f"client failed: {err[-2000:]}")
        results.append(json.loads(out))
    lat = sorted(x for r in results for x in r["latencies"])
    errors = sum(r["errors"] for r in results)
    if not lat:
        raise RuntimeError(f"no successful request ({errors} errors)")
    return {"p50": lat[len(lat) // 2], "p99": lat[int(len(lat) * 0.99)],
            "rps": len(lat) / seconds, "eps": len(lat) * batch / seconds,
            "n": len(lat), "errors": errors}


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux ``/proc``; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _landed_events(root: Path) -> int:
    import gzip

    return sum(len(gzip.decompress(p.read_bytes()).splitlines())
               for p in root.rglob("*.ndjson.gz"))


def run(scale: str) -> list[Figure]:
    import httpx

    seconds = 6.0 if scale == "small" else 20.0
    runs: dict[tuple[int, int], dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        env = skiff_env(home)
        proc, base = _start(home, env)
        try:
            for clients, batch, offered in ((8, 100, 0), (4, 100, 5_000), (8, 10, 0), (8, 1, 0)):
                before = httpx.get(f"{base}/health").json()
                cpu = _cpu_seconds(proc.pid)
                # the paced run 3x longer: its p99 needs ~1,000 requests at 50 a second
                runs[clients, batch] = _drive(f"{base}/collect", clients, batch,
                                              seconds * (3 if offered else 1), env,
                                              events_per_s=offered)
                cpu = _cpu_seconds(proc.pid) - cpu
                after = httpx.get(f"{base}/health").json()
                commits = after["commits"] - before["commits"]
                events = after["accepted_events"] - before["accepted_events"]
                runs[clients, batch]["per_fsync"] = events / max(commits, 1)
                runs[clients, batch]["cpu_per_request"] = cpu / max(events / batch, 1)
            accepted = httpx.get(f"{base}/health").json()["accepted_events"]
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
        landed = _landed_events(home / "landing")
    if landed != accepted:
        raise RuntimeError(f"{accepted:,} events acknowledged, {landed:,} landed")
    ms = 1000.0
    big, paced, mid, one = runs[8, 100], runs[4, 100], runs[8, 10], runs[8, 1]
    note = "JSON arrays, 8 httpx clients in 2 other processes, fsync'd before each answer"
    return [
        Figure("collect", "events/s, batches of 100 (saturated)", big["eps"], "events/s",
               ">= 5000", f"{note}; {big['rps']:.0f} req/s, {big['errors']} errors; "
                          f"p50 {big['p50'] * ms:.0f} ms, p99 {big['p99'] * ms:.0f} ms"),
        Figure("collect", "request p50 at 5,000 events/s", paced["p50"] * ms, "ms", "",
               f"batches of 100 from 4 paced clients, {paced['n']:,} requests"),
        Figure("collect", "request p99 at 5,000 events/s", paced["p99"] * ms, "ms", "< 20 ms",
               f"from each request's due time; {paced['per_fsync']:.0f} events per fsync, "
               f"{paced['eps']:,.0f} events/s served"),
        Figure("collect", "server CPU per request, batches of 100",
               big["cpu_per_request"] * ms, "ms", "",
               f"the collector's process, warm-up included: the floor under the latency; "
               f"single events {one['cpu_per_request'] * ms:.2f} ms"),
        Figure("collect", "events/s, batches of 10", mid["eps"], "events/s", "",
               f"p50 {mid['p50'] * ms:.1f} ms, p99 {mid['p99'] * ms:.1f} ms; "
               f"{mid['per_fsync']:.0f} events per fsync"),
        Figure("collect", "requests/s, single events", one["rps"], "req/s", "",
               f"p50 {one['p50'] * ms:.1f} ms, p99 {one['p99'] * ms:.1f} ms; "
               f"{one['per_fsync']:.1f} events per fsync"),
        Figure("collect", "acknowledged events landed", landed, "events", "= acknowledged",
               "after SIGTERM: the roller writes what the log holds"),
    ]


if __name__ == "__main__":  # python -m bench.bench_collect [full]
    sys.path.insert(0, str(REPO))
    print(Figure.table(run(sys.argv[1] if len(sys.argv) > 1 else "small")))
