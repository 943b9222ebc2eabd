"""The ``skiff`` command: generate data, load it, set up the replay source, show status, serve."""

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
    with_rows = _interval_rows(warehouse, cfg, to_epoch_ms(start), to_epoch_ms(end))
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


def _interval_rows(warehouse, cfg: SkiffConfig, start_ms: int, end_ms: int) -> int:
    from skiff.data import DuckDBWarehouse

    if not isinstance(warehouse, DuckDBWarehouse) or not warehouse.path.exists():
        return 0
    with warehouse.connect() as con:
        return con.execute(
            f"select count(*) from {cfg.warehouse.raw_schema}.browsing_train "
            "where server_timestamp_epoch_ms >= ? and server_timestamp_epoch_ms < ?",
            [start_ms, end_ms],
        ).fetchall()[0][0]


def _cmd_report(args: argparse.Namespace, cfg: SkiffConfig) -> int:
    from skiff.validate import read_reports, report_summary

    label, documents = read_reports(cfg.validation.reports_dir, args.interval)
    print(report_summary(cfg.validation.reports_dir, label, documents))
    return 1 if any(not d["success"] for d in documents) else 0


def _cmd_serve(args: argparse.Namespace, cfg: SkiffConfig) -> None:
    from skiff.serve import LocalStack

    bundles = {}
    for spec in args.model:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise SkiffConfigError(f"--model {spec!r}: use ENDPOINT=BUNDLE, e.g. "
                                   f"{cfg.serving.endpoint('rec')}=path/to/bundle")
        bundles[name] = Path(path)
    stack = LocalStack.build(cfg.serving, bundles=bundles, with_api=not args.no_api,
                             port=args.port, api_port=args.api_port)
    urls = stack.urls
    for endpoint in stack.models.describe()["endpoints"]:
        print(f"  {endpoint['endpoint_name']:<16} {endpoint.get('model_version', '-')}")
    if not stack.models.endpoints:
        print("  no endpoint deployed yet: the deploy stage (or --model) swaps models in")
    print(f"model server  {urls['models']}  (GET /ping, POST /invocations, "
          "POST /endpoints/<name>/invocations)")
    if "api" in urls:
        print(f"predict API   {urls['api']}/predict?session=view,detail,add")
    stack.serve_forever()


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

    load = sub.add_parser("load", help="append contract files (generated or the real Coveo CSVs) to the raw log")
    load.add_argument("dir", type=Path, help="folder with browsing_train / search_train / sku_to_content files")
    load.add_argument("--since", type=_time, help="only events at or after this time")
    load.add_argument("--until", type=_time, help="only events before this time")
    load.add_argument("--batch-id", help="batch id stamped on the rows (default: load:<folder>:<time>)")
    load.add_argument("--arrival", choices=("load", "event"), default="load",
                      help="arrival_ts_ms of the rows: the load time (default), or each event's "
                           "own time (to replay a history hour by hour)")
    load.set_defaults(func=_cmd_load)

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

    report = sub.add_parser("report", help="the validate stage's results of an interval "
                                           "(exit status 1 when a suite failed)")
    report.add_argument("--interval", help="interval start, ISO 8601 (default: the latest)")
    report.set_defaults(func=_cmd_report)

    serve = sub.add_parser("serve", help="the local model server (SageMaker's container "
                           "contract) and GET /predict through the Lambda handler")
    serve.add_argument("--port", type=int, default=cfg.serving.port,
                       help="model server port (SKIFF_SERVE_PORT)")
    serve.add_argument("--api-port", type=int, default=cfg.serving.api_port,
                       help="GET /predict port (SKIFF_API_PORT)")
    serve.add_argument("--no-api", action="store_true", help="serve the models only")
    serve.add_argument("--model", action="append", default=[], metavar="ENDPOINT=BUNDLE",
                       help="also serve a bundle, e.g. skiff-rec=path/to/bundle (repeatable)")
    serve.set_defaults(func=_cmd_serve)
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
