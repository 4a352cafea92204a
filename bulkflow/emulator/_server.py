"""The emulator's HTTP side: an aiohttp application that answers like API 1.18.

One handler at ``/`` takes GET and POST, merges the query with a form,
multipart or JSON body (the body wins, §1.5), checks the signature and the
clock, and serves an export run page by page with signed ``next_page``
tokens (§9). API errors travel as HTTP 200 with ``error`` in the body, as the
reference does.

Over 400 lines: the checks, the run context and page rendering share one
handler's state.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import orjson
from aiohttp import web

from bulkflow._exceptions import DataError
from bulkflow.emulator import _scope, _tokens
from bulkflow.emulator._answers import error_response, flag
from bulkflow.emulator._faults import Fault, FaultPlan, apply
from bulkflow.emulator._store import CatalogStore, Connector, StoredRow
from bulkflow.protocol import (
    API_VERSION,
    KEY_PARAM,
    Algorithm,
    decode_form,
    decode_pairs,
    describe,
    round_page_size,
    verify,
)

logger = logging.getLogger("bulkflow.emulator")

SUPPORTED_VERSIONS = ("1.17", "1.18")

#: A 1.17 request has no pagination: the whole run is one page.
UNPAGED = 2**62


@dataclass(frozen=True)
class EmulatorConfig:
    """How the emulator behaves where the reference leaves a choice (§9).

    Attributes:
        round_pages: round ``pagination`` as the service does; off, a request
            for 7 rows gets pages of 7 (tests use it to hit page boundaries).
        max_skew: seconds a request's ``time`` may be off before error 12/13.
        token_ttl: seconds a ``next_page`` token stays valid (then error 13).
        next_page_first: put ``next_page``, ``page_count`` and ``page_length``
            before ``data`` (a streaming client can read ahead) or after it.
        bom: start every body with a UTF-8 BOM, as the service once did.
        page_size: serve pages of this many rows whatever the request asks.
        clock_offset: seconds added to the server's clock, to play a server
            (or a client) whose clock is off.
        next_page_origin: a fault: write ``next_page`` URLs on this origin
            (``scheme://host:port``) instead of the request's.
        faults: misbehaviours to switch on (``bulkflow.emulator._faults``).
        lag: seconds by which a run's ``time`` trails the clock. A change is
            stamped when its transaction starts and seen when it commits; a
            run that starts in between misses it, so the cursor it hands out
            must be older than any such change. Changes of the last ``lag``
            seconds are sent again by the next update (harmless).
    """

    round_pages: bool = True
    max_skew: int = 300
    token_ttl: int = 1800
    next_page_first: bool = True
    bom: bool = False
    page_size: int | None = None
    clock_offset: int = 0
    next_page_origin: str | None = None
    faults: tuple[Fault, ...] = ()
    lag: int = 2


class Emulator:
    """The state behind the handler: store, configuration, seen ``unique`` values."""

    def __init__(self, store: CatalogStore, config: EmulatorConfig) -> None:
        self.store = store
        self.config = config
        self._uniques: dict[tuple[str, str], float] = {}
        self._contexts: dict[tuple[Any, ...], _RunContext] = {}
        self.faults = FaultPlan(config.faults)
        # The import side: import connectors' POSTs and tracking URLs. Imported
        # here because it builds on this module's Emulator.
        from bulkflow.emulator._imports import ImportDesk

        self.imports = ImportDesk(self)
        key = store.get_meta("token_key")
        if key is None:
            key = secrets.token_hex(32)
            store.set_meta("token_key", key)
        self._token_key = bytes.fromhex(key)

    def application(self) -> web.Application:
        """Return the aiohttp application serving this emulator."""
        app = web.Application(client_max_size=1024**3)
        app.router.add_route("GET", "/", self.handle)
        app.router.add_route("POST", "/", self.handle)
        self.imports.routes(app)
        return app

    # -- request handling -------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one API call."""
        now = int(time.time()) + self.config.clock_offset
        try:
            params = await _parameters(request)
        except (ValueError, DataError) as exc:
            return self._error(1, now, f"unreadable request: {exc}")
        version = str(params.get("ver") or "1.17")
        if version not in SUPPORTED_VERSIONS:
            return self._error(6, now)
        connector = self.store.connector(str(params.get("code", "")))
        if connector is None:
            return self._error(2, now)
        if "page_token" in params and connector.kind == "export":
            token = str(params["page_token"])
            return await self._next_page(request, connector, token, now)
        refused = self._check_signature(connector, params, now)
        if refused:
            return self._error(refused, now)
        if connector.kind == "import":
            return await self.imports.handle(request, connector, params, now)
        return await self._first_page(request, connector, params, version, now)

    def _check_signature(
        self, connector: Connector, params: Mapping[str, Any], now: int
    ) -> int:
        """Return 0 when the request is signed, else the error code to answer."""
        algorithm: Algorithm = "sha256" if KEY_PARAM["sha256"] in params else "sha1"
        key = str(params.get(KEY_PARAM[algorithm], ""))
        try:
            sent_time, unique = int(params["time"]), int(params["unique"])
        except (KeyError, ValueError):
            return 4
        if not key or not verify(
            connector.code, connector.secret, sent_time, unique, key, algorithm
        ):
            return 4
        if sent_time > now + self.config.max_skew:
            return 12
        if sent_time < now - self.config.max_skew:
            return 13
        return 3 if self._reused(connector.code, str(unique), now) else 0

    def _reused(self, code: str, unique: str, now: int) -> bool:
        """Remember ``unique`` for the skew window; True if already seen there."""
        horizon = now - 2 * self.config.max_skew
        if len(self._uniques) > 100_000:
            self._uniques = {k: t for k, t in self._uniques.items() if t >= horizon}
        seen = self._uniques.get((code, unique))
        self._uniques[(code, unique)] = now
        return seen is not None and seen >= horizon

    async def _first_page(
        self,
        request: web.Request,
        connector: Connector,
        params: Mapping[str, Any],
        version: str,
        now: int,
    ) -> web.StreamResponse:
        since, error = self._window(connector, params, now)
        page_size = UNPAGED
        if version == "1.18":
            requested = _int_or_none(params.get("pagination"))
            page_size = round_page_size(requested)
            if not self.config.round_pages and requested and requested > 0:
                page_size = requested
            if self.config.page_size:
                page_size = self.config.page_size
        flags = (FLAG_PARENTS_TREE if flag(params, "parents_category_tree") else 0) | (
            FLAG_SAME_PARENT_VARIANTS if flag(params, "same_parent_variants") else 0
        )
        total = self._context(connector, since, flags).total()
        position = _tokens.RunPosition(
            code=connector.code,
            # The run's time lags the clock: a change stamped a moment before
            # this request but committed after it is invisible to this run,
            # and must still fall after the cursor the run hands out.
            time=now - self.config.lag,
            since=since,
            page_size=page_size,
            page=1,
            page_count=max(1, -(-total // page_size)),
            table=0,
            after_id=0,
            error=error,
            issued_at=now,
            flags=flags,
        )
        logger.debug(
            "run.started code=%s since=%s rows=%d", connector.code, since, total
        )
        return await self._page(request, connector, position, version)

    def _window(
        self, connector: Connector, params: Mapping[str, Any], now: int
    ) -> tuple[int | None, int]:
        """Decide refresh or update: return ``(since, error)``.

        ``since`` is ``None`` for a refresh. A ``last_update`` that is not a
        number, negative or in the future is error 5, answered with
        everything (§5: informative). A connector reconfigured after
        ``last_update`` forces a refresh unless ``force_update_only=1``.
        """
        raw = params.get("last_update")
        if raw in (None, "", "0", 0):
            return None, 0
        last_update = _int_or_none(raw)
        if last_update is None or last_update < 0 or last_update > now:
            return None, 5
        forced = flag(params, "force_update_only")
        # ">=": a change in the very second of the cursor may have come after
        # it; one refresh too many is safe, one too few is not.
        if connector.config_changed_at >= last_update and not forced:
            return None, 0
        return last_update, 0

    async def _next_page(
        self, request: web.Request, connector: Connector, token: str, now: int
    ) -> web.StreamResponse:
        try:
            position = _tokens.decode(token, self._token_key)
        except _tokens.BadToken as exc:
            return self._error(1, now, str(exc))
        if position.code != connector.code:
            return self._error(1, now, "page_token belongs to another connector")
        if now - position.issued_at > self.config.token_ttl:
            return self._error(13, now, "next_page token expired")
        return await self._page(request, connector, position, API_VERSION)

    # -- rendering --------------------------------------------------------

    async def _page(
        self,
        request: web.Request,
        connector: Connector,
        position: _tokens.RunPosition,
        version: str,
    ) -> web.StreamResponse:
        tables: list[str] = self.store.get_meta("tables") or []
        context = self._context(connector, position.since, position.flags)
        data, after = self._collect(tables, position, context)
        header = self._header(connector, position, version)
        tail: dict[str, Any] = {}
        if after is not None:
            following = replace(
                after,
                page=position.page + 1,
                issued_at=int(time.time()) + self.config.clock_offset,
            )
            token = _tokens.encode(following, self._token_key)
            origin = self.config.next_page_origin or (
                f"{request.scheme}://{request.host}"
            )
            tail["next_page"] = f"{origin}/?code={connector.code}&page_token={token}"
        tail["page_count"] = max(position.page_count, position.page)
        tail["page_length"] = position.page_size if position.page_size < UNPAGED else 0
        body = _render(header, tail, data, next_first=self.config.next_page_first)
        if self.config.bom:
            body = b"\xef\xbb\xbf" + body
        fault = self.faults.next(position.page)
        if fault is not None:
            error = self._error(fault.code, position.time).body
            assert isinstance(error, bytes)
            return await apply(fault, request, body, error)
        return web.Response(body=body, content_type="application/json")

    def _header(
        self, connector: Connector, position: _tokens.RunPosition, version: str
    ) -> dict[str, Any]:
        schema = dict(self.store.get_meta("schema") or {})
        schema["connector_ID"] = connector.code
        header: dict[str, Any] = {
            "version": version,
            "time": position.time,
            "action": "refresh" if position.since is None else "update",
        }
        if position.error:
            header["error"] = position.error
            header["error_message"] = describe(position.error).text
        header["schema"] = schema
        header["data_schema_info"] = self.store.get_meta("data_schema_info") or {}
        header["data_schema"] = self.store.get_meta("data_schema") or {}
        return header

    def _collect(
        self, tables: list[str], position: _tokens.RunPosition, context: _RunContext
    ) -> tuple[dict[str, list[bytes]], _tokens.RunPosition | None]:
        """Gather this page's rows; return them and the next page's position.

        The next position is ``None`` when nothing follows, so the last page
        carries no ``next_page`` even when it is exactly full.
        """
        data: dict[str, list[bytes]] = {}
        room = position.page_size
        index, after_id = position.table, position.after_id
        while index < len(tables) and room > 0:
            rows = data.setdefault(tables[index], [])
            for id_, wire in context.rows(tables[index], after_id):
                rows.append(wire)
                after_id = id_
                room -= 1
                if room == 0:
                    break
            if not rows:
                del data[tables[index]]
            if room > 0:
                index, after_id = index + 1, 0
        if not self._anything_after(tables, index, after_id, context):
            return data, None
        return data, replace(position, table=index, after_id=after_id)

    def _anything_after(
        self, tables: list[str], index: int, after_id: int, context: _RunContext
    ) -> bool:
        for table in tables[index:]:
            if next(context.rows(table, after_id), None) is not None:
                return True
            after_id = 0
        return False

    def _context(
        self, connector: Connector, since: int | None, flags: int
    ) -> _RunContext:
        """The scope of a run, computed once per state of the catalog."""
        key = (self.store.version(), connector.code, orjson.dumps(connector.options))
        key_with_run = (*key, since, flags)
        cached = self._contexts.get(key_with_run)
        if cached is not None:
            return cached
        layout = _scope.Layout.of(self.store)
        scope, trees = _scope.compute_scope(self.store, layout, connector.options)
        changed: dict[str, set[int]] = {}
        if since is not None:
            changed = {
                t: set(self.store.changed_since(t, since)) for t in layout.tables
            }
            _scope.add_extras(
                scope,
                layout,
                trees,
                changed,
                parents_tree=bool(flags & FLAG_PARENTS_TREE),
                sibling_variants=bool(flags & FLAG_SAME_PARENT_VARIANTS),
            )
        context = _RunContext(self.store, scope, changed, since)
        if len(self._contexts) >= 16:
            self._contexts.clear()
        self._contexts[key_with_run] = context
        return context

    def _error(self, code: int, now: int, message: str | None = None) -> web.Response:
        return error_response(code, now, message)


FLAG_PARENTS_TREE = 1
FLAG_SAME_PARENT_VARIANTS = 2


class _RunContext:
    """What one run serves: the rows of a refresh, or the changes of an update."""

    def __init__(
        self,
        store: CatalogStore,
        scope: _scope.Scope,
        changed: dict[str, set[int]],
        since: int | None,
    ) -> None:
        self.store = store
        self.scope = scope
        self.changed = changed
        self.since = since

    def total(self) -> int:
        """How many rows the whole run serves."""
        if self.since is None:
            return self.scope.count()
        visible, extra = self.scope.visible, self.scope.extra
        return sum(
            len(ids | (extra.get(table, set()) & visible.get(table, set())))
            for table, ids in self.changed.items()
        )

    def rows(self, table: str, after_id: int) -> Iterator[tuple[int, bytes]]:
        """Yield ``(id, wire row)`` of ``table`` after ``after_id``, in id order."""
        visible = self.scope.visible.get(table, set())
        if self.since is None:
            for row in self.store.iter_rows(table, after_id):
                if row.id in visible:
                    yield row.id, _wire(row)
            return
        changed = self.changed.get(table, set())
        extra = self.scope.extra.get(table, set())
        for row in self.store.iter_rows(table, after_id):
            if row.id in changed:
                yield row.id, _wire(row) if row.id in visible else _deleted(row.id)
            elif row.id in extra and row.id in visible:
                yield row.id, _wire(row)


def _deleted(id_: int) -> bytes:
    return b'["D",%d]' % id_


def _wire(row: StoredRow) -> bytes:
    """Render a stored row as a wire row, pasting its stored JSON values in."""
    if row.deleted or row.row is None:
        return _deleted(row.id)
    if row.row == b"[]":
        return b'["M",%d]' % row.id
    return b'["M",%d,' % row.id + row.row[1:]


def _render(
    header: dict[str, Any],
    tail: dict[str, Any],
    data: dict[str, list[bytes]],
    *,
    next_first: bool,
) -> bytes:
    tables = b",".join(
        orjson.dumps(table) + b":[" + b",".join(rows) + b"]"
        for table, rows in data.items()
    )
    head = orjson.dumps({**header, **tail} if next_first else header)
    body = head[:-1] + b',"data":{' + tables + b"}"
    if not next_first:
        body += b"," + orjson.dumps(tail)[1:-1]
    return body + b"}"


def _int_or_none(value: Any) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


async def _parameters(request: web.Request) -> dict[str, Any]:
    """Merge the query and the body's parameters; the body wins (§1.5)."""
    params: dict[str, Any] = decode_pairs(list(request.query.items()))
    if request.method != "POST" or not request.body_exists:
        return params
    content_type = request.content_type
    # Form bodies are decoded here rather than by request.post(): aiohttp
    # refuses forms of more than 1,000 fields (HTTP 413), and one import
    # batch has tens of thousands.
    if content_type == "multipart/form-data":
        form = await request.post()
        pairs = [(name, str(value)) for name, value in form.items()]
        params.update(decode_pairs(pairs))
        return params
    raw = await request.read()
    text = raw.decode("utf-8-sig").strip()
    if text.startswith("{"):
        body = orjson.loads(text)
        if not isinstance(body, dict):
            raise ValueError("a JSON body must be an object")
        params.update(body)
    elif text:
        params.update(decode_form(text))
    return params


@asynccontextmanager
async def open_emulator(
    store: CatalogStore,
    *,
    config: EmulatorConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> AsyncIterator[str]:
    """Serve ``store`` on ``host:port`` for the duration of the block; yield its URL.

    ``port=0`` picks a free port. On exit (or cancellation) the server stops
    and open connections are closed.
    """
    emulator = Emulator(store, config or EmulatorConfig())
    async with serve_emulator(emulator, host=host, port=port) as url:
        yield url


@asynccontextmanager
async def serve_emulator(
    emulator: Emulator, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve an :class:`Emulator` you hold (to look at its state); yield its URL."""
    runner = web.AppRunner(emulator.application(), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        yield f"http://{host}:{bound}/"
    finally:
        await runner.cleanup()
