"""One import run: source → batcher → ledger → rate budget → submitters → outcome.

The source is read in one task and cut into batches; batches the ledger
holds as accepted are skipped; the others travel through a bounded channel
to ``concurrency`` submitters that share the rate budget. A batch with a
``status_tracking`` URL stays in flight while it is polled, without holding
a submitter. Each batch's outcome goes to the ledger (and its refused items
to the rejects file) as soon as it is known, so a run that dies resumes
where it was.

A batch that brings a table no earlier batch had waits until every earlier
batch has ended. A source sorted by table (categories, then products, then
variants) so sends the parents of references before the items that name
them; a source that mixes tables within batches is not slowed down.

The module passes 400 lines because the stages share the run's state (the
report, the ledger, the batches in flight); splitting them would spread one
flow over several files.

Over 400 lines: producer, submitters and tracking share one task group and
its counters.
"""

from __future__ import annotations

import logging
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
)
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import anyio
import anyio.lowlevel
from anyio.abc import ObjectReceiveStream, ObjectSendStream, TaskGroup
from anyio.streams.memory import MemoryObjectSendStream

from bulkflow._exceptions import DataError, UsageError
from bulkflow._http import HttpClient
from bulkflow.import_._batch import Batch, Batcher
from bulkflow.import_._ledger import Ledger, LedgerStatus
from bulkflow.import_._limits import Clock, RateBudget, SystemClock
from bulkflow.import_._outcome import (
    InputOutcome,
    Reject,
    RejectsFile,
    poll_tracking,
    rejects_all,
    rejects_for,
)
from bulkflow.import_._report import ImportReport
from bulkflow.import_._sources import ImportItem, Source, as_source
from bulkflow.import_._submit import ImportConnector, ImportOptions, Sent, Submitter
from bulkflow.pipeline import first_error

logger = logging.getLogger("bulkflow.import")

_Job = tuple[Batch, str]

#: Items encoded between two chances for the event loop's other tasks
#: (about a millisecond of work).
_ITEMS_PER_TURN = 64


class RunStatistics(NamedTuple):
    """A snapshot of an :class:`ImportRun`.

    Attributes:
        in_flight: batches handed to the submitters and not yet ended.
        tracking: batches whose tracking URL is being polled.
        queued: batches waiting in the channel for a free submitter.
        max_queued: the channel's size (``concurrency``).
    """

    in_flight: int
    tracking: int
    queued: int
    max_queued: int


class _InFlight:
    """Batches sent and not yet ended, and a way to wait until there are none."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = anyio.Event()
        self._idle.set()

    def add(self) -> None:
        """One more batch in flight."""
        if self.count == 0:
            self._idle = anyio.Event()
        self.count += 1

    def done(self) -> None:
        """A batch ended."""
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Wait until no batch is in flight."""
        await self._idle.wait()


@asynccontextmanager
async def _closing(items: AsyncIterator[ImportItem]) -> AsyncIterator[Any]:
    """Close an async generator source even when its reader stops early."""
    try:
        yield items
    finally:
        close = getattr(items, "aclose", None)
        if close is not None:
            await close()


class ImportRun:
    """Import a source into a connector; see :func:`import_items`."""

    def __init__(
        self,
        connector: ImportConnector,
        source: Source,
        options: ImportOptions,
        *,
        ledger: Ledger,
        rejects: RejectsFile | None = None,
        clock: Clock | None = None,
        progress: Callable[[ImportReport], None] | None = None,
    ) -> None:
        self.connector = connector
        self.source = source
        self.options = options
        self.clock = clock or SystemClock()
        self.budget = _budget(options.rate, clock)
        self.batcher = Batcher(
            max_items=options.batch_size,
            max_batch_bytes=options.max_batch_bytes,
            encoding=options.encoding,
            flags=options.flags(),
        )
        self.ledger = ledger
        self.rejects = rejects

        self.report = ImportReport(connector.code, source=source.description)
        self.report.ledger = str(ledger.path) if ledger.path else None
        self.report.rejects = str(rejects.path) if rejects else None
        self._progress = progress
        self._in_flight = _InFlight()
        # Tracking takes a few polls a batch: at a budget of 5/s and polls
        # 2 s apart, 30 or so batches are being tracked at any time, and a
        # smaller cap would hold the import below its budget.
        self._tracking_slots = anyio.Semaphore(
            max(options.max_tracking, options.concurrency)
        )
        self._seen_tables: set[str] = set()
        self._source_error: BaseException | None = None
        self._group: TaskGroup | None = None
        self._submitter: Submitter | None = None
        self._send: MemoryObjectSendStream[_Job] | None = None

    def statistics(self) -> RunStatistics:
        """A snapshot of the batches in flight, tracked and queued."""
        slots = max(self.options.max_tracking, self.options.concurrency)
        queued = 0
        if self._send is not None:
            queued = self._send.statistics().current_buffer_used
        return RunStatistics(
            in_flight=self._in_flight.count,
            tracking=slots - self._tracking_slots.value,
            queued=queued,
            max_queued=self.options.concurrency,
        )

    def __repr__(self) -> str:
        report = self.report
        return (
            f"<ImportRun {report.connector} sent={report.batches_sent} "
            f"accepted={report.batches_accepted} skipped={report.batches_skipped} "
            f"in_flight={self._in_flight.count}>"
        )

    async def run(self, http: HttpClient | None = None) -> ImportReport:
        """Import everything and return the report.

        Raises:
            DataError: a bad source record; everything before it was sent.
            ApiError, TransportError: an error no replay can cure, or retries
                used up; batches that ended are in the ledger.
        """
        try:
            if http is None:
                async with HttpClient() as own:
                    await self._run(own)
            else:
                await self._run(http)
        finally:
            self.report.seconds = time.monotonic() - self.report.started
        self._log_summary()
        if self._source_error is not None:
            # A source that could not even start (no file, no table, a bad
            # --map) is a usage error and needs no account of what was sent.
            if self.report.items_read or not isinstance(self._source_error, UsageError):
                self._warn_stopped()
            raise self._source_error
        if self.report.complete:
            # The import is complete: the ledger has done its job. The same
            # command run again is a new import (after a delete, say), not a
            # resume, so nothing of this one may make it skip a batch.
            self.ledger.forget(self._scope)
        return self.report

    @property
    def _scope(self) -> str:
        """What ledger entries belong to: the service and the connector."""
        parts = urlsplit(self.connector.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return f"{parts.scheme}://{parts.hostname}:{port} {self.connector.code}"

    def _warn_stopped(self) -> None:
        report = self.report
        message = (
            f"the source stopped at a bad record after {report.items_read:,} items: "
            f"{report.batches_sent:,} batches were sent ({report.batches_accepted:,} "
            f"accepted), {report.batches_skipped:,} skipped as already accepted; fix "
            "the record and run again: accepted batches are skipped"
        )
        report.warnings.append(message)
        logger.warning(message)

    async def _run(self, http: HttpClient) -> None:
        self._submitter = Submitter(
            self.connector,
            http,
            budget=self.budget,
            options=self.options,
            on_request=self._on_request,
            on_retry=self._on_retry,
        )

        concurrency = self.options.concurrency
        send, receive = anyio.create_memory_object_stream[_Job](concurrency)
        self._send = send
        try:
            async with anyio.create_task_group() as group:
                self._group = group
                group.start_soon(self._produce, send, http)
                for _ in range(concurrency):
                    group.start_soon(self._consume, receive.clone(), http)
                receive.close()
        except BaseExceptionGroup as error:
            raise first_error(error) from None
        finally:
            if self.budget is not None:
                self.report.slowdowns = self.budget.statistics().slowdowns

    # -- the source side ------------------------------------------------------

    async def _produce(self, send: ObjectSendStream[_Job], http: HttpClient) -> None:
        async with send:
            try:
                async with _closing(self.source.aiter_items()) as items:
                    async for item in items:
                        self.report.items_read += 1
                        closed = self.batcher.add(item)
                        if closed is not None:
                            await self._dispatch(closed, send)
                        elif self.report.items_read % _ITEMS_PER_TURN == 0:
                            # Encoding is CPU work on the event loop: let the
                            # rate budget's wake-ups and the sends run.
                            await anyio.lowlevel.checkpoint()
            except (DataError, UsageError) as exc:
                # Stop reading, but send what was read before the bad record.
                self._source_error = exc

            final = self.batcher.flush()
            if final is not None:
                await self._dispatch(final, send)

    async def _dispatch(self, batch: Batch, send: ObjectSendStream[_Job]) -> None:
        key = Ledger.key(self._scope, batch)
        tables = set(batch.tables)
        if self.ledger.accepted(key):
            self.report.batches_skipped += 1
            self.report.items_skipped += len(batch.items)
            self._seen_tables |= tables
            self._notify()
            return

        if self._seen_tables and not tables <= self._seen_tables:
            # The parents this batch may name must be in before it goes.
            await self._in_flight.wait_idle()
        self._seen_tables |= tables
        self._in_flight.add()
        await send.send((batch, key))

    # -- the sending side -------------------------------------------------------

    async def _consume(
        self, receive: ObjectReceiveStream[_Job], http: HttpClient
    ) -> None:
        assert self._submitter is not None
        async with receive:
            async for batch, key in receive:
                self.ledger.record_sent(key, self._scope, batch)
                self.report.batches_sent += 1
                self.report.items_sent += len(batch.items)
                sent = await self._submitter.send(batch)
                await self._answered(sent, key, http)

    async def _answered(self, sent: Sent, key: str, http: HttpClient) -> None:
        batch, outcome = sent.batch, sent.outcome
        if outcome is None:
            reason = sent.refusal or "refused"
            self._finish(batch, key, "refused", None, rejects_all(batch, reason))
            return
        if outcome.tracking_url and outcome.status != "refused":
            await self._tracking_slots.acquire()
            assert self._group is not None
            self._group.start_soon(self._track, batch, key, outcome, http)
            return
        self._finish(batch, key, outcome.status, outcome, rejects_for(batch, outcome))

    async def _track(
        self, batch: Batch, key: str, outcome: InputOutcome, http: HttpClient
    ) -> None:
        assert outcome.tracking_url is not None
        try:
            result = await poll_tracking(
                http,
                outcome.tracking_url,
                base=self.connector.url,
                deadline=self.options.tracking_timeout,
                interval=self.options.poll_interval,
                clock=self.clock,
                where=f"connector {self.connector.code}, batch {batch.number}",
            )
        finally:
            self._tracking_slots.release()

        if result.status == "end":
            rejects = rejects_for(batch, outcome)
            self._finish(batch, key, outcome.status, outcome, rejects)
            return

        message = (
            f"batch {batch.number}: tracking ended in {result.status} at "
            f"{result.percent}% ({result.message}); the next run sends it again"
        )
        self.report.warnings.append(message)
        logger.warning("batch.unconfirmed %s", message)
        self._finish(batch, key, "unconfirmed", None, [], message=message)

    def _finish(
        self,
        batch: Batch,
        key: str,
        status: LedgerStatus,
        outcome: InputOutcome | None,
        rejects: list[Reject],
        *,
        message: str | None = None,
    ) -> None:
        """Record how a batch ended: rejects file, ledger, report."""
        if self.rejects is not None:
            self.rejects.write(rejects)

        rejected = sum(1 for reject in rejects if reject.item is not None)
        new, updated, deleted = _counts(outcome)
        if message is None and rejects:
            message = rejects[0].reason

        self.ledger.record_outcome(
            key,
            status,
            new=new,
            updated=updated,
            deleted=deleted,
            rejected=rejected,
            message=message,
        )

        self._count(status, rejected, len(rejects) - rejected, (new, updated, deleted))
        logger.debug(
            "batch.complete batch=%d status=%s items=%d rejected=%d",
            batch.number,
            status,
            len(batch.items),
            rejected,
        )

        self._in_flight.done()
        self._notify()

    def _count(
        self, status: str, rejected: int, unattributed: int, items: tuple[int, int, int]
    ) -> None:
        report = self.report
        field = f"batches_{status}"
        setattr(report, field, getattr(report, field) + 1)
        report.items_rejected += rejected
        report.unattributed_errors += unattributed
        report.items_new += items[0]
        report.items_updated += items[1]
        report.items_deleted += items[2]

    # -- bookkeeping ------------------------------------------------------------

    def _on_request(self, moment: float) -> None:
        self.report.requests += 1
        self.report.request_times.append(moment)

    def _on_retry(self, reason: str) -> None:
        self.report.retries += 1

    def _notify(self) -> None:
        if self._progress is not None:
            self.report.seconds = time.monotonic() - self.report.started
            self._progress(self.report)

    def _log_summary(self) -> None:
        report = self.report
        logger.info(
            "run.complete connector=%s batches_sent=%d accepted=%d partial=%d "
            "refused=%d skipped=%d items_sent=%d rejected=%d seconds=%.2f "
            "items_per_s=%.0f",
            report.connector,
            report.batches_sent,
            report.batches_accepted,
            report.batches_partial,
            report.batches_refused,
            report.batches_skipped,
            report.items_sent,
            report.items_rejected,
            report.seconds,
            report.items_per_s,
        )


def _counts(outcome: InputOutcome | None) -> tuple[int, int, int]:
    if outcome is None:
        return 0, 0, 0
    return outcome.new, outcome.updated, outcome.deleted


def _budget(rate: RateBudget | str | None, clock: Clock | None) -> RateBudget | None:
    if rate is None or isinstance(rate, RateBudget):
        return rate
    return RateBudget.from_text(rate, clock=clock)


@contextmanager
def _open_files(
    ledger: str | Path | Ledger | None, rejects: str | Path | None
) -> Iterator[tuple[Ledger, RejectsFile | None]]:
    """The ledger (opened unless given open) and the rejects file, closed after."""
    opened = ledger if isinstance(ledger, Ledger) else Ledger(ledger)
    rejects_file = RejectsFile(rejects) if rejects is not None else None
    try:
        yield opened, rejects_file
    finally:
        if rejects_file is not None:
            rejects_file.close()
        if opened is not ledger:
            opened.close()


async def import_items(
    connector: ImportConnector,
    source: Source | Iterable[Any] | AsyncIterable[Any],
    options: ImportOptions | None = None,
    *,
    table: str | None = None,
    ledger: str | Path | Ledger | None = None,
    rejects: str | Path | None = None,
    progress: Callable[[ImportReport], None] | None = None,
    http: HttpClient | None = None,
    clock: Clock | None = None,
) -> ImportReport:
    """Import ``source`` into ``connector``, in batches, under a rate budget.

    Args:
        connector: the import connector.
        source: a source (:class:`JsonlSource`, :class:`CsvSource`,
            :class:`SqliteSource`...) or an iterable, sync or async, of
            ``{"table": t, "item": {...}}`` records or plain items of ``table``.
        options: rate, concurrency, batch bounds, encoding, tracking
            (:class:`ImportOptions`; its defaults when ``None``).
        table: the table of plain items.
        ledger: the ledger file (or an open :class:`Ledger`); ``None`` keeps
            it in memory, so that a second run sends everything again.
        rejects: the rejects file (JSONL), truncated at the start.
        progress: called with the live report after each batch.
        http: an open :class:`HttpClient` to use (one is made otherwise).
        clock: the clock of the budget and of tracking polls (tests).

    Raises:
        DataError: a bad source record, after everything before it was sent.
        UsageError: bad options.
        ApiError, TransportError: see :meth:`ImportRun.run`.

    Cancelled, the call stops at once. Batches that ended are in the ledger;
    those in flight may or may not have been applied and are sent again by
    the next run, which is harmless (imports match items by REF).
    """
    with _open_files(ledger, rejects) as (opened, rejects_file):
        run = ImportRun(
            connector,
            as_source(source, table=table),
            options or ImportOptions(),
            ledger=opened,
            rejects=rejects_file,
            clock=clock,
            progress=progress,
        )
        return await run.run(http)
