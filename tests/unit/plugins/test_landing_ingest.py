"""LandingIngestOperator, LandingArrivalTrigger and LandingZoneHook: the grace wait, then the ingest.

The trigger's ``run()`` is driven against a fake hook (a scripted landing zone); the operator
against a real local landing zone and DuckDB file; the hook's S3 path against moto in server
mode (a real HTTP endpoint on 127.0.0.1) through the Amazon provider's ``S3Hook``.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from environ import environ
from hooks.landing_zone import LandingZoneHook
from landing_files import browsing, encode, search, write_file
from operators.ingest import LandingIngestOperator
from triggers.landing_arrival import LandingArrivalTrigger

H = datetime(2026, 11, 25, 10, tzinfo=UTC)
HOUR = timedelta(hours=1)
H_MS = int(H.timestamp() * 1000)


class ScriptedHook:
    """A landing zone seen through the hook: one ``arrivals`` answer per look."""

    def __init__(self, *answers: dict) -> None:
        self.answers, self.looks = list(answers), 0

    def arrivals(self, start: str, end: str) -> dict:
        self.looks += 1
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def _trigger(deadline: datetime, hook: ScriptedHook, poll: float = 0.01) -> LandingArrivalTrigger:
    trigger = LandingArrivalTrigger(H.isoformat(), (H + HOUR).isoformat(), deadline.isoformat(),
                                    "/landing", poll_interval=poll)
    trigger.hook = hook  # the cached_property, given before first use
    return trigger


async def _events(trigger: LandingArrivalTrigger) -> list[dict]:
    return [event.payload async for event in trigger.run()]


def test_trigger_serializes_its_arguments() -> None:
    trigger = LandingArrivalTrigger("2026-11-25T10:00:00+00:00", "2026-11-25T11:00:00+00:00",
                                    "2026-11-25T11:10:00+00:00", "s3://b/landing",
                                    aws_conn_id="aws_x", poll_interval=5)
    path, kwargs = trigger.serialize()
    assert path == "triggers.landing_arrival.LandingArrivalTrigger"
    assert LandingArrivalTrigger(**kwargs).serialize() == (path, kwargs)
    assert kwargs["landing_uri"] == "s3://b/landing" and kwargs["aws_conn_id"] == "aws_x"


def test_trigger_ends_when_the_collector_moves_on() -> None:
    hook = ScriptedHook({"files": 2, "moved_on": False}, {"files": 3, "moved_on": False},
                        {"files": 3, "moved_on": True})
    events = asyncio.run(_events(_trigger(datetime.now(UTC) + HOUR, hook)))
    assert events == [{"status": "success", "reason": "moved_on", "files": 3,
                       "interval_start": H.isoformat(),
                       "interval_end": (H + HOUR).isoformat()}]
    assert hook.looks == 3


def test_trigger_ends_at_the_deadline_with_what_arrived() -> None:
    hook = ScriptedHook({"files": 0, "moved_on": False})
    deadline = datetime.now(UTC) + timedelta(seconds=0.3)
    (event,) = asyncio.run(_events(_trigger(deadline, hook, poll=0.05)))
    assert (event["reason"], event["files"]) == ("grace_over", 0)
    assert datetime.now(UTC) >= deadline and hook.looks >= 3


def test_trigger_listing_error_ends_the_wait_with_it() -> None:
    class Broken:
        def arrivals(self, start: str, end: str) -> dict:
            raise PermissionError("AccessDenied listing s3://b/landing")

    trigger = _trigger(datetime.now(UTC) + HOUR, ScriptedHook())
    trigger.hook = Broken()
    with pytest.raises(PermissionError, match="AccessDenied"):
        asyncio.run(_events(trigger))


# --------------------------------------------------------------------------- operator


def test_operator_arguments_and_templates() -> None:
    op = LandingIngestOperator(task_id="ingest_events")
    assert set(op.template_fields) == {"interval_start", "interval_end", "landing_uri"}
    assert op.interval_start == "{{ data_interval_start.isoformat() }}"
    assert "hook" not in op.__dict__  # built in execute
    with pytest.raises(ValueError, match="grace_minutes=-1"):
        LandingIngestOperator(task_id="t", grace_minutes=-1)
    with pytest.raises(ValueError, match="poll_interval=0"):
        LandingIngestOperator(task_id="t", poll_interval=0)
    with pytest.raises(TypeError):
        LandingIngestOperator("ingest_events")  # keyword-only


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    root = tmp_path / "landing"
    write_file(root, "browsing_train", browsing(5, H_MS + 60_000), "b" * 16)
    write_file(root, "search_train", search(2, H_MS + 120_000), "d" * 16)
    return root


def _operator(landing: Path, start: datetime, **kwargs) -> LandingIngestOperator:
    return LandingIngestOperator(task_id="ingest_events", interval_start=start.isoformat(),
                                 interval_end=(start + HOUR).isoformat(),
                                 landing_uri=str(landing), **kwargs)


def test_past_the_grace_period_it_ingests_at_once(landing, tmp_path) -> None:
    with environ(SKIFF_DUCKDB_PATH=str(tmp_path / "w.duckdb")):
        op = _operator(landing, H, deferrable=True)
        result = op.execute({})
        again = op.execute({})
    assert result["rows"] == {"sku_to_content": 0, "browsing_train": 5, "search_train": 2}
    assert result["files"] == 2 and result["batch_id"].startswith("landing:2026-11-25T10")
    assert again["files"] == 0 and again["skipped"] == 2 and not any(again["rows"].values())


def test_within_the_grace_period_it_defers_until_the_collector_moves_on(landing, tmp_path) -> None:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - HOUR
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    if now_ms - int((start + HOUR).timestamp() * 1000) > 9 * 60_000:
        start += HOUR  # keep the interval's end within the grace period
    write_file(landing, "browsing_train", browsing(3, int(start.timestamp() * 1000) + 5), "a" * 16)
    with environ(SKIFF_DUCKDB_PATH=str(tmp_path / "w.duckdb")):
        op = _operator(landing, start, deferrable=True, grace_minutes=10, poll_interval=7)
        with pytest.raises(TaskDeferred) as deferred:
            op.execute({})
        trigger = deferred.value.trigger
        assert isinstance(trigger, LandingArrivalTrigger)
        assert (trigger.interval_start, trigger.landing_uri, trigger.poll_interval) == (
            start.isoformat(), str(landing), 7)
        assert trigger.deadline == (start + HOUR + timedelta(minutes=10)).isoformat()
        assert deferred.value.method_name == "execute_complete"
        assert deferred.value.timeout > timedelta(seconds=60)
        # the collector moves on: a file of the next hour; the trigger says so, the task ingests
        next_hour = int((start + HOUR).timestamp() * 1000) + 1000
        write_file(landing, "search_train", search(1, next_hour), "e" * 16)
        (event,) = asyncio.run(_events(trigger))
        assert event["reason"] == "moved_on"
        result = op.execute_complete({}, event)
    assert result["rows"]["browsing_train"] == 3 and result["files"] == 1


def test_without_a_triggerer_it_polls_in_the_worker(landing, tmp_path) -> None:
    start = datetime.now(UTC) - HOUR + timedelta(seconds=1)  # the end is just ahead
    with environ(SKIFF_DUCKDB_PATH=str(tmp_path / "w.duckdb")):
        op = _operator(landing, start, deferrable=False, grace_minutes=0.02, poll_interval=0.2)
        result = op.execute({})  # waits out the 1.2 s grace, then ingests the empty hour
    assert datetime.now(UTC) >= start + HOUR + timedelta(minutes=0.02)
    assert result["files"] == 0


def test_a_failed_wait_fails_the_task(landing) -> None:
    op = _operator(landing, H)
    with pytest.raises(Exception, match="failed"):
        op.execute_complete({}, {"status": "error", "message": "boom"})


def test_a_file_of_the_wrong_contract_fails_without_retry(landing, tmp_path) -> None:
    bad = landing / "search_train" / "2026" / "11" / "25" / "10" / (
        "skiff-collect-2026-11-25-10-30-00-" + "9" * 16 + ".ndjson.gz")
    bad.write_bytes(encode([{"session_id_hash": "x", "arrival_ts_ms": H_MS, "extra": 1}]))
    with environ(SKIFF_DUCKDB_PATH=str(tmp_path / "w.duckdb")):
        with pytest.raises(AirflowFailException, match=bad.name):
            _operator(landing, H).execute({})


# --------------------------------------------------------------------------- S3


@pytest.fixture
def moto_s3():
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    try:
        with environ(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                     AIRFLOW_CONN_AWS_LANDING=json.dumps(
                         {"conn_type": "aws", "extra": {"endpoint_url": url,
                                                        "region_name": "us-east-1"}})):
            s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
            s3.create_bucket(Bucket="skiff-landing")
            yield s3
    finally:
        server.stop()


@pytest.mark.integration
def test_s3_zone_through_the_amazon_provider(moto_s3, tmp_path) -> None:
    for table, rows, name in (
        ("browsing_train", browsing(4, H_MS + 1000), "skiff-collect-2026-11-25-10-00-01-" + "a" * 16),
        ("browsing_train", browsing(2, H_MS + 3_600_500), "skiff-collect-2026-11-25-11-00-00-"
         + "b" * 16),
        ("search_train", search(1, H_MS + 2000), ".skiff-collect-half-written"),
    ):
        hour = datetime.fromtimestamp(rows[0]["arrival_ts_ms"] / 1000, UTC)
        moto_s3.put_object(Bucket="skiff-landing",
                           Key=f"events/{table}/{hour:%Y/%m/%d/%H}/{name}.ndjson.gz",
                           Body=encode(rows))
    with environ(SKIFF_DUCKDB_PATH=str(tmp_path / "w.duckdb")):
        hook = LandingZoneHook(landing_uri="s3://skiff-landing/events", aws_conn_id="aws_landing")
        assert hook.arrivals(H, H + HOUR) == {"files": 1, "moved_on": True}
        summary = hook.ingest(H, H + HOUR)
    assert summary.rows["browsing_train"] == 4 and summary.rows["search_train"] == 0
    assert summary.files[0]["file"] == (
        "browsing_train/2026/11/25/10/skiff-collect-2026-11-25-10-00-01-" + "a" * 16
        + ".ndjson.gz")
