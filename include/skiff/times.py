"""Times as Skiff uses them: aware UTC datetimes, ISO 8601 text and epoch milliseconds.

Every module that reads a time from text, or turns one into the contract's
``server_timestamp_epoch_ms``, goes through these functions, so "naive means UTC" and
the millisecond unit are decided in one place.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["parse_time", "to_epoch_ms", "from_epoch_ms", "naive_utc"]


def parse_time(value: str | datetime) -> datetime:
    """An aware UTC datetime from an ISO 8601 string or a datetime (naive means UTC).

    :param value: e.g. ``2019-03-01T10:00:00Z``, ``2019-03-01 10:00`` or a datetime.
    :return: the same instant, in UTC.
    :raises ValueError: ``value`` is not ISO 8601 (the message quotes it).
    """
    if isinstance(value, datetime):
        ts = value
    else:
        text = str(value).strip()
        try:
            ts = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        except ValueError:
            raise ValueError(
                f"{value!r} is not an ISO 8601 time, e.g. 2019-03-01T10:00:00+00:00."
            ) from None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def to_epoch_ms(value: str | datetime) -> int:
    """Epoch milliseconds of a time (see :func:`parse_time`), the contract's time unit."""
    return int(parse_time(value).timestamp() * 1000)


def from_epoch_ms(ms: int) -> datetime:
    """The aware UTC datetime of epoch milliseconds."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def naive_utc(value: str | datetime | None) -> datetime | None:
    """A naive datetime in UTC (what DuckDB's ``TIMESTAMP`` holds), or None for None/empty."""
    return parse_time(value).replace(tzinfo=None) if value else None
