"""The landing ingest on Snowflake: the statements it sends, and the ledger on fakesnow.

There is no Snowflake account here. The all-or-nothing property rests on the statement
sequence: files PUT to the named stage first, then ``BEGIN``, one ``COPY INTO`` per table and
the ledger ``INSERT`` (DML only), ``COMMIT``; a failure issues ``ROLLBACK``. A recording
connection checks that sequence. fakesnow cannot show why it matters: it runs on DuckDB,
where DDL is transactional, so ``write_pandas``'s ``CREATE TEMPORARY STAGE`` would look
harmless there, while on Snowflake any DDL commits the open transaction (the bug this path
avoids). fakesnow 0.12.1 also cannot run a ``COPY`` with a JSON transform or with ``FILES``
on an internal stage, nor ``PUT`` a glob; it does run the ledger's and the raw tables' DDL
and the ledger lookups, which the last test checks there.
"""

from __future__ import annotations

import gzip
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from landing_files import browsing, catalogue, predictions, search, write_file
from skiff.data import SnowflakeWarehouse
from skiff.data.ingest import ingest_arrivals, interval_batch_id
from skiff.data.landing import LandingZone

H = datetime(2026, 11, 25, 10, tzinfo=UTC)  # the interval [H, H + 1h)
HOUR = timedelta(hours=1)
H_MS = int(H.timestamp() * 1000)

DDL = re.compile(r"\s*(create|alter|drop|truncate|put|remove|grant|revoke|comment|undrop|use)\b",
                 re.IGNORECASE)


class Recorder:
    """Connections to a pretend Snowflake that record every statement.

    ``PUT`` notes the rows of each uploaded file; ``COPY INTO`` answers one result row per
    file of its ``FILES`` list, as Snowflake does (file, status, rows parsed, rows loaded...).

    :param fail_on: a statement containing this text raises, as a failing COPY would.
    :param short_by: rows a COPY reports fewer than the files hold.
    """

    def __init__(self, fail_on: str | None = None, short_by: int = 0) -> None:
        self.statements: list[str] = []
        self.params: list[Any] = []
        self.staged: dict[str, int] = {}
        self.fail_on, self.short_by = fail_on, short_by

    def connect(self) -> Recorder._Connection:
        return self._Connection(self)

    class _Connection:
        def __init__(self, recorder: Recorder) -> None:
            self.recorder = recorder

        def cursor(self) -> Recorder._Cursor:
            return Recorder._Cursor(self.recorder)

        def close(self) -> None:
            pass

    class _Cursor:
        def __init__(self, recorder: Recorder) -> None:
            self.recorder, self.result = recorder, []

        def execute(self, sql: str, params: Any = None) -> None:
            rec = self.recorder
            rec.statements.append(" ".join(sql.split()))
            rec.params.append(params)
            if rec.fail_on and rec.fail_on in sql:
                raise RuntimeError(f"100069 (22P02): Error parsing JSON in {rec.fail_on}")
            self.result = []
            if sql.lower().startswith("put "):
                folder = Path(re.match(r"put 'file://(.*)/\*'", sql).group(1))
                for path in folder.iterdir():
                    rec.staged[path.name] = len(gzip.decompress(path.read_bytes()).splitlines())
            elif sql.lower().startswith("copy into"):
                files = re.findall(r"'([^']+\.ndjson\.gz)'", sql.split("files = (")[1])
                self.result = [(f, "LOADED", rec.staged[f], rec.staged[f] - rec.short_by, 1, 0,
                                None, None, None, None) for f in files]

        def executemany(self, sql: str, rows: list[tuple]) -> None:
            self.recorder.statements.append(" ".join(sql.split()))
            self.recorder.params.append(list(rows))

        def fetchall(self) -> list[tuple]:
            return self.result

        def close(self) -> None:
            pass

    def index(self, prefix: str) -> int:
        return next(i for i, s in enumerate(self.statements) if s.lower().startswith(prefix))


@pytest.fixture
def zone(tmp_path: Path) -> LandingZone:
    root = tmp_path / "landing"
    write_file(root, "browsing_train", browsing(5, H_MS + 60_000), "b" * 16)
    write_file(root, "browsing_train", browsing(3, H_MS + 1_800_000, "t"), "c" * 16)
    write_file(root, "search_train", search(2, H_MS + 120_000), "d" * 16)
    write_file(root, "sku_to_content", catalogue(H_MS + 5_000), "e" * 16)
    write_file(root, "browsing_train", browsing(6, H_MS + 3_600_000 + 10_000), "f" * 16)
    return LandingZone.from_uri(root)


def _names(zone: LandingZone, table: str) -> list[str]:
    return [f.name for f in zone.list(table, H, H + HOUR)]


def test_stage_then_one_transaction_of_copies_and_the_ledger(zone) -> None:
    rec = Recorder()
    now = datetime(2026, 11, 25, 11, 5, tzinfo=UTC)
    summary = ingest_arrivals(SnowflakeWarehouse(rec.connect), zone, H, H + HOUR, now=now)
    assert summary.rows == {"sku_to_content": 3, "browsing_train": 8, "search_train": 2}

    s = rec.statements
    begin, commit = rec.index("begin"), rec.index("commit")
    transaction = s[begin + 1:commit]
    assert [t.split()[0].lower() for t in transaction] == ["copy"] * 3 + ["insert"]
    assert not [t for t in transaction if DDL.match(t)]  # nothing that would commit early
    assert not any("temporary stage" in t.lower() for t in s)  # no write_pandas
    assert "rollback" not in [t.lower() for t in s]
    # the stage and the ledger exist before; the files are uploaded before BEGIN
    assert rec.index("create stage if not exists raw.skiff_landing") < begin
    assert rec.index("create table if not exists raw.ingest_ledger") < begin
    puts = [i for i, t in enumerate(s) if t.lower().startswith("put ")]
    assert len(puts) == 3 and max(puts) < begin
    assert rec.index("remove @raw.skiff_landing/") > commit  # the upload is cleaned up after

    copies = {re.search(r"copy into raw\.(\w+)", t).group(1): t for t in transaction[:3]}
    assert list(copies) == ["sku_to_content", "browsing_train", "search_train"]
    for table, sql in copies.items():
        stage_path = re.search(r"from (@raw\.skiff_landing/\w+/" + table + "/) \\)", sql).group(1)
        assert any(t.lower().startswith("put ") and t.endswith(
            f"{stage_path} auto_compress = false overwrite = true parallel = 4") for t in s)
        files = re.findall(r"'([^']+)'", sql.split("files = (")[1].split(")")[0])
        assert files == _names(zone, table)
        assert "file_format = (type = json compression = gzip)" in sql
        assert f"'{summary.batch_id}', '2026-11-25 11:05:00'::timestamp_ntz, " \
               "$1:arrival_ts_ms::bigint" in sql
    browsing_copy = copies["browsing_train"]
    assert browsing_copy.startswith(
        "copy into raw.browsing_train (session_id_hash, event_type, product_action, "
        "product_sku_hash, server_timestamp_epoch_ms, hashed_url, batch_id, ingested_at, "
        "arrival_ts_ms) from ( select nullif($1:session_id_hash::varchar, ''),")
    assert "$1:server_timestamp_epoch_ms::bigint," in browsing_copy
    assert "$1:price_bucket::double," in copies["sku_to_content"]

    ledger = rec.params[rec.index("insert into raw.ingest_ledger")]
    assert sorted(row[0] for row in ledger) == sorted(f["file"] for f in summary.files)
    assert {row[3:6] for row in ledger} == {("browsing_train", 5, summary.batch_id),
                                            ("browsing_train", 3, summary.batch_id),
                                            ("search_train", 2, summary.batch_id),
                                            ("sku_to_content", 3, summary.batch_id)}
    assert summary.batch_id == interval_batch_id(H, H + HOUR)


def test_a_failing_copy_rolls_the_interval_back(zone) -> None:
    rec = Recorder(fail_on="copy into raw.search_train")
    with pytest.raises(RuntimeError, match="Error parsing JSON"):
        ingest_arrivals(SnowflakeWarehouse(rec.connect), zone, H, H + HOUR)
    lowered = [t.lower() for t in rec.statements]
    begin, rollback = lowered.index("begin"), lowered.index("rollback")
    assert [t.split()[0] for t in lowered[begin + 1:rollback]] == ["copy", "copy", "copy"]
    assert "commit" not in lowered and not any(t.startswith("insert") for t in lowered)
    assert lowered[-1].startswith("remove @raw.skiff_landing/")


def test_a_copy_that_loads_fewer_rows_than_the_files_hold_rolls_back(zone) -> None:
    rec = Recorder(short_by=1)
    with pytest.raises(RuntimeError, match="loaded 2 rows of 3"):
        ingest_arrivals(SnowflakeWarehouse(rec.connect), zone, H, H + HOUR)
    lowered = [t.lower() for t in rec.statements]
    assert "rollback" in lowered and "commit" not in lowered


def test_an_empty_interval_sends_no_load(zone) -> None:
    rec = Recorder()
    summary = ingest_arrivals(SnowflakeWarehouse(rec.connect), zone, H + 5 * HOUR,
                              H + 6 * HOUR)
    assert not any(summary.rows.values())
    assert not [t for t in rec.statements if t.lower().split()[0] in ("put", "begin", "copy")]


@pytest.mark.filterwarnings("ignore:::fakesnow")
def test_ledger_and_raw_tables_on_fakesnow(zone) -> None:
    """What fakesnow can run: the DDL (twice: idempotent), an old raw table gaining
    arrival_ts_ms, and the ledger lookups by file and by checksum."""
    fakesnow = pytest.importorskip("fakesnow")
    import snowflake.connector

    with fakesnow.patch():
        def connect():
            return snowflake.connector.connect(database="SKIFF", schema="RAW")

        cur = connect().cursor()
        cur.execute("create schema if not exists raw")
        cur.execute("create table raw.search_train (session_id_hash varchar, query_vector "
                    "varchar, clicked_skus_hash varchar, product_skus_hash varchar, "
                    "server_timestamp_epoch_ms bigint, batch_id varchar, "
                    "ingested_at timestamp_ntz)")
        warehouse = SnowflakeWarehouse(connect)
        for _ in range(2):
            warehouse.ensure_raw_tables()
            warehouse.ensure_ingest_ledger()
        cur.execute("select column_name from information_schema.columns "
                    "where table_schema = 'RAW' and table_name = 'SEARCH_TRAIN' "
                    "order by ordinal_position")
        assert [r[0].lower() for r in cur.fetchall()][-1] == "arrival_ts_ms"
        cur.execute("insert into raw.ingest_ledger values ('a/2026/11/25/10/x.ndjson.gz', 10, "
                    "'c1', 'browsing_train', 5, 'b', '2026-11-25 11:00:00')")
        assert warehouse.ledger_files(["a/2026/11/25/10/x.ndjson.gz", "other"]) == {
            "a/2026/11/25/10/x.ndjson.gz": (10, "c1")}
        assert warehouse.ledger_checksums(["c1", "c2"]) == {"c1": "a/2026/11/25/10/x.ndjson.gz"}
        assert warehouse.ledger_files([]) == {} and warehouse.ledger_checksums([]) == {}
        cur.execute("show stages in schema raw")
        assert [r[1].lower() for r in cur.fetchall()] == ["skiff_landing"]


def test_predictions_are_copied_into_raw_predictions(zone, tmp_path: Path) -> None:
    """A landed prediction log file is one more COPY INTO of the same transaction."""
    write_file(tmp_path / "landing", "predictions", predictions(3, H_MS + 90_000), "p" * 16)
    rec = Recorder()
    summary = ingest_arrivals(SnowflakeWarehouse(rec.connect), zone, H, H + HOUR)
    assert summary.rows["predictions"] == 3
    s = rec.statements
    transaction = s[rec.index("begin") + 1:rec.index("commit")]
    assert [t.split()[0].lower() for t in transaction] == ["copy"] * 4 + ["insert"]
    copy = next(t for t in transaction if t.startswith("copy into raw.predictions"))
    assert copy.startswith("copy into raw.predictions (request_id, session_index, served_at, "
                           "model, model_version, endpoint, session_id_hash,")
    assert "$1:latency_ms::double," in copy and "$1:served_at::bigint," in copy
    assert rec.index("create table if not exists raw.predictions") < rec.index("begin")
