"""What an export run did: the report, live while it runs."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from bulkflow.sinks import PageStats


@dataclass
class RunReport:
    """What a run did; live while it runs, final when it returns."""

    connector: str
    action: str | None = None
    pages: int = 0
    pages_skipped: int = 0
    pages_read_ahead: int = 0
    page_count: int | None = None
    resumed: bool = False
    restarted: bool = False
    upserts: dict[str, int] = field(default_factory=dict)
    deletes: dict[str, int] = field(default_factory=dict)
    rows: int = 0
    bytes: int = 0
    retries: int = 0
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0
    previous_cursor: int | None = None
    cursor: int | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def rows_per_s(self) -> float:
        """Rows written per second of the run."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def add(self, stats: PageStats) -> None:
        """Count one committed page."""
        for table, count in stats.upserts.items():
            self.upserts[table] = self.upserts.get(table, 0) + count
        for table, count in stats.deletes.items():
            self.deletes[table] = self.deletes.get(table, 0) + count

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values (the CLI's ``--report``)."""
        return {
            "connector": self.connector,
            "action": self.action,
            "pages": self.pages,
            "pages_skipped": self.pages_skipped,
            "pages_read_ahead": self.pages_read_ahead,
            "resumed": self.resumed,
            "restarted": self.restarted,
            "upserts": dict(sorted(self.upserts.items())),
            "deletes": dict(sorted(self.deletes.items())),
            "rows": self.rows,
            "bytes": self.bytes,
            "retries": self.retries,
            "seconds": round(self.seconds, 3),
            "rows_per_s": round(self.rows_per_s, 1),
            "previous_cursor": self.previous_cursor,
            "cursor": self.cursor,
            "warnings": self.warnings,
        }
