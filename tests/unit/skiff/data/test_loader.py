"""The loader: contract checks, all-or-nothing appends, replay slicing, both warehouses."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from skiff.data import DuckDBWarehouse, SnowflakeWarehouse
from skiff.data.contract import BROWSING, CATALOGUE, SEARCH, TableContract
from skiff.data.loader import EVENT_TABLES, load_dir
from skiff.exceptions import DataContractError, MissingInputError

RAW = ("browsing_train", "search_train", "sku_to_content")
T0 = 1_764_000_000_000  # epoch ms


def _rows(contract: TableContract, n: int) -> pa.Table:
    """n valid rows of a contract table, one event per second from T0."""
    cols: dict[str, list] = {}
    for f in contract.schema:
        if f.name == "server_timestamp_epoch_ms":
            cols[f.name] = [T0 + 1000 * i for i in range(n)]
        elif f.name == "event_type":
            cols[f.name] = ["event_product" if i % 2 else "pageview" for i in range(n)]
        elif f.name == "product_action":
            cols[f.name] = ["detail" if i % 2 else None for i in range(n)]
        elif f.name == "price_bucket":
            cols[f.name] = [float(1 + i % 10) for i in range(n)]
        else:
            cols[f.name] = [f"{f.name[:4]}{i:060d}" for i in range(n)]
    return pa.table(cols, schema=contract.schema)


def _write(folder: Path, contract: TableContract, table: pa.Table, fmt: str = "parquet") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{contract.name}.{fmt}"
    if fmt == "parquet":
        pq.write_table(table, path)
    else:
        pacsv.write_csv(table, path)
    return path


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    for contract, n in ((BROWSING, 100), (SEARCH, 10), (CATALOGUE, 5)):
        _write(folder, contract, _rows(contract, n))
    return folder


@pytest.fixture
def duck(tmp_path: Path) -> DuckDBWarehouse:
    return DuckDBWarehouse(tmp_path / "w.duckdb")


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_loads_every_contract_file(tmp_path: Path, duck: DuckDBWarehouse, fmt: str) -> None:
    folder = tmp_path / fmt
    for contract, n in ((BROWSING, 20), (SEARCH, 3), (CATALOGUE, 4)):
        _write(folder, contract, _rows(contract, n), fmt)
    summary = load_dir(folder, duck, batch_id="b1")
    assert summary.rows == {"sku_to_content": 4, "browsing_train": 20, "search_train": 3}
    with duck.connect() as con:
        rows = con.execute(
            "select count(*), count(distinct batch_id), min(batch_id), count(ingested_at), "
            "count(product_action) from raw.browsing_train"
        ).fetchall()[0]
    assert rows == (20, 1, "b1", 20, 10)  # pageviews keep a null product_action, CSV or not


def test_official_coveo_sample_loads_as_is(coveo_sample: Path, duck: DuckDBWarehouse) -> None:
    summary = load_dir(coveo_sample, duck)
    assert summary.rows == {"sku_to_content": 4, "browsing_train": 34, "search_train": 10}
    with duck.connect() as con:
        nulls = con.execute(
            "select count(*) filter (where event_type = 'pageview' and product_action is null),"
            " count(*) filter (where event_type = 'pageview') from raw.browsing_train"
        ).fetchall()[0]
        prices = con.execute("select count(price_bucket) from raw.sku_to_content").fetchall()[0][0]
    assert nulls[0] == nulls[1] > 0
    assert prices == 2


@pytest.mark.parametrize(
    ("drop", "add"),
    [
        pytest.param("hashed_url", None, id="missing-column"),
        pytest.param(None, "user_agent", id="extra-column"),
        pytest.param("product_action", "productaction", id="renamed-column"),
    ],
)
def test_wrong_columns_are_refused_and_nothing_is_loaded(
    source: Path, duck: DuckDBWarehouse, drop: str | None, add: str | None
) -> None:
    table = _rows(BROWSING, 10)
    if drop:
        table = table.drop_columns([drop])
    if add:
        table = table.append_column(add, pa.array(["x"] * 10))
    _write(source, BROWSING, table)
    with pytest.raises(DataContractError) as err:
        load_dir(source, duck)
    message = str(err.value)
    assert "browsing_train.parquet" in message
    assert (drop or add) in message
    assert not duck.path.exists() or all(
        v in (None, 0) for v in duck.row_counts("raw", RAW).values()
    )


def test_bad_values_roll_back_the_whole_load(tmp_path: Path, duck: DuckDBWarehouse) -> None:
    folder = tmp_path / "csv"
    _write(folder, CATALOGUE, _rows(CATALOGUE, 3), "csv")
    bad = _rows(BROWSING, 5).to_pydict()
    bad["server_timestamp_epoch_ms"] = [str(v) for v in bad["server_timestamp_epoch_ms"]]
    bad["server_timestamp_epoch_ms"][3] = "yesterday"
    _write(folder, BROWSING, pa.table(bad), "csv")
    with pytest.raises(DataContractError, match="server_timestamp_epoch_ms"):
        load_dir(folder, duck)
    assert duck.row_counts("raw", RAW) == dict.fromkeys(RAW, 0)  # the catalogue rolled back too


def test_missing_folder_and_empty_folder(tmp_path: Path, duck: DuckDBWarehouse) -> None:
    with pytest.raises(MissingInputError, match="does not exist"):
        load_dir(tmp_path / "nope", duck)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hi")
    with pytest.raises(MissingInputError, match="No contract file"):
        load_dir(tmp_path / "empty", duck)


def test_time_slice_and_idempotent_batches(source: Path, duck: DuckDBWarehouse) -> None:
    kwargs = dict(since_ms=T0 + 10_000, until_ms=T0 + 30_000, tables=EVENT_TABLES,
                  skip_loaded=True, batch_id="replay:1")
    first = load_dir(source, duck, **kwargs)
    assert first.rows == {"browsing_train": 20, "search_train": 0}  # searches lie before T0+10s
    again = load_dir(source, duck, **kwargs)
    assert again.skipped == ["browsing_train"] and again.rows == {"search_train": 0}
    assert duck.row_counts("raw", RAW)["browsing_train"] == 20


def test_arrival_is_the_load_time_or_the_event_time(source: Path, duck: DuckDBWarehouse) -> None:
    """Files a user brings arrive when they are loaded; a replayed source as it happened."""
    import time

    before = int(time.time() * 1000)
    load_dir(source, duck, batch_id="user", tables=["browsing_train", "sku_to_content"])
    load_dir(source, duck, batch_id="replay", tables=["browsing_train", "sku_to_content"],
             arrival="event")
    after = int(time.time() * 1000)
    with duck.connect() as con:
        rows = dict(con.execute(
            "select batch_id, count_if(arrival_ts_ms between ? and ?) from raw.browsing_train "
            "group by 1", [before, after]).fetchall())
        replayed = con.execute("select count_if(arrival_ts_ms = server_timestamp_epoch_ms) "
                               "from raw.browsing_train where batch_id = 'replay'").fetchall()
        catalogue = con.execute("select count_if(arrival_ts_ms between ? and ?) "
                                "from raw.sku_to_content", [before, after]).fetchall()
    assert rows == {"user": 100, "replay": 0} and replayed == [(100,)]
    assert catalogue == [(10,)]  # no event time: it arrives when loaded
    with pytest.raises(ValueError, match="arrival='collector'"):
        load_dir(source, duck, arrival="collector")


def test_snowflake_path_against_fakesnow(source: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fakesnow = pytest.importorskip("fakesnow")
    monkeypatch.setenv(
        "SKIFF_SNOWFLAKE_CONNECT",
        '{"user": "skiff", "password": "pw", "schema": "raw", "account": "acme-test",'
        ' "database": "SKIFF", "warehouse": "wh"}',
    )
    from skiff.config import WarehouseConfig
    from skiff.data import warehouse_from_config

    with fakesnow.patch(create_database_on_connect=True):
        warehouse = warehouse_from_config(WarehouseConfig(backend="snowflake"))
        assert isinstance(warehouse, SnowflakeWarehouse)
        summary = load_dir(source, warehouse, batch_id="sf1")
        assert summary.rows == {"sku_to_content": 5, "browsing_train": 100, "search_train": 10}
        assert warehouse.batch_loaded(BROWSING, "sf1")
        assert not warehouse.batch_loaded(BROWSING, "other")
        counts = warehouse.row_counts("raw", RAW + ("missing_table",))
        assert counts == {"browsing_train": 100, "search_train": 10, "sku_to_content": 5,
                          "missing_table": None}
        # a bad file is refused before Snowflake sees a row
        shutil.copy(source / "browsing_train.parquet", source / "browsing_train_extra.parquet")
        _write(source, SEARCH, _rows(SEARCH, 3).drop_columns(["query_vector"]))
        with pytest.raises(DataContractError, match="query_vector"):
            load_dir(source, warehouse)
        assert warehouse.row_counts("raw", RAW)["browsing_train"] == 100
