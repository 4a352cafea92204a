"""What a catalog loader hands the emulator: the schema and the rows of each table.

A loader (the Luma CSV reader, the synthetic generator) knows nothing of
connectors, runs or HTTP. It describes the tables once, in the wire form of
`saleslayer-1.18.md` §2.4 and §2.5, and yields every item as the values that
follow ``STATUS`` and ``ID`` in that table's ``data_schema``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

#: One item of a table: ``(table, ID, values)``, where ``values`` is aligned with
#: ``data_schema[table][2:]``; media values are lists of
#: ``["M", file_id, url_for_sub_label_2, ...]`` tuples.
SourceRow = tuple[str, int, list[Any]]


@dataclass(frozen=True)
class CatalogSource:
    """A catalog ready to be loaded into the emulator's store.

    ``tables`` is the serving order (``catalogue`` before ``products`` before
    ``product_formats``), which is also the order of pages in a run.
    """

    name: str
    tables: tuple[str, ...]
    schema: dict[str, Any]
    data_schema_info: dict[str, dict[str, dict[str, Any]]]
    data_schema: dict[str, list[Any]]
    rows: Callable[[], Iterator[SourceRow]]
    #: The change time given to every item of the initial load. A fixed value
    #: keeps repeated in-process demos incremental: the second run's cursor is
    #: later than every item, so it receives an ``update`` with nothing in it.
    loaded_at: int = 1_600_000_000
    notes: dict[str, str] = field(default_factory=dict)
