"""The emitter's landing files: layout, format, the catalogue once, ``skiff emit --to-files``."""

from __future__ import annotations

import gzip
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from skiff.cli import main
from skiff.data.contract import BROWSING, CATALOGUE, SEARCH
from skiff.data.emitter import ARRIVAL, Emitter, Events
from skiff.data.emitter_files import _ndjson, write_catalogue, write_landing

DAY = datetime(2025, 3, 1, tzinfo=UTC)
H14 = int(DAY.timestamp()) // 3600 + 14


@pytest.fixture(scope="module")
def emitter() -> Emitter:
    return Emitter(seed=7, sessions_per_hour=2_000, products=1_000)


def _read_landing(path: Path) -> list[dict]:
    return [json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]


def test_landing_files_by_arrival_hour(emitter: Emitter, tmp_path: Path) -> None:
    delivered = emitter.delivered(H14)
    files = write_landing(tmp_path, delivered)
    assert [p.relative_to(tmp_path).parts[:5] for p in files] == [
        (BROWSING.name, "2025", "03", "01", "14"), (SEARCH.name, "2025", "03", "01", "14")]
    for path, table in zip(files, (delivered.browsing, delivered.search)):
        assert re.fullmatch(r"skiff-emit-2025-03-01-14-00-\d\d-[0-9a-f]{16}\.ndjson\.gz", path.name)
        assert _read_landing(path) == table.to_pylist()  # keys: contract columns + arrival
    assert write_landing(tmp_path, delivered) == files  # the same rows, the same file
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == sorted(
        p.name for p in files)  # no temporary file left
    with pytest.raises(ValueError, match="one arrival hour"):
        write_landing(tmp_path, Events(*(pa.concat_tables([a, b]) for a, b in zip(
            delivered.tables.values(), emitter.delivered(H14 + 1).tables.values()))))
    with pytest.raises(ValueError, match="arrival_ts_ms"):
        write_landing(tmp_path, emitter.events(H14))


def test_catalogue_is_delivered_once(emitter: Emitter, tmp_path: Path) -> None:
    landing = write_catalogue(tmp_path, emitter, landing_hour=H14)
    assert landing.relative_to(tmp_path).parts[:5] == (CATALOGUE.name, "2025", "03", "01", "14")
    assert write_catalogue(tmp_path, emitter, landing_hour=H14 + 5) == landing
    rows = _read_landing(landing)
    assert len(rows) == 1_000 and set(rows[0]) == {*CATALOGUE.columns, ARRIVAL}
    parquet = write_catalogue(tmp_path / "load", emitter)
    assert parquet.name == "sku_to_content.parquet"
    assert pq.read_table(parquet).equals(emitter.catalogue_table)


def test_cli_writes_the_range_as_landing_files(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    since, until = DAY + timedelta(hours=13), DAY + timedelta(hours=15)
    args = ["emit", "--seed", "5", "--sessions-per-hour", "300", "--from", since.isoformat(),
            "--to", until.isoformat()]
    assert main([*args, "--to-files", str(tmp_path)]) == 0
    assert "landing files" in capsys.readouterr().out
    expected = list(Emitter(seed=5, sessions_per_hour=300).deliveries(since, until))
    for table in (BROWSING, SEARCH):
        files = sorted((tmp_path / table.name).rglob("*.ndjson.gz"))
        assert [p.parent.name for p in files] == ["13", "14"]
        assert [_read_landing(p) for p in files] == [
            d.tables[table.name].to_pylist() for d in expected]
    assert len(list((tmp_path / CATALOGUE.name).rglob("*.ndjson.gz"))) == 1

    assert main(["emit", "--to", until.isoformat(), "--to-files", str(tmp_path)]) == 2
    assert "need both --from and --to" in capsys.readouterr().err


def test_ndjson_is_json_of_each_row() -> None:
    table = pa.table({
        "text": ['a"b', "c\\d", "e\nf\x01\x1f\t", "ünï", None, "", "[0.1, -2.0]", "['x', 'y']"],
        "int": [1, None, -3, 2**62, 0, 5, 6, 7],
        "float": [7.0, 0.1, None, 1e-05, -2.5, 1e300, 3.0, 4.0],
    })
    lines = _ndjson(table).decode().splitlines()
    assert [json.loads(line) for line in lines] == table.to_pylist()
    assert lines[0] == '{"text":"a\\"b","int":1,"float":7}'
    with pytest.raises(ValueError, match="x: NaN"):
        _ndjson(pa.table({"x": [1.0, float("nan")]}))
