"""The raw suites and the docs' table are what contract.toml gives; every field is checked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from skiff.data.contract import LANDING_TABLES, TABLES
from skiff.validate.from_contract import (
    contract_table,
    generated_files,
    raw_suite,
    stale_files,
    write_generated,
)
from skiff.validate.suites import SuiteSpec

REPO = Path(__file__).resolve().parents[4]


def test_the_committed_suites_and_table_are_what_the_contract_gives() -> None:
    stale = stale_files(REPO)
    assert not stale, f"stale: {stale}; run `make contract` (skiff contract --write)"


def test_a_contract_edit_shows_as_stale_and_write_fixes_it(tmp_path: Path) -> None:
    (tmp_path / "include" / "gx" / "suites").mkdir(parents=True)
    page = tmp_path / "docs" / "validation.md"
    page.parent.mkdir()
    page.write_text("intro\n<!-- contract:start -->\nold\n<!-- contract:end -->\n")
    assert len(stale_files(tmp_path)) == len(TABLES) + 2  # and event_mix, and the table
    assert len(write_generated(tmp_path)) == len(TABLES) + 2
    assert stale_files(tmp_path) == [] and write_generated(tmp_path) == []
    text = page.read_text()
    assert text.startswith("intro\n<!-- contract:start -->\n| table | field |")
    assert "old" not in text and text.endswith("<!-- contract:end -->\n")
    page.write_text("no markers\n")
    with pytest.raises(ValueError, match="contract:start"):
        generated_files(tmp_path)


@pytest.mark.parametrize("table", TABLES, ids=[t.name for t in TABLES])
def test_every_field_has_an_expectation_and_each_rule_its_own(table) -> None:
    suite = raw_suite(table)
    columns = {e["kwargs"].get("column") for e in suite["expectations"]}
    for field in table.fields:
        assert field.name in columns or f"required_if__{field.name}" in columns, field.name
        if field.required_if:
            assert f"required_if__{field.name}" in columns and \
                f"as required_if__{field.name}" in suite["batch"]
        if field.absent_if:
            assert f"absent_if__{field.name}" in columns
    if table.key:
        assert "row_key" in columns and f"duplicate_{table.row}s" in {
            e["meta"]["defect"] for e in suite["expectations"]}


def test_the_generated_suite_loads_and_renders(config, params) -> None:
    spec = SuiteSpec.load("browsing_train", config.validation.suites_dir)
    rendered = spec.render(params())
    defects = {e["meta"]["defect"] for e in rendered.expectations}
    assert {"missing_product_action", "unexpected_product_sku_hash", "malformed_hashed_url",
            "unknown_event_type", "future_timestamps", "duplicate_events"} <= defects
    assert "{" not in rendered.sql  # every parameter filled


def test_the_table_lists_every_field_once() -> None:
    rows = [line for line in contract_table().splitlines() if line.startswith("| `")]
    assert len(rows) == sum(len(t.fields) for t in LANDING_TABLES)
    assert any(t.name == "predictions" for t in LANDING_TABLES)
    assert any(re.search(r"`predictions` \| `output_items` .* empty when model is intent .*"
                         r"no raw suite: the collector rejects", row) for row in rows)
    assert any(re.search(r"`predictions` \| `dropped_before` .* whole number, at least 0", row)
               for row in rows)
    assert any(re.search(r"`product_action` .* when event_type is event_product; empty when "
                         r"event_type is pageview", row) for row in rows)
