"""The data stage: the event contract, where events come from, and the raw log they land in.

Modules (private behind this face unless a test needs them):

- :mod:`~skiff.data.contract`: the Coveo SIGIR eCom 2021 files, the raw log tables, one
  event's check.
- :mod:`~skiff.data.shoppers`: the model of shoppers (catalogue, sessions, daily traffic).
- :mod:`~skiff.data.generator`: synthetic files with planted, learnable structure.
- :mod:`~skiff.data.emitter`: the embedded shoppers: events of any hour, as delivered;
  :mod:`~skiff.data.emitter_http` posts them to the collector (``skiff emit``),
  :mod:`~skiff.data.emitter_files` writes them as landing files.
- :mod:`~skiff.data.intake`: a ``/collect`` request's events (collector and Lambda alike).
- :mod:`~skiff.data.collector`: ``skiff collect``, the HTTP collector; its durable log and
  roller in :mod:`~skiff.data.collector_log` (its HTTP protocol and middleware are
  :mod:`skiff.web`'s).
- :mod:`~skiff.data.landing`: the landing zone (local or S3) and its gzip NDJSON files.
- :mod:`~skiff.data.loader`: contract files appended to the raw log, all or nothing.
- :mod:`~skiff.data.history`: the shoppers' past hours as landing files, ingested but the last
  (``skiff init``).
- :mod:`~skiff.data.replay`: the embedded replay source the hourly ingest slices by interval.
- :mod:`~skiff.data.ingest`: the landing files that arrived in an interval, appended once, all
  or nothing (the ingest ledger).
- :mod:`~skiff.data.warehouse`: DuckDB (embedded default) or Snowflake behind one interface.
- :mod:`~skiff.data.corrupt`: deliberately bad deliveries, one per defect validation must catch.
"""

from skiff._exports import lazy_exports

_EXPORTS = {
    "BROWSING": "contract", "TABLES": "contract", "check_event": "contract",
    "LandingZone": "landing", "LandingFile": "landing", "decode_events": "landing",
    "encode_lines": "landing", "encode_events": "landing", "landing_name": "landing",
    "generate": "generator",
    "Emitter": "emitter", "write_landing": "emitter_files", "write_catalogue": "emitter_files",
    "CollectorClient": "emitter_http", "post_range": "emitter_http", "run_live": "emitter_http",
    "load_dir": "loader",
    "History": "history", "init_history": "history",
    "SourceInfo": "replay", "init_source": "replay", "ingest_interval": "replay",
    "IngestSummary": "ingest", "ingest_arrivals": "ingest", "arrival_state": "ingest",
    "Warehouse": "warehouse", "DuckDBWarehouse": "warehouse", "SnowflakeWarehouse": "warehouse",
    "SNOWFLAKE_CONNECT_ENV": "warehouse", "snowflake_connect_env": "warehouse",
    "snowflake_connector": "warehouse", "snowflake_params_from_env": "warehouse",
    "warehouse_from_config": "warehouse",
    "DEFECTS": "corrupt", "IntervalData": "corrupt", "append_bad_batch": "corrupt",
    "build_bad_batch": "corrupt",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
