"""The import ledger: every batch sent to a connector and how it ended, in SQLite.

A batch is keyed by a hash of its connector and its content (tables, items
and values, not the encoding), so that the same source, read again with the
same batch bounds, makes the same keys. A run skips the batches the ledger
holds as ``accepted``. Batches that ended otherwise (sent without an answer,
refused, partly refused, tracking unfinished) are sent again, which is
harmless because imports match items by ``REF``.

Writes are single-row commits in WAL mode with ``synchronous=NORMAL``: a
killed process loses at most the batch whose outcome it was writing, and
that batch is then simply sent again.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path
from typing import Literal, NamedTuple

from bulkflow._exceptions import StateError
from bulkflow.import_._batch import Batch

LedgerStatus = Literal["sent", "accepted", "partial", "refused", "unconfirmed"]

_DDL = """
CREATE TABLE IF NOT EXISTS batches (
    key TEXT PRIMARY KEY,
    connector TEXT NOT NULL,
    number INTEGER NOT NULL,
    items INTEGER NOT NULL,
    tables TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    new INTEGER NOT NULL DEFAULT 0,
    updated INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    rejected INTEGER NOT NULL DEFAULT 0,
    message TEXT,
    first_sent REAL NOT NULL,
    updated_at REAL NOT NULL
)
"""


class LedgerStatistics(NamedTuple):
    """Batches of the ledger by status, all connectors together."""

    path: str
    sent: int
    accepted: int
    partial: int
    refused: int
    unconfirmed: int


class Ledger:
    """The batches sent to import connectors, in one SQLite file.

    Args:
        path: the database file, created when missing; ``None`` keeps the
            ledger in memory (no resume across runs).

    Raises:
        StateError: the file exists but is not a ledger.
    """

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path is not None else None
        target = ":memory:" if path is None else str(path)

        try:
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(target, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.execute(_DDL)
        except (sqlite3.Error, OSError) as exc:
            raise StateError(
                f"ledger {target}: cannot open it ({exc}); give another file with "
                "--ledger, or remove this one to send every batch again"
            ) from exc

    def __repr__(self) -> str:
        stats = self.statistics()
        return (
            f"<Ledger {stats.path!r} accepted={stats.accepted} sent={stats.sent} "
            f"partial={stats.partial} refused={stats.refused}>"
        )

    @staticmethod
    def key(connector: str, batch: Batch) -> str:
        """The batch's key: a hash of the service and connector, and the content."""
        return hashlib.sha256(f"{connector}\0{batch.digest}".encode()).hexdigest()

    def accepted(self, key: str) -> bool:
        """True when the batch ``key`` was accepted by an earlier send."""
        row = self._db.execute(
            "SELECT status FROM batches WHERE key=?", (key,)
        ).fetchone()
        return row is not None and row[0] == "accepted"

    def forget(self, connector: str) -> int:
        """Drop every batch of ``connector`` (its import is complete)."""
        cursor = self._db.execute("DELETE FROM batches WHERE connector=?", (connector,))
        return cursor.rowcount

    def record_sent(self, key: str, connector: str, batch: Batch) -> None:
        """Note that ``batch`` is being sent (once more)."""
        now = time.time()
        self._db.execute(
            "INSERT INTO batches (key, connector, number, items, tables, status, "
            "attempts, first_sent, updated_at) VALUES (?, ?, ?, ?, ?, 'sent', 1, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET status='sent', "
            "attempts=attempts+1, number=excluded.number, "
            "updated_at=excluded.updated_at",
            (
                key,
                connector,
                batch.number,
                len(batch.items),
                ",".join(batch.tables),
                now,
                now,
            ),
        )

    def record_outcome(
        self,
        key: str,
        status: LedgerStatus,
        *,
        new: int = 0,
        updated: int = 0,
        deleted: int = 0,
        rejected: int = 0,
        message: str | None = None,
    ) -> None:
        """Store how the batch ``key`` ended."""
        self._db.execute(
            "UPDATE batches SET status=?, new=?, updated=?, deleted=?, rejected=?, "
            "message=?, updated_at=? WHERE key=?",
            (status, new, updated, deleted, rejected, message, time.time(), key),
        )

    def statistics(self) -> LedgerStatistics:
        """How many batches the ledger holds in each status."""
        counts = dict(
            self._db.execute("SELECT status, count(*) FROM batches GROUP BY status")
        )
        return LedgerStatistics(
            path=str(self.path) if self.path else ":memory:",
            sent=counts.get("sent", 0),
            accepted=counts.get("accepted", 0),
            partial=counts.get("partial", 0),
            refused=counts.get("refused", 0),
            unconfirmed=counts.get("unconfirmed", 0),
        )

    def close(self) -> None:
        """Close the database."""
        self._db.close()
