"""The data contract: the Coveo SIGIR eCom 2021 files and the raw log tables they land in.

Column names and order are those of the official files (``browsing_train.csv``,
``search_train.csv``, ``sku_to_content.csv``). The raw log adds three columns to every
row: ``batch_id`` (which load appended it), ``ingested_at`` (when, UTC) and ``arrival_ts_ms``
(epoch ms when the event reached Skiff: the collector's clock for collected events, the load
time for files a user loads, the event time for the replay source). Incremental models pick
the sessions to rebuild by ``arrival_ts_ms``, so events that arrive late are not missed.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

__all__ = [
    "BROWSING",
    "SEARCH",
    "CATALOGUE",
    "TABLES",
    "LOG_COLUMNS",
    "PRODUCT_ACTIONS",
    "EVENT_TYPES",
    "TableContract",
    "contract_for_file",
]

#: ``product_action`` values of the contract (empty on a pageview).
PRODUCT_ACTIONS = ("detail", "add", "remove", "purchase")
#: ``event_type`` values of the contract.
EVENT_TYPES = ("event_product", "pageview")
#: Columns the raw log adds to every contract table (a table made before ``arrival_ts_ms``
#: existed gets it added by :meth:`~skiff.data.warehouse.Warehouse.ensure_raw_tables`).
LOG_COLUMNS = pa.schema([("batch_id", pa.string()), ("ingested_at", pa.timestamp("us")),
                         ("arrival_ts_ms", pa.int64())])


@dataclass(frozen=True)
class TableContract:
    """One source file of the contract and the raw-log table it is appended to.

    :param name: file stem of the official dataset, also the raw table's name.
    :param schema: the file's columns with their raw-log types, in the official order.
    :param time_column: epoch-millisecond column used for replay slicing, if any.
    """

    name: str
    schema: pa.Schema
    time_column: str | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.schema.names)

    @property
    def log_schema(self) -> pa.Schema:
        """Schema of the raw-log table: contract columns + :data:`LOG_COLUMNS`."""
        return pa.schema(list(self.schema) + list(LOG_COLUMNS))


BROWSING = TableContract(
    "browsing_train",
    pa.schema(
        [
            ("session_id_hash", pa.string()),
            ("event_type", pa.string()),
            ("product_action", pa.string()),
            ("product_sku_hash", pa.string()),
            ("server_timestamp_epoch_ms", pa.int64()),
            ("hashed_url", pa.string()),
        ]
    ),
    time_column="server_timestamp_epoch_ms",
)

SEARCH = TableContract(
    "search_train",
    pa.schema(
        [
            ("session_id_hash", pa.string()),
            ("query_vector", pa.string()),
            ("clicked_skus_hash", pa.string()),
            ("product_skus_hash", pa.string()),
            ("server_timestamp_epoch_ms", pa.int64()),
        ]
    ),
    time_column="server_timestamp_epoch_ms",
)

CATALOGUE = TableContract(
    "sku_to_content",
    pa.schema(
        [
            ("product_sku_hash", pa.string()),
            ("description_vector", pa.string()),
            ("category_hash", pa.string()),
            ("image_vector", pa.string()),
            ("price_bucket", pa.float64()),
        ]
    ),
)

#: Every contract table, in load order (catalogue first, so events can reference it).
TABLES: tuple[TableContract, ...] = (CATALOGUE, BROWSING, SEARCH)


def contract_for_file(stem: str) -> TableContract | None:
    """Return the contract a file belongs to by its name, or ``None``.

    ``browsing_train.csv``, ``browsing_train.parquet`` and the official
    ``browsing_train_sample.csv`` all map to :data:`BROWSING`.

    :param stem: the file name without its extension(s).
    """
    for table in TABLES:
        if stem == table.name or stem.startswith(table.name + "_"):
            return table
    return None
