"""The ``skiff`` command: generate, emit, collect or load data, the replay source, status,
validate a range, serve."""

# Longer than ~400 lines: one short function per subcommand and the parser that lists them,
# kept in one file so that the command reads as one page (each does its work in a stage).

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from skiff.config import SkiffConfig
from skiff.exceptions import SkiffConfigError, SkiffError

__all__ = ["main"]

log = logging.getLogger("skiff")

MART_TABLES = ("fct_sessions", "fct_session_sequences", "dim_products")
RAW_TABLES = ("browsing_train", "search_train", "sku_to_content")


def _time(value: str) -> datetime:
    from skiff.times import parse_time

    try:
        return parse_time(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 8601 time") from None


def _cmd_generate(args: argparse.Namespace, cfg: SkiffConfig) -> None:
    from skiff.data import generate

    summary = generate(args.out, sessions=args.sessions, seed=args.seed, end=args.end,
                       span_hours=args.span_hours, fmt=args.format, progress=not args.quiet)
    for name, path in summary.files.items():
        print(f"{summary.rows[name]:>12,} rows  {path}")
    print(f"{summary.sessions:,} sessions in {summary.seconds:.1f}s")


def _cmd_emit(args: argparse.Namespace, cfg: SkiffConfig) -> int:
    import signal
    import threading
    from dataclasses import replace

    from skiff.data.emitter import Emitter
    from skiff.data.emitter_files import write_catalogue, write_landing
    from skiff.data.emitter_http import CollectorClient, post_range, run_live
    from skiff.times import to_epoch_ms

    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per POST
    emit = replace(cfg.emit, **{k: v for k, v in (("url", args.url), ("seed", args.seed),
                                                  ("sessions_per_hour", args.sessions_per_hour),
                                                  ("drift", args.drift),
                                                  ("drift_from", args.drift_from),
                                                  ("predict_url", args.predict_url),
                                                  ("predict_share", args.predict_share))
                                if v is not None})
    emitter = Emitter.from_config(emit)
    if args.catalogue:
        print(write_catalogue(args.catalogue, emitter))
        return 0
    history_file = None
    if args.after_history:
        from skiff.data.history import META_FILE, History

        history_file = Path(cfg.collect.landing_uri) / META_FILE
        history = History.read(history_file)
        if history is None:
            raise SkiffConfigError(f"--after-history: no history in {history_file}; run "
                                   "`skiff init` first (make run / make airflow do).")
        args.since = history.emitted_to
    fast_forward = args.to_files is not None or (args.to is not None and args.speed is None)
    if fast_forward and (args.since is None or args.to is None):
        raise SkiffConfigError("--to-files and fast-forward need both --from and --to.")
    if args.to_files is not None:
        files, events = [], 0
        for delivered in emitter.deliveries(args.since, args.to):
            files += write_landing(args.to_files, delivered)
            events += len(delivered)
        files.append(write_catalogue(args.to_files, emitter,
                                     landing_hour=to_epoch_ms(args.since) // 3_600_000))
        print(f"{events:,} events in {len(files) - 1} landing files under {args.to_files} "
              f"(catalogue: {files[-1].name})")
        return 0
    predictions = None
    if emit.predict_url and fast_forward:
        log.warning("SKIFF_EMIT_PREDICT_URL is set, but a fast-forward asks nothing: the "
                    "answers are judged against what the shoppers do next, live.")
    elif emit.predict_url:
        from skiff.data.emitter_predict import ShopperPredictions

        predictions = ShopperPredictions(emit.predict_url, share=emit.predict_share,
                                         timeout_s=emit.predict_timeout_s)
    stop = threading.Event()  # SIGINT / SIGTERM (docker stop): finish the batch in flight, exit
    handlers = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with CollectorClient(emit.url, give_up_s=emit.give_up_s if fast_forward else None,
                             stop=stop) as client:
            if fast_forward:
                summary = post_range(emitter, client, args.since, args.to,
                                     batch_size=emit.batch_size)
            else:
                summary = run_live(emitter, client, start=args.since, until=args.to,
                                   speed=emit.speed if args.speed is None else args.speed,
                                   batch_size=emit.batch_size, predictions=predictions)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        if predictions is not None:
            asked = predictions.close()
            print("asked {url}: {asked:,} requests, {answered:,} answered, {refused:,} refused, "
                  "{failed:,} failed, {dropped:,} dropped".format(url=emit.predict_url, **asked))
    if history_file is not None and summary.until_ms:  # a restart goes on from here
        from skiff.times import from_epoch_ms

        reached = from_epoch_ms(summary.until_ms)
        history = History.read(history_file)
        if history is not None and reached > history.emitted_to:
            replace(history, emitted_to=reached).write(history_file)
    rate = summary.events / summary.seconds if summary.seconds else 0.0
    print(f"posted {summary.events:,} events to {emit.url} in {summary.seconds:.1f}s "
          f"({rate:,.0f}/s): accepted {summary.accepted:,}, rejected {summary.rejected:,}, "
          f"{summary.retries} retries")
    if summary.rejected:
        print("skiff: the collector rejected events, e.g.\n  " + "\n  ".join(summary.reasons),
              file=sys.stderr)
        return 1
    return 0


def _cmd_load(args: argparse.Namespace, cfg: SkiffConfig) -> None:
    from skiff.data import load_dir
    from skiff.times import to_epoch_ms
    from skiff.data import warehouse_from_config

    summary = load_dir(
        args.dir,
        warehouse_from_config(cfg.warehouse),
        batch_id=args.batch_id,
        since_ms=to_epoch_ms(args.since) if args.since else None,
        until_ms=to_epoch_ms(args.until) if args.until else None,
        arrival=args.arrival,
    )
    for table, rows in summary.rows.items():
        print(f"{rows:>12,} rows  -> {cfg.warehouse.raw_schema}.{table}")
    print(f"batch {summary.batch_id} in {summary.seconds:.1f}s")


def _cmd_replay_init(args: argparse.Namespace, cfg: SkiffConfig) -> None:
    from skiff.data import init_source
    from skiff.data import warehouse_from_config

    info = init_source(cfg.replay.source_dir, warehouse_from_config(cfg.warehouse),
                       sessions=cfg.replay.sessions, seed=cfg.replay.seed,
                       span_hours=cfg.replay.span_hours, progress=not args.quiet)
    start, end = info.last_interval
    log.info("Replay source %s covers %s .. %s", info.path, info.start, info.end)
    # Last line, read by `make run`: the run-after time of the hour left for the DAG. Airflow 3
    # maps a manual run at that time to the data interval ending there: [end - 1h, end).
    print(end.isoformat())


def _cmd_init(args: argparse.Namespace, cfg: SkiffConfig) -> None:
    from skiff.data import Emitter, LandingZone, init_history, warehouse_from_config

    history, _ = init_history(Emitter.from_config(cfg.emit),
                              LandingZone.from_uri(cfg.collect.landing_uri),
                              warehouse_from_config(cfg.warehouse),
                              span_hours=cfg.replay.span_hours, schedule=cfg.ingest.schedule)
    # Last line, read by `make run` and `make airflow`: the run-after time of the interval
    # left for the DAG (a manual run at that time gets the data interval ending there), and
    # where a live emitter goes on from.
    print(f"{history.end.isoformat()} {history.emitted_to.isoformat()}")


def _cmd_status(args: argparse.Namespace, cfg: SkiffConfig) -> None:
    from skiff.data import warehouse_from_config

    warehouse = warehouse_from_config(cfg.warehouse)
    where = (cfg.warehouse.duckdb_path if cfg.warehouse.backend == "duckdb"
             else f"snowflake ({cfg.warehouse.snowflake_conn_id})")
    print(f"warehouse: {where}")
    for schema, tables in ((cfg.warehouse.raw_schema, RAW_TABLES),
                           (cfg.warehouse.marts_schema, MART_TABLES)):
        for table, rows in warehouse.row_counts(schema, tables).items():
            shown = "missing" if rows is None else f"{rows:,}"
            print(f"  {schema}.{table:<24} {shown:>12}")


def _cmd_corrupt(args: argparse.Namespace, cfg: SkiffConfig) -> None:
    from skiff.data import DEFECTS, IntervalData, append_bad_batch, build_bad_batch
    from skiff.data import SourceInfo
    from skiff.times import to_epoch_ms
    from skiff.data import BROWSING
    from skiff.data import warehouse_from_config

    if args.list or not args.defect:
        for defect in DEFECTS.values():
            print(f"  {defect.name:<22} fails {defect.task_id:<24} {defect.description}")
        if not args.list:
            raise SkiffError("choose a defect: skiff corrupt --defect NAME (names above)")
        return
    info = SourceInfo.read(cfg.replay.source_dir)
    start, end = info.last_interval
    warehouse = warehouse_from_config(cfg.warehouse)
    batch_id = f"corrupt:{args.defect}:{start.isoformat()}"
    if warehouse.batch_loaded(BROWSING, batch_id):
        print(f"{batch_id} is already in the raw log: nothing appended.")
        return
    with_rows = warehouse.count_events(to_epoch_ms(start), to_epoch_ms(end))
    if with_rows:
        raise SkiffError(
            f"The raw log already holds {with_rows:,} events of {start:%Y-%m-%d %H:%M} .. "
            f"{end:%H:%M} UTC: a bad batch must replace the hour's delivery, not add to it. "
            "Use a fresh SKIFF_HOME (make run-bad does), or make clean first."
        )
    bad = build_bad_batch(args.defect, IntervalData.from_source(cfg.replay.source_dir, start, end),
                          seed=args.seed)
    rows = append_bad_batch(bad, warehouse, batch_id)
    defect = DEFECTS[args.defect]
    print(f"appended bad batch {batch_id}: {bad.note}; rows {rows or 'none'}")
    print(f"the run of {start:%Y-%m-%d %H:%M} .. {end:%H:%M} UTC (logical date {end.isoformat()}) "
          f"should fail at {defect.task_id}, naming {defect.expect}")


def _cmd_report(args: argparse.Namespace, cfg: SkiffConfig) -> int:
    from skiff.validate import read_reports, report_summary

    label, documents = read_reports(cfg.validation.reports_dir, args.interval)
    print(report_summary(cfg.validation.reports_dir, label, documents))
    return 1 if any(not d["success"] for d in documents) else 0


def _cmd_validate(args: argparse.Namespace, cfg: SkiffConfig) -> int:
    from skiff.data import warehouse_from_config
    from skiff.validate import SUITES, ValidationWindow, read_reports, report_summary
    from skiff.validate.whole_log import log_span, validate_range

    if not (args.all or args.start or args.end):
        raise SkiffConfigError("give the range: --all (the whole log) or --start/--end.")
    if cfg.warehouse.backend != "duckdb":
        raise SkiffConfigError(
            "skiff validate runs inside DuckDB; on Snowflake, trigger skiff_hourly with "
            "full_refresh (GX's Snowflake datasource pushes the suites' SQL down there).")
    warehouse = warehouse_from_config(cfg.warehouse)
    start, end = args.start, args.end
    if start is None or end is None:
        first, last = log_span(warehouse, cfg)
        start, end = start or first, end or last
    if end <= start:
        raise SkiffConfigError(f"--end {end.isoformat()} must be after --start "
                               f"{start.isoformat()}.")
    window = ValidationWindow(start, end)
    quiet = args.quiet
    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # its import's chatter

    def progress(line: str) -> None:
        if not quiet:
            print(line, file=sys.stderr, flush=True)

    results = validate_range(cfg, window, warehouse, suites=args.suite or SUITES,
                             data_docs=not args.no_data_docs, progress=progress)
    label, documents = read_reports(cfg.validation.reports_dir, window.span_label)
    ran = {r.suite.name for r in results}  # not the folder's results of an earlier run
    print(report_summary(cfg.validation.reports_dir, label,
                         [d for d in documents if d["suite"] in ran]))
    return 1 if any(not r.success for r in results) else 0


def _cmd_run_hour(args: argparse.Namespace, cfg: SkiffConfig) -> int:
    from skiff.config import skiff_home
    from skiff.ops.progress import follow_dag_test

    stamp = args.logical_date.replace(":", "").replace("+0000", "Z")
    log = args.log or skiff_home() / "logs" / f"run-{args.dag}-{stamp}.log"
    return follow_dag_test(args.dag, args.logical_date, log)


def _cmd_contract(args: argparse.Namespace, cfg: SkiffConfig) -> int:
    from skiff.data.contract import CONTRACT_FILE
    from skiff.validate.from_contract import stale_files, write_generated

    root = Path(args.root) if args.root else CONTRACT_FILE.parents[3]
    if not (root / "docs" / "validation.md").is_file():
        raise SkiffError(f"{root} is not the Skiff repository (no docs/validation.md); "
                         "give --root.")
    if args.check:
        stale = stale_files(root)
        for path in stale:
            print(f"stale: {path.relative_to(root)} (run skiff contract --write)")
        return 1 if stale else 0
    changed = write_generated(root)
    for path in changed:
        print(f"wrote {path.relative_to(root)}")
    print(f"{len(changed)} file(s) changed from {CONTRACT_FILE.relative_to(root)}")
    return 0


def _cmd_serve(args: argparse.Namespace, cfg: SkiffConfig) -> None:
    # The one import of skiff_api in skiff: the command wires the model server to the
    # /predict adapter, and skiff_api builds on skiff, not the other way round.
    from skiff_api.local_stack import LocalStack

    bundles = {}
    for spec in args.model:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise SkiffConfigError(f"--model {spec!r}: use ENDPOINT=BUNDLE, e.g. "
                                   f"{cfg.serving.endpoint('rec')}=path/to/bundle")
        bundles[name] = Path(path)
    stack = LocalStack.build(cfg.serving, bundles=bundles, with_api=not args.no_api,
                             port=args.port, api_port=args.api_port,
                             control_port=args.control_port)
    urls = stack.urls
    for endpoint in stack.models.describe()["endpoints"]:
        print(f"  {endpoint['endpoint_name']:<16} {endpoint.get('model_version', '-')}")
    if not stack.models.endpoints:
        print("  no endpoint deployed yet: the deploy stage (or --model) swaps models in")
    print(f"model server  {urls['models']}  (GET /ping, POST /invocations, "
          "POST /endpoints/<name>/invocations)")
    print(f"control plane {urls['control']}  (GET /endpoints, POST /endpoints/<name>/model; "
          "Authorization: Bearer $SKIFF_SERVE_TOKEN)")
    if "api" in urls:
        print(f"predict API   {urls['api']}/predict?session=view,detail,add")
    stack.serve_forever(lambda: print("serving (Ctrl-C stops)", flush=True))


def _cmd_collect(args: argparse.Namespace, cfg: SkiffConfig) -> None:
    from dataclasses import replace

    from skiff.data.collector import serve

    collect = replace(cfg.collect, **{k: v for k, v in (("host", args.host), ("port", args.port),
                                                         ("landing_uri", args.landing_uri))
                                      if v is not None})

    def ready(url: str) -> None:
        print(f"collector     {url}  (POST JSON / array / NDJSON; GET pixel; GET /health)",
              flush=True)
        print(f"landing zone  {collect.landing_uri}  (rolled every {collect.roll_seconds:g} s "
              f"or {collect.roll_bytes:,} bytes)", flush=True)
        print(f"append log    {collect.log_dir}", flush=True)

    serve(collect, validation=cfg.validation, ready=ready)


def build_parser() -> argparse.ArgumentParser:
    cfg = SkiffConfig.from_env()
    parser = argparse.ArgumentParser(prog="skiff", description=__doc__)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or info logs")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="write a synthetic dataset in the Coveo SIGIR eCom 2021 format")
    gen.add_argument("--sessions", type=int, default=cfg.replay.sessions, help="number of sessions")
    gen.add_argument("--seed", type=int, default=cfg.replay.seed, help="random seed")
    gen.add_argument("--out", type=Path, required=True, help="output folder")
    gen.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    gen.add_argument("--span-hours", type=int, default=cfg.replay.span_hours,
                     help="hours of history, ending at --end")
    gen.add_argument("--end", type=_time, default=None,
                     help="end of the span, ISO 8601 (default: now, floored to the hour)")
    gen.set_defaults(func=_cmd_generate)

    emit = sub.add_parser(
        "emit", help="simulated shoppers posting to the collector: live (default), fast-forward "
                     "(--from/--to), or as landing files (--to-files)",
        description="Live (no --to, or --speed): post each event around its time, on a clock "
                    "--speed times faster than real time (never ahead of it), until stopped or "
                    "--to. Fast-forward (--from and --to, no --speed): post every event arriving "
                    "in [--from, --to) as fast as the collector takes them, then exit. The same "
                    "seed gives the same events of any hour.")
    emit.add_argument("--from", dest="since", type=_time,
                      help="start, ISO 8601 (live default: now)")
    emit.add_argument("--to", type=_time, help="end (exclusive), ISO 8601")
    emit.add_argument("--speed", type=float, default=None,
                      help=f"live, this many times faster than real time (SKIFF_EMIT_SPEED, "
                           f"{cfg.emit.speed:g})")
    emit.add_argument("--after-history", action="store_true",
                      help="live, from where `skiff init`'s history (or the last live run "
                           "with this flag) ended: nothing twice, no gap")
    emit.add_argument("--to-files", type=Path, metavar="DIR",
                      help="write [--from, --to) as landing files under DIR (and the "
                           "catalogue once) instead of posting")
    emit.add_argument("--catalogue", type=Path, metavar="DIR",
                      help="write DIR/sku_to_content.parquet (for skiff load) and exit")
    emit.add_argument("--url", help=f"the collector (SKIFF_COLLECT_URL, {cfg.emit.url})")
    emit.add_argument("--seed", type=int, help=f"seed (SKIFF_EMIT_SEED, {cfg.emit.seed})")
    emit.add_argument("--sessions-per-hour", type=float,
                      help="mean sessions starting in an hour at the daily peak "
                           f"(SKIFF_EMIT_SESSIONS_PER_HOUR, {cfg.emit.sessions_per_hour:g})")
    emit.add_argument("--drift", choices=("short", "tail"),
                      help="the shoppers change behaviour (SKIFF_EMIT_DRIFT): shorter sessions, "
                           "or products others ignore")
    emit.add_argument("--drift-from", metavar="TIME",
                      help="when the drift starts, ISO 8601 (SKIFF_EMIT_DRIFT_FROM; default: "
                           "every session)")
    emit.add_argument("--predict-url", metavar="URL",
                      help="live: the sampled shoppers ask this GET /predict as they browse "
                           f"(SKIFF_EMIT_PREDICT_URL, {cfg.emit.predict_url or 'none'})")
    emit.add_argument("--predict-share", type=float, metavar="SHARE",
                      help="share of the sessions that ask (SKIFF_EMIT_PREDICT_SHARE, "
                           f"{cfg.emit.predict_share:g})")
    emit.set_defaults(func=_cmd_emit)

    collect = sub.add_parser("collect", help="the /collect collector: events in over HTTP, "
                             "fsync'd to an append log, rolled into the landing zone")
    collect.add_argument("--host", help=f"address to bind (SKIFF_COLLECT_HOST, "
                                        f"default {cfg.collect.host})")
    collect.add_argument("--port", type=int, help=f"port (SKIFF_COLLECT_PORT, default "
                                                  f"{cfg.collect.port}; 0 picks a free one)")
    collect.add_argument("--landing-uri", help="folder or s3://bucket/prefix (SKIFF_LANDING_URI)")
    collect.set_defaults(func=_cmd_collect)

    load = sub.add_parser("load", help="append contract files (generated or the real Coveo CSVs) to the raw log")
    load.add_argument("dir", type=Path, help="folder with browsing_train / search_train / sku_to_content files")
    load.add_argument("--since", type=_time, help="only events at or after this time")
    load.add_argument("--until", type=_time, help="only events before this time")
    load.add_argument("--batch-id", help="batch id stamped on the rows (default: load:<folder>:<time>)")
    load.add_argument("--arrival", choices=("load", "event"), default="load",
                      help="arrival_ts_ms of the rows: the load time (default), or each event's "
                           "own time (to replay a history hour by hour)")
    load.set_defaults(func=_cmd_load)

    init = sub.add_parser("init", help="the shoppers' history as landing files, all but the "
                          "last hour ingested (SKIFF_SAMPLE_SPAN_HOURS; run again, it extends it)")
    init.set_defaults(func=_cmd_init)

    replay = sub.add_parser("replay-init", help="generate the replay source if missing and load its history")
    replay.set_defaults(func=_cmd_replay_init)

    status = sub.add_parser("status", help="row counts of the raw log and the marts")
    status.set_defaults(func=_cmd_status)

    corrupt = sub.add_parser(
        "corrupt", help="append a deliberately bad batch for the replay source's last hour")
    corrupt.add_argument("--defect", help="the defect to plant (see --list)")
    corrupt.add_argument("--list", action="store_true", help="list the defects and exit")
    corrupt.add_argument("--seed", type=int, default=0, help="which rows the defect touches")
    corrupt.set_defaults(func=_cmd_corrupt)

    contract = sub.add_parser("contract", help="write the raw GX suites and the docs' "
                              "contract table from include/skiff/data/contract.toml")
    contract.add_argument("--check", action="store_true",
                          help="only list the files that are stale (exit status 1 if any)")
    contract.add_argument("--write", action="store_true", help="write them (the default)")
    contract.add_argument("--root", help="the repository (default: the one holding skiff)")
    contract.set_defaults(func=_cmd_contract)

    report = sub.add_parser("report", help="the validate stage's results of an interval "
                                           "(exit status 1 when a suite failed)")
    report.add_argument("--interval", help="interval start, ISO 8601 (default: the latest)")
    report.set_defaults(func=_cmd_report)

    validate = sub.add_parser(
        "validate", help="validate a range of the log, the whole of it with --all, with the "
                         "hourly suites, inside DuckDB (exit status 1 when a suite failed)",
        description="Each suite runs once over [--start, --end) as if it were one data "
                    "interval: counts, duplicates, means over the whole range, computed inside "
                    "DuckDB in bounded memory (SKIFF_VALIDATE_MEMORY_LIMIT) and judged by Great "
                    "Expectations. The results are kept as an hourly run's, in the range's own "
                    "folder, and summarised as `skiff report` does; progress goes to stderr.")
    validate.add_argument("--all", action="store_true",
                          help="the whole log: the hours from its first event to its last arrival")
    validate.add_argument("--start", type=_time, help="start of the range, ISO 8601 (default: "
                          "the log's first hour)")
    validate.add_argument("--end", type=_time, help="end of the range, exclusive (default: the "
                          "end of the log's last hour)")
    validate.add_argument("--suite", action="append", metavar="NAME",
                          help="only this suite (repeatable; default: all of include/gx/suites)")
    validate.add_argument("--no-data-docs", action="store_true",
                          help="keep the JSON results only, no Data Docs pages")
    validate.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                          help="no progress on stderr")
    validate.set_defaults(func=_cmd_validate)

    serve = sub.add_parser("serve", help="the local model server (SageMaker's container "
                           "contract) and GET /predict through the Lambda handler")
    serve.add_argument("--port", type=int, default=cfg.serving.port,
                       help="model server port (SKIFF_SERVE_PORT)")
    serve.add_argument("--api-port", type=int, default=cfg.serving.api_port,
                       help="GET /predict port (SKIFF_API_PORT)")
    serve.add_argument("--control-port", type=int, default=cfg.serving.control_port,
                       help="control plane port (SKIFF_SERVE_CONTROL_PORT)")
    serve.add_argument("--no-api", action="store_true", help="serve the models only")
    serve.add_argument("--model", action="append", default=[], metavar="ENDPOINT=BUNDLE",
                       help="also serve a bundle, e.g. skiff-rec=path/to/bundle (repeatable)")
    serve.set_defaults(func=_cmd_serve)

    run_hour = sub.add_parser("run-hour", help="run the DAG for one interval in the foreground "
                              "(airflow dags test): a line per task, the full log in a file")
    run_hour.add_argument("logical_date", help="the run's logical date, the end of its interval "
                          "(the last line of `skiff init`)")
    run_hour.add_argument("--dag", default="skiff_hourly", help="the DAG (default skiff_hourly)")
    run_hour.add_argument("--log", type=Path, help="the log file (default "
                          "$SKIFF_HOME/logs/run-<dag>-<date>.log)")
    run_hour.set_defaults(func=_cmd_run_hour)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                            format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
        status = args.func(args, SkiffConfig.from_env())
    except SkiffError as exc:
        print(f"skiff: error: {exc}", file=sys.stderr)
        return 2
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
