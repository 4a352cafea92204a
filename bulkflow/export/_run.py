"""One export run: the page loop, the streaming pipeline, retries and resume.

Each page is fetched, parsed as it arrives and written to the sink as chunks
travel through a bounded channel; the page and its checkpoint then commit in
one transaction. A failure before the commit rolls the page back, and the
page is fetched again (transient failures) or the run stops (the others);
what was committed stays. The cursor is the ``time`` of the run's first page
and is stored only with the commit of the last page (§3).

Over 400 lines: the page loop, its retries and the per-page pipeline share
the run's state (cursor, run id, action, schemas).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from bulkflow._exceptions import (
    ApiError,
    DataError,
    PageParseError,
    StateError,
    TransientError,
    UnsafeURL,
    shorten,
)
from bulkflow._http import (
    HttpClient,
    ResponseStream,
    RetryPolicy,
    Timeouts,
    check_origin,
    safe_url,
    same_origin,
)
from bulkflow._ijson import warn_if_slow
from bulkflow.export._ahead import ReadAhead
from bulkflow.export._connector import ExportConnector
from bulkflow.export._parser import (
    HeaderValue,
    PageParser,
    RowChunk,
)
from bulkflow.export._report import RunReport
from bulkflow.pipeline import first_error, gc_tuned
from bulkflow.protocol import (
    API_VERSION,
    INFORMATIVE_CODES,
    Retry,
    TableSchema,
    describe,
    encode_form,
    error_for,
    schemas,
    signed_params,
)
from bulkflow.sinks import Checkpoint, PageStats, Sink

logger = logging.getLogger("bulkflow.export")


class _TokenRefused(StateError):
    """A ``next_page`` token was refused (expired or unknown): restart the run."""


@dataclass
class _Begin:
    run_id: int
    schemas: dict[str, TableSchema]


@dataclass
class _End:
    checkpoint: Checkpoint
    finish_refresh: bool


_Message = _Begin | RowChunk | _End


@dataclass
class _Page:
    """What the loop learns from one page's header."""

    number: int
    header: dict[str, Any] = field(default_factory=dict)
    stats: PageStats | None = None
    begun: bool = False


class ExportRun:
    """Run an export connector into a sink; see :func:`export`."""

    def __init__(
        self,
        connector: ExportConnector,
        sink: Sink,
        *,
        retry: RetryPolicy | None = None,
        http: HttpClient | None = None,
        max_chunk_rows: int = 500,
        max_buffered_chunks: int = 2,
        max_pages: int = 1_000_000,
        progress: Callable[[RunReport], None] | None = None,
        tune_gc: bool = True,
        timeouts: Timeouts | None = None,
        read_ahead: bool = True,
        whole_page_bytes: int = 0,
    ) -> None:
        warn_if_slow()
        self.connector = connector
        self.sink = sink
        self.retry = retry or RetryPolicy()
        self.max_chunk_rows = max_chunk_rows
        self.max_buffered_chunks = max_buffered_chunks
        self.max_pages = max_pages
        self.tune_gc = tune_gc
        self.timeouts = timeouts
        self.read_ahead = read_ahead
        self.whole_page_bytes = whole_page_bytes
        self._ahead: ReadAhead | None = None
        self.report = RunReport(connector.code)
        self._http = http
        self._progress = progress
        self._rng = random.Random()
        self._schemas: dict[str, TableSchema] = {}
        self._run_time: int | None = None
        self._run_id: int | None = None
        self._action: str | None = None
        self._rows_sent = 0

    def __repr__(self) -> str:
        report = self.report
        return (
            f"ExportRun(connector={report.connector!r}, action={report.action!r}, "
            f"pages={report.pages}, rows={report.rows})"
        )

    async def run(self) -> RunReport:
        """Run to the last page and return the report.

        Raises:
            ApiError, TransportError: when retries are used up or the error
                is not transient; committed pages stay and the next run
                resumes after them.
            DataError: a page or row the sink cannot take; nothing of that
                page is written.
        """
        with gc_tuned(self.tune_gc):
            if self._http is not None:
                return await self._run()
            async with HttpClient(timeouts=self.timeouts) as http:
                self._http = http
                try:
                    return await self._run()
                finally:
                    self._http = None

    async def _run(self) -> RunReport:
        checkpoint = await anyio.to_thread.run_sync(
            self.sink.load_checkpoint, self.connector.code
        )
        self._check_origin(checkpoint)
        checkpoint = replace(checkpoint, origin=self._origin)
        self.report.previous_cursor = checkpoint.cursor
        try:
            if checkpoint.in_progress:
                await self._resume(checkpoint)
            else:
                await self._loop(self._first_request(checkpoint.cursor), checkpoint, 1)
        finally:
            self.report.seconds = time.monotonic() - self.report.started
        self._log_summary()
        return self.report

    async def _resume(self, checkpoint: Checkpoint) -> None:
        """Continue an interrupted run; start afresh if its token is refused."""
        assert checkpoint.next_url is not None
        self.report.resumed = True
        self.report.pages_skipped = checkpoint.pages_done
        self._run_time, self._action = checkpoint.run_time, checkpoint.action
        self._run_id = checkpoint.run_id
        self.report.action = checkpoint.action
        logger.info(
            "run.resumed connector=%s pages_skipped=%d",
            self.connector.code,
            checkpoint.pages_done,
        )
        try:
            check_origin(
                checkpoint.next_url, self.connector.url, what="stored next_page"
            )
        except UnsafeURL as exc:
            raise StateError(
                f"{exc}; `bulkflow state --reset {self.connector.code}` starts over"
            ) from exc
        request = ("GET", checkpoint.next_url, None, None)
        try:
            await self._loop(request, checkpoint, checkpoint.pages_done + 1)
        except _TokenRefused as exc:
            self._restart(str(exc))
            fresh = replace(checkpoint, next_url=None, pages_done=0)
            await self._loop(self._first_request(checkpoint.cursor), fresh, 1)

    @property
    def _origin(self) -> str:
        if self.connector.service:
            return self.connector.service
        parts = urlsplit(self.connector.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return f"{parts.scheme}://{parts.hostname}:{port}"

    def _check_origin(self, checkpoint: Checkpoint) -> None:
        """Refuse state that another service (same code, other host) left."""
        if checkpoint.origin is None or checkpoint.origin == self._origin:
            return
        code = self.connector.code
        raise StateError(
            f"connector {code}: this replica's cursor came from "
            f"{checkpoint.origin}, not {self._origin}; a cursor means nothing to "
            f"another service. Export into another file, or run `bulkflow state "
            f"--reset {code}` to start over with a refresh"
        )

    def _restart(self, reason: str) -> None:
        message = (
            f"connector {self.connector.code}: the interrupted run cannot continue "
            f"({reason}); starting it again from its cursor"
        )
        logger.warning(message)
        self.report.warnings.append(message)
        self.report.restarted = True
        self.report.pages_skipped = 0
        self._run_time = self._run_id = self._action = None

    def _first_request(self, cursor: int | None) -> tuple[str, str, Any, Any]:
        """The first page's request; its signature is drawn anew on every try."""
        query = {"ver": API_VERSION, **self.connector.params}
        if cursor:
            query["last_update"] = str(max(1, cursor - self.connector.lag))
        body = encode_form({"pagination": self.connector.page_size})
        return ("POST", self.connector.url, query, body)

    async def _loop(
        self, request: tuple[str, str, Any, Any], checkpoint: Checkpoint, number: int
    ) -> None:
        assert self._http is not None
        try:
            async with anyio.create_task_group() as group:
                if self.read_ahead:
                    self._ahead = ReadAhead(self._http, group)
                try:
                    await self._pages(request, checkpoint, number)
                finally:
                    if self._ahead is not None:
                        self._ahead.close()
                        self._ahead = None
        except BaseExceptionGroup as group_error:
            raise first_error(group_error) from None

    async def _pages(
        self, request: tuple[str, str, Any, Any], checkpoint: Checkpoint, number: int
    ) -> None:
        seen_urls: set[str] = set()
        while True:
            page = await self._page_with_retries(request, checkpoint, number)
            next_url = page.header.get("next_page") or None
            if not next_url:
                return
            next_url = str(next_url)
            if next_url in seen_urls or number >= self.max_pages:
                raise DataError(
                    f"{self._where(number)}: next_page repeats an earlier URL or "
                    f"the run passed {self.max_pages} pages; stopping a page loop",
                    where=self._where(number),
                    value=safe_url(next_url),
                )
            seen_urls.add(next_url)
            request = ("GET", next_url, None, None)
            number += 1
            checkpoint = replace(checkpoint, next_url=next_url, pages_done=number - 1)

    async def _page_with_retries(
        self, request: tuple[str, str, Any, Any], checkpoint: Checkpoint, number: int
    ) -> _Page:
        resigned = False
        for attempt in range(self.retry.max_attempts):
            try:
                return await self._page(request, checkpoint, number)
            except TransientError as exc:
                if attempt + 1 >= self.retry.max_attempts:
                    raise
                delay = self.retry.delay(attempt, exc.retry_after, self._rng)
                self._warn_retry(number, attempt, delay, exc)
                await anyio.sleep(delay)
            except ApiError as exc:
                retry = describe(exc.code).retry
                # A next_page the service does not take (unknown, altered or
                # expired token): the run starts again from its cursor.
                if request[0] == "GET" and exc.code in (1, 2, 4, 13):
                    raise _TokenRefused(str(exc)) from exc
                if retry is not Retry.RESIGN_ONCE or resigned:
                    raise
                resigned = True
                self._warn_retry(number, attempt, 0.0, exc)
        raise AssertionError("unreachable: the last attempt raises")

    def _warn_retry(
        self, number: int, attempt: int, delay: float, exc: BaseException
    ) -> None:
        self.report.retries += 1
        logger.warning(
            "page.retry connector=%s page=%d attempt=%d delay=%.2fs reason=%s",
            self.connector.code,
            number,
            attempt + 1,
            delay,
            exc,
        )

    async def _page(
        self, request: tuple[str, str, Any, Any], checkpoint: Checkpoint, number: int
    ) -> _Page:
        """Fetch, parse and commit one page."""
        if number == 1:
            # A retried first page comes with a new ``time``: take the cursor
            # and the action from the try that commits.
            self._run_time = self._action = None
        method, url, query, body = request
        if method == "POST":
            signature = signed_params(
                self.connector.code, self.connector.secret, time=int(time.time())
            )
            query = {**signature, **query}
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
        else:
            headers = None
        page = _Page(number)
        send, receive = anyio.create_memory_object_stream[_Message](
            self.max_buffered_chunks
        )
        assert self._http is not None
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._drain, receive, page)
                async with send:
                    async with self._open(method, url, query, body, headers) as stream:
                        parser = PageParser(
                            max_chunk_rows=self.max_chunk_rows,
                            where=self._where(number),
                        )
                        await self._parse(stream, parser, page, send)
                        self.report.bytes += stream.bytes_read
                    await self._end(page, checkpoint, send)
        except BaseExceptionGroup as group_error:
            # One side failed and the other was cancelled: raise the cause
            # itself, so that callers can catch bulkflow's classes.
            raise first_error(group_error) from None
        self.report.pages += 1
        logger.debug(
            "page.complete connector=%s page=%d upserts=%d deletes=%d",
            self.connector.code,
            number,
            sum(page.stats.upserts.values()) if page.stats else 0,
            sum(page.stats.deletes.values()) if page.stats else 0,
        )
        self._notify()
        return page

    async def _parse(
        self,
        stream: ResponseStream,
        parser: PageParser,
        page: _Page,
        send: ObjectSendStream[_Message],
    ) -> None:
        """Parse the body as it arrives, or whole when it is declared small."""
        length = stream.content_length
        if length is not None and length <= self.whole_page_bytes:
            whole = b"".join([data async for data in stream.aiter_bytes()])
            await self._route(parser.parse_whole(whole), page, send)
            return
        async for data in stream.aiter_bytes():
            await self._route(parser.feed(data), page, send)
        await self._route(parser.close(), page, send)

    @asynccontextmanager
    async def _open(
        self, method: str, url: str, query: Any, body: Any, headers: Any
    ) -> AsyncIterator[ResponseStream]:
        """The page's response: the early one when read-ahead has it."""
        assert self._http is not None
        if method == "GET" and self._ahead is not None:
            async with self._ahead.take(url) as (early, failure):
                if early is not None:
                    self.report.pages_read_ahead += 1
                    yield early
                    return
            if failure is not None:
                self._warn_retry(self.report.pages + 1, 0, 0.0, failure)
        async with self._http.open_stream(
            method, url, params=query, data=body, headers=headers
        ) as stream:
            yield stream

    async def _route(
        self, events: list[Any], page: _Page, send: ObjectSendStream[_Message]
    ) -> None:
        for event in events:
            if isinstance(event, HeaderValue):
                self._header(page, event)
                continue
            if not page.begun:
                await send.send(self._begin(page))
            self._rows_sent += len(event.rows)
            await send.send(event)

    def _header(self, page: _Page, event: HeaderValue) -> None:
        page.header[event.key] = event.value
        if event.key == "next_page" and event.value and self._ahead is not None:
            # Only on the connector's host: the page's commit refuses others.
            if same_origin(str(event.value), self.connector.url):
                self._ahead.start(str(event.value))
        if event.key != "error" or not event.value:
            return
        code = int(event.value)
        if code in INFORMATIVE_CODES:
            message = (
                f"{self._where(page.number)}: API error {code} "
                f"({describe(code).text}); {describe(code).advice}"
            )
            logger.warning(message)
            self.report.warnings.append(message)
            return
        raise error_for(
            code,
            where=self._where(page.number),
            message=str(page.header.get("error_message") or ""),
        )

    def _begin(self, page: _Page) -> _Begin:
        """Take the run's time, action and schema from the page header."""
        header = page.header
        page.begun = True
        if self._run_time is None:
            if "time" not in header:
                raise PageParseError(
                    f"{self._where(page.number)}: the first page has no 'time' "
                    "before its data; bulkflow needs it to take the cursor",
                    where=self._where(page.number),
                )
            self._run_time = _integer(header["time"], "time", self._where(page.number))
        if self._run_id is None:
            self._run_id = time.time_ns()
        if self._action is None:
            self._action = str(header.get("action") or "update")
            if header.get("error") == 5:
                self._action = "refresh"
            self.report.action = self._action
        if "data_schema" in header:
            self._schemas = schemas(
                header["data_schema"], header.get("data_schema_info")
            )
        if "page_count" in header:
            where = self._where(page.number)
            self.report.page_count = _integer(header["page_count"], "page_count", where)
        return _Begin(self._run_id, self._schemas)

    async def _end(
        self, page: _Page, checkpoint: Checkpoint, send: ObjectSendStream[_Message]
    ) -> None:
        if not page.begun:
            await send.send(self._begin(page))
        assert self._run_time is not None
        next_url = page.header.get("next_page") or None
        if next_url:
            # Checked before the commit, so that no checkpoint ever points away.
            check_origin(str(next_url), self.connector.url, what="next_page")
            done = replace(
                checkpoint,
                run_time=self._run_time,
                run_id=self._run_id,
                action=self._action,
                next_url=str(next_url),
                pages_done=page.number,
                error=None,
            )
            await send.send(_End(done, finish_refresh=False))
            return
        self.report.cursor = self._run_time
        summary = {
            "action": self._action,
            "finished_at": int(time.time()),
            "pages": page.number,
            "rows_this_process": self._rows_sent,
            "resumed": self.report.resumed,
            "restarted": self.report.restarted,
        }
        final = Checkpoint(
            self.connector.code,
            cursor=self._run_time,
            last_run=summary,
            origin=self._origin,
        )
        await send.send(_End(final, finish_refresh=self._action == "refresh"))

    async def _drain(self, receive: ObjectReceiveStream[_Message], page: _Page) -> None:
        """The sink side of a page: apply every message, then commit or roll back."""
        sink, code = self.sink, self.connector.code
        run_sync = anyio.to_thread.run_sync
        try:
            async with receive:
                async for message in receive:
                    if isinstance(message, RowChunk):
                        write = partial(
                            sink.write,
                            message.table,
                            message.rows,
                            first_index=message.first_index,
                        )
                        await run_sync(write)
                        self.report.rows += len(message.rows)
                        self._notify()
                    elif isinstance(message, _Begin):
                        await run_sync(
                            sink.begin_page, code, message.run_id, message.schemas
                        )
                    else:
                        commit = partial(
                            sink.commit_page,
                            message.checkpoint,
                            finish_refresh=message.finish_refresh,
                        )
                        page.stats = await run_sync(commit)
                        self.report.add(page.stats)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await run_sync(sink.rollback_page)
            raise
        if page.stats is None:
            # The producer closed the channel without an end: it failed.
            with anyio.CancelScope(shield=True):
                await run_sync(sink.rollback_page)

    def _notify(self) -> None:
        if self._progress is not None:
            self.report.seconds = time.monotonic() - self.report.started
            self._progress(self.report)

    def _where(self, number: int) -> str:
        return f"connector {self.connector.code}, page {number}"

    def _log_summary(self) -> None:
        report = self.report
        logger.info(
            "run.complete connector=%s action=%s pages=%d rows=%d bytes=%d "
            "seconds=%.2f rows_per_s=%.0f cursor=%s",
            report.connector,
            report.action,
            report.pages,
            report.rows,
            report.bytes,
            report.seconds,
            report.rows_per_s,
            report.cursor,
        )


def _integer(value: Any, key: str, where: str) -> int:
    """A header value that must be an integer, or a PageParseError saying so."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise PageParseError(
            f"{where}: {key!r} must be an integer, got {shorten(value)}",
            where=where,
            value=value,
        ) from None


async def export(
    connector: ExportConnector,
    sink: Sink,
    *,
    retry: RetryPolicy | None = None,
    max_chunk_rows: int = 500,
    max_buffered_chunks: int = 2,
    progress: Callable[[RunReport], None] | None = None,
    timeouts: Timeouts | None = None,
    read_ahead: bool = True,
    whole_page_bytes: int = 0,
) -> RunReport:
    """Export ``connector`` into ``sink``: resume, or run incrementally from the cursor.

    Memory stays bounded by ``max_chunk_rows × max_buffered_chunks`` rows,
    whatever the page size. With ``whole_page_bytes`` (e.g. ``WHOLE_PAGE_BYTES``,
    4 MiB), pages that declare a length up to that are read whole and parsed
    with orjson, about a tenth faster on small pages, plus one such body in
    memory; see :meth:`PageParser.parse_whole` for the one case where that
    reads a page differently. The default, 0, streams every page.

    Cancelling the call rolls back the page being written; committed pages
    stay, and the next call resumes after them.

    Raises:
        ApiError, TransportError, DataError, SinkError: see :meth:`ExportRun.run`.
    """
    run = ExportRun(
        connector,
        sink,
        retry=retry,
        max_chunk_rows=max_chunk_rows,
        max_buffered_chunks=max_buffered_chunks,
        progress=progress,
        timeouts=timeouts,
        read_ahead=read_ahead,
        whole_page_bytes=whole_page_bytes,
    )
    return await run.run()
