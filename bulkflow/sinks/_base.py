"""What a sink is: where pages of changes land, each page with its checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from bulkflow.protocol import TableSchema


@dataclass(frozen=True)
class Checkpoint:
    """Where a connector's sync stands, stored in the same transaction as its page.

    Attributes:
        connector: the connector's code.
        cursor: the ``last_update`` the next run sends (``None``: never synced).
        run_time: the ``time`` of the interrupted run's first page, or ``None``
            when no run is under way.
        run_id: the interrupted run's own id (nanoseconds at its start), which
            marks the rows it wrote; unique even for runs in the same second.
        action: ``refresh`` or ``update`` of the run under way.
        next_url: the ``next_page`` URL to continue from (no secret in it:
            ``next_page`` URLs carry an opaque token, not the signature).
        pages_done: pages of the run under way already committed.
        error: the last error of a failed run, in one line.
        last_run: a summary of the last completed run (action, pages, rows,
            when it finished), for ``bulkflow state``.
        origin: ``scheme://host:port`` of the service the state came from; a
            cursor means nothing to another service with the same code.
    """

    connector: str
    cursor: int | None = None
    run_time: int | None = None
    run_id: int | None = None
    action: str | None = None
    next_url: str | None = None
    pages_done: int = 0
    error: str | None = None
    last_run: dict[str, Any] | None = None
    origin: str | None = None

    @property
    def in_progress(self) -> bool:
        """True when a run was interrupted after committing some of its pages."""
        return self.next_url is not None


@dataclass
class PageStats:
    """What one page changed, per table."""

    upserts: dict[str, int] = field(default_factory=dict)
    deletes: dict[str, int] = field(default_factory=dict)


class Sink(Protocol):
    """A destination for export runs.

    Calls come from one task at a time, in this order for each page:
    :meth:`begin_page`, :meth:`write` any number of times, then either
    :meth:`commit_page` or :meth:`rollback_page`. A sink must make a page's
    writes and its checkpoint visible together or not at all. Methods are
    synchronous; the export runs them in a worker thread.
    """

    def load_checkpoint(self, connector: str) -> Checkpoint:
        """Return the stored checkpoint of ``connector`` (empty if none)."""
        ...

    def begin_page(
        self, connector: str, run_id: int, schemas: dict[str, TableSchema]
    ) -> None:
        """Start a page's transaction; create or widen tables for ``schemas``.

        ``run_id`` marks every row the page writes as seen by ``connector`` in
        this run (a refresh removes, at its end, the rows it did not mark).
        """
        ...

    def write(self, table: str, rows: list[list[Any]], *, first_index: int) -> None:
        """Apply wire rows of ``table``: ``D`` rows delete, the others upsert."""
        ...

    def commit_page(
        self, checkpoint: Checkpoint, *, finish_refresh: bool = False
    ) -> PageStats:
        """Store ``checkpoint`` and commit the page; return what it changed.

        With ``finish_refresh``, the rows of the connector that the run did
        not write are removed first (a refresh carries no ``D`` rows).
        """
        ...

    def rollback_page(self) -> None:
        """Undo everything since :meth:`begin_page`."""
        ...

    def close(self) -> None:
        """Release the destination."""
        ...
