"""The generator: contract schema and values, determinism, time span, planted structure."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from skiff.data.contract import BROWSING, CATALOGUE, SEARCH, TableContract
from skiff.data.generator import GenerateSummary, generate
from skiff.exceptions import SkiffConfigError

END = datetime(2025, 3, 1, 12, tzinfo=UTC)
CONTRACTS = (BROWSING, SEARCH, CATALOGUE)
HASH = re.compile(r"^[0-9a-f]{64}$")


def _read(summary: GenerateSummary) -> dict[str, pa.Table]:
    return {name: pq.read_table(path) for name, path in summary.files.items()}


def _read_csv(path: Path, contract: TableContract) -> pa.Table:
    """A CSV as the official files are read: empty fields are nulls, typed by the contract."""
    options = pacsv.ConvertOptions(column_types=contract.schema, strings_can_be_null=True,
                                   quoted_strings_can_be_null=False)
    return pacsv.read_csv(path, convert_options=options)


def _codes(column: pa.ChunkedArray) -> np.ndarray:
    """Integer codes of a string column's values (nulls: -1)."""
    indices = pc.dictionary_encode(column).combine_chunks().indices
    return pc.fill_null(indices, -1).to_numpy().astype(np.int64)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[GenerateSummary, dict[str, pa.Table]]:
    summary = generate(tmp_path_factory.mktemp("gen"), sessions=5_000, seed=7, end=END,
                       span_hours=24)
    return summary, _read(summary)


@pytest.fixture(scope="module")
def details(sample: tuple[GenerateSummary, dict[str, pa.Table]]) -> tuple[np.ndarray, np.ndarray]:
    """Session and product codes of the detail events, in file order."""
    browsing = sample[1]["browsing_train"]
    browsing = browsing.filter(pc.equal(browsing["product_action"], "detail"))
    return _codes(browsing["session_id_hash"]), _codes(browsing["product_sku_hash"])


def _entropy(values: np.ndarray) -> float:
    _, counts = np.unique(values, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


# ---------------------------------------------------------------- schema and format


def test_files_and_summary(sample: tuple[GenerateSummary, dict[str, pa.Table]]) -> None:
    summary, tables = sample
    assert set(summary.files) == {c.name for c in CONTRACTS}
    assert all(path.name == f"{name}.parquet" for name, path in summary.files.items())
    assert summary.rows == {name: t.num_rows for name, t in tables.items()}
    assert summary.sessions == 5_000
    assert summary.end_ms == int(END.timestamp() * 1000)
    assert summary.end_ms - summary.start_ms == 24 * 3_600_000


@pytest.mark.parametrize("contract", [pytest.param(c, id=c.name) for c in CONTRACTS])
def test_parquet_schema_is_the_contract(sample: tuple[GenerateSummary, dict[str, pa.Table]],
                                        contract: TableContract) -> None:
    summary, tables = sample
    assert pq.read_schema(summary.files[contract.name]).remove_metadata() == contract.schema
    assert tables[contract.name].schema.remove_metadata() == contract.schema


def test_csv_matches_parquet_and_official_header(tmp_path: Path, coveo_sample: Path) -> None:
    kwargs = dict(sessions=1_500, seed=3, end=END, span_hours=12)
    parquet = _read(generate(tmp_path / "pq", **kwargs))
    summary = generate(tmp_path / "csv", fmt="csv", **kwargs)
    for contract in CONTRACTS:
        path = summary.files[contract.name]
        assert path.suffix == ".csv"
        official = (coveo_sample / f"{contract.name}_sample.csv").read_text().splitlines()[0]
        assert path.read_text().splitlines()[0] == official == ",".join(contract.columns)
        assert _read_csv(path, contract).equals(parquet[contract.name]), contract.name


def test_csv_values_are_formatted_like_the_official_files(tmp_path: Path,
                                                           coveo_sample: Path) -> None:
    summary = generate(tmp_path, sessions=1_000, seed=3, end=END, span_hours=12, fmt="csv")
    catalogue_line = summary.files["sku_to_content"].read_text().splitlines()[1]
    assert re.fullmatch(r'[0-9a-f]{64},"\[[^"]+\]",[0-9a-f/]{194},"\[[^"]+\]",\d+\.0',
                        catalogue_line)
    pageview = next(line for line in summary.files["browsing_train"].read_text().splitlines()
                    if ",pageview," in line)
    assert re.fullmatch(r"[0-9a-f]{64},pageview,,,\d{13},[0-9a-f]{64}", pageview)
    for contract in CONTRACTS:  # the official sample parses to the same types
        official = _read_csv(coveo_sample / f"{contract.name}_sample.csv", contract)
        assert official.schema == _read_csv(summary.files[contract.name], contract).schema


# ---------------------------------------------------------------- determinism and time


def test_same_arguments_same_rows_whatever_the_chunk_size(tmp_path: Path) -> None:
    kwargs = dict(sessions=3_000, seed=11, end=END, span_hours=6)
    first = _read(generate(tmp_path / "a", **kwargs))
    again = _read(generate(tmp_path / "b", **kwargs))
    chunked = _read(generate(tmp_path / "c", chunk_sessions=1_000, **kwargs))
    for name, table in first.items():
        assert table.equals(again[name]), name
        assert table.equals(chunked[name]), name


def test_another_seed_other_rows(tmp_path: Path) -> None:
    a = _read(generate(tmp_path / "a", sessions=500, seed=1, end=END))
    b = _read(generate(tmp_path / "b", sessions=500, seed=2, end=END))
    for name in a:
        assert not a[name].equals(b[name]), name


def test_timestamps_lie_in_the_span(sample: tuple[GenerateSummary, dict[str, pa.Table]]) -> None:
    summary, tables = sample
    for name in ("browsing_train", "search_train"):
        ts = tables[name]["server_timestamp_epoch_ms"]
        assert ts.null_count == 0
        assert pc.min(ts).as_py() >= summary.start_ms
        assert pc.max(ts).as_py() < summary.end_ms


def test_end_defaults_to_the_current_hour(tmp_path: Path) -> None:
    before = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    summary = generate(tmp_path, sessions=50, span_hours=2)
    assert summary.end_ms % 3_600_000 == 0
    assert int(before.timestamp() * 1000) <= summary.end_ms <= int(
        (before + timedelta(hours=1)).timestamp() * 1000)


def test_naive_end_means_utc(tmp_path: Path) -> None:
    summary = generate(tmp_path, sessions=50, end=END.replace(tzinfo=None))
    assert summary.end_ms == int(END.timestamp() * 1000)


def test_sessions_are_contiguous_and_in_start_order(
        sample: tuple[GenerateSummary, dict[str, pa.Table]]) -> None:
    browsing = sample[1]["browsing_train"]
    session = _codes(browsing["session_id_hash"])
    starts = np.flatnonzero(np.r_[True, session[1:] != session[:-1]])
    assert len(starts) == len(np.unique(session)) == sample[0].sessions
    first_ts = browsing["server_timestamp_epoch_ms"].to_numpy()[starts]
    assert (np.diff(first_ts) >= 0).all()


# ---------------------------------------------------------------- contract values


def test_browsing_values_follow_the_contract(
        sample: tuple[GenerateSummary, dict[str, pa.Table]]) -> None:
    browsing = sample[1]["browsing_train"].to_pydict()
    pageview = np.array(browsing["event_type"]) == "pageview"
    assert set(browsing["event_type"]) == {"event_product", "pageview"}
    actions = np.array(browsing["product_action"], dtype=object)
    assert set(actions[~pageview]) == {"detail", "add", "remove", "purchase"}
    assert all(a is None for a in actions[pageview])
    skus = np.array(browsing["product_sku_hash"], dtype=object)
    assert all(s is None for s in skus[pageview]) and all(s is not None for s in skus[~pageview])
    for column in ("session_id_hash", "hashed_url"):
        assert all(HASH.match(h) for h in set(browsing[column])), column


def test_every_sku_is_in_the_catalogue(sample: tuple[GenerateSummary, dict[str, pa.Table]]) -> None:
    tables = sample[1]
    catalogue = set(tables["sku_to_content"]["product_sku_hash"].to_pylist())
    assert len(catalogue) == tables["sku_to_content"].num_rows
    assert set(tables["browsing_train"]["product_sku_hash"].drop_null().to_pylist()) <= catalogue
    for column in ("clicked_skus_hash", "product_skus_hash"):
        for text in tables["search_train"][column].drop_null().to_pylist():
            assert set(json.loads(text.replace("'", '"'))) <= catalogue


def test_catalogue_values(sample: tuple[GenerateSummary, dict[str, pa.Table]]) -> None:
    catalogue = sample[1]["sku_to_content"]
    assert all(HASH.match(h) for h in catalogue["product_sku_hash"].to_pylist())
    assert pc.mean(catalogue["price_bucket"].is_null()).as_py() < 0.02
    prices = catalogue["price_bucket"].drop_null().to_numpy()
    assert set(prices) <= {float(p) for p in range(1, 11)}
    paths = catalogue["category_hash"].drop_null().to_pylist()
    assert all(len(p.split("/")) == 3 and all(HASH.match(h) for h in p.split("/")) for p in paths)
    assert len(set(paths)) >= 20
    for column in ("description_vector", "image_vector"):
        assert len(json.loads(catalogue[column].drop_null()[0].as_py())) == 50


def test_search_values(sample: tuple[GenerateSummary, dict[str, pa.Table]]) -> None:
    tables = sample[1]
    search = tables["search_train"].to_pylist()
    sessions = set(tables["browsing_train"]["session_id_hash"].to_pylist())
    assert 0.08 < len({r["session_id_hash"] for r in search}) / len(sessions) < 0.25
    assert {r["session_id_hash"] for r in search} <= sessions
    for row in search:
        assert len(json.loads(row["query_vector"])) == 50
        shown = json.loads((row["product_skus_hash"] or "[]").replace("'", '"'))
        clicked = json.loads((row["clicked_skus_hash"] or "[]").replace("'", '"'))
        assert len(set(shown)) == len(shown) and set(clicked) <= set(shown)


# ---------------------------------------------------------------- planted structure


def test_popularity_is_long_tailed(details: tuple[np.ndarray, np.ndarray],
                                   sample: tuple[GenerateSummary, dict[str, pa.Table]]) -> None:
    views = np.sort(np.bincount(details[1]))[::-1]
    top = max(1, sample[1]["sku_to_content"].num_rows // 100)
    assert views[:top].sum() / views.sum() > 0.10


def test_next_product_depends_on_the_current_one(details: tuple[np.ndarray, np.ndarray]) -> None:
    session, product = details
    same = session[1:] == session[:-1]
    current, following = product[:-1][same], product[1:][same]
    conditional = _entropy(current * 1_000_000 + following) - _entropy(current)
    shuffled = np.random.default_rng(0).permutation(following)
    baseline = _entropy(current * 1_000_000 + shuffled) - _entropy(current)
    assert conditional < 0.75 * baseline

    train = session[:-1][same] % 2 == 0  # top-1 next product, learnt on half the sessions
    pairs = np.unique(np.c_[current[train], following[train]], axis=0, return_counts=True)
    best: dict[int, tuple[int, int]] = {}
    for (cur, nxt), n in zip(*pairs):
        if n > best.get(cur, (-1, 0))[1]:
            best[cur] = (nxt, n)
    predicted = np.array([best.get(c, (-1, 0))[0] for c in current[~train]])
    item_to_item = np.mean(predicted == following[~train])
    popular = np.bincount(following[train]).argmax()
    assert item_to_item > 3 * np.mean(following[~train] == popular)


def test_sessions_return_to_earlier_products(details: tuple[np.ndarray, np.ndarray]) -> None:
    session, product = details
    first = np.r_[True, session[1:] != session[:-1]]
    anchor = product[np.flatnonzero(first)[np.cumsum(first) - 1]]
    later = ~first & (np.r_[-1, product[:-1]] != anchor)  # not already on the first product
    assert np.mean(product[later] == anchor[later]) > 0.05


def test_cart_intent_depends_on_behaviour(
        sample: tuple[GenerateSummary, dict[str, pa.Table]]) -> None:
    browsing = sample[1]["browsing_train"]
    session = _codes(browsing["session_id_hash"])
    sku = _codes(browsing["product_sku_hash"])
    action = np.array(browsing["product_action"].to_pylist(), dtype=object)
    n = session.max() + 1
    added = np.bincount(session[action == "add"], minlength=n) > 0
    bought = np.bincount(session[action == "purchase"], minlength=n) > 0
    assert 0.08 < added.mean() < 0.25
    assert 0.25 < bought[added].mean() < 0.6
    assert not (bought & ~added).any()
    detail = action == "detail"
    pairs, counts = np.unique(np.c_[session[detail], sku[detail]], axis=0, return_counts=True)
    repeat = np.zeros(n, bool)
    repeat[pairs[counts > 1, 0]] = True
    assert added[repeat].mean() > 2 * added[~repeat].mean()


# ---------------------------------------------------------------- options and errors


@pytest.mark.parametrize("progress", [pytest.param(True, id="progress"),
                                      pytest.param(False, id="quiet")])
def test_progress_bar_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                progress: bool) -> None:
    generate(tmp_path, sessions=200, end=END, progress=progress)
    err = capsys.readouterr().err
    assert ("200/200" in err) is progress


def test_n_products_sets_the_catalogue_size(tmp_path: Path) -> None:
    summary = generate(tmp_path, sessions=300, end=END, n_products=777)
    assert summary.rows["sku_to_content"] == 777


@pytest.mark.parametrize("kwargs", [
    pytest.param({"fmt": "json"}, id="unknown-format"),
    pytest.param({"sessions": 0}, id="no-sessions"),
    pytest.param({"span_hours": 0}, id="empty-span"),
    pytest.param({"chunk_sessions": 0}, id="empty-chunk"),
    pytest.param({"n_products": 5}, id="tiny-catalogue"),
])
def test_bad_arguments_raise_config_error(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(SkiffConfigError):
        generate(tmp_path, **{"sessions": 10, **kwargs})
    assert not list(tmp_path.iterdir())
