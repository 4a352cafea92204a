"""The emulator's import side: import connectors that change its catalog, and tracking.

What it does where the reference leaves a choice (``saleslayer-1.18.md`` §4, §9):

- Items are matched by ``REF`` within their table. A new REF makes a new item
  with the next free ID; a known one has the given fields replaced. Either
  way the item's ``changed_at`` becomes the request's time, so the next
  export ``update`` carries it.
- Fields are the table's ``data_schema`` columns. A reference column
  ``ID_<x>`` is also writable as ``REF_<x>``, with the REF (or a list of
  REFs) of the item it points at; a list stays a list, and a ``list``
  column always holds one. Form bodies carry only text, so values are read
  by the column's type: numbers and booleans are parsed, and an empty value
  means "no value" (``None``; ``[]`` for media and list references; ``0``
  for a single reference).
- Media columns take URLs (each becomes a file with a new file id, the same
  URL under every size) or exported ``[status, file_id, url...]`` tuples,
  stored as they come.
- An unknown field, a missing REF, a value of the wrong type or a REF that
  names no item refuses that item only, with a message in ``errors`` that
  starts with its path (``input_data[products][3]``). ``result`` is 1 when
  something was applied, 2 when errors left nothing applied, 0 otherwise.
  A reference to an item later in the same call is resolved (items wait
  for their parents within the call).
- ``delete_data`` removes items by REF (a REF that names nothing is a
  no-op, so a replayed deletion is harmless); upserts are applied before
  deletions, tables in catalog order (deletions in reverse).
- More than 50,000 items in one call is API error 1.
- Without ``input_data_directly=1`` the answer carries a ``status_tracking``
  URL on the request's host that walks ``prepare``, ``started`` and ``end``
  over the connector's ``tracking_polls`` polls. The import itself is
  applied at once either way.
- A connector option ``rate_limit`` (``"5/s"``) refuses calls past that many
  in any sliding window with error 10, or with HTTP 429 and ``Retry-After``
  when ``rate_limit_http`` is true. The arrival time of every call let
  through is kept (:meth:`ImportDesk.arrivals`) for tests to check windows.

The module passes 400 lines because it holds the whole of those choices in
one place; reading field values by type lives in ``_import_values``.

Over 400 lines: applying items, per-item errors, tracking and the rate
budget answer one import request together.
"""

from __future__ import annotations

import logging
import math
import re
import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from bulkflow._exceptions import UsageError
from bulkflow.emulator._answers import error_response, flag
from bulkflow.emulator._import_values import (
    ItemError,
    Unresolved,
    blank,
    coerce,
    column_of,
    defaults,
    members,
    ref_of,
    references,
)
from bulkflow.protocol import (
    API_VERSION,
    Column,
    Kind,
    TableSchema,
    table_schema as build_schema,
)

if TYPE_CHECKING:
    from bulkflow.emulator._server import Emulator
    from bulkflow.emulator._store import CatalogStore, Connector

logger = logging.getLogger("bulkflow.emulator")

MAX_ITEMS_PER_CALL = 50_000
TRACKING_PATH = "/import-status/"
MAX_JOBS = 10_000
FIRST_FILE_ID = 1_000_000

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|min|minute)\s*$")


def parse_rate_limit(text: str) -> tuple[float, float]:
    """``"5/s"`` → ``(5.0, 1.0)``; ``"120/min"`` → ``(120.0, 60.0)``.

    A fractional budget becomes whole calls over a longer window:
    ``"0.5/s"`` → ``(1.0, 2.0)``, ``"1.5/s"`` → ``(3.0, 2.0)``.

    Raises:
        UsageError: for anything else.
    """
    match = _RATE.match(str(text).lower())
    if match is None or float(match.group(1)) <= 0:
        raise UsageError(
            f"--rate-limit {text!r}: write calls per second or minute, e.g. 5/s"
        )
    count = float(match.group(1))
    period = 1.0 if match.group(2).startswith("s") else 60.0
    for scale in range(1, 1001):
        if abs(count * scale - round(count * scale)) < 1e-9:
            return float(round(count * scale)), period * scale
    raise UsageError(
        f"--rate-limit {text!r}: give a budget of whole calls over some seconds, "
        "e.g. 0.5/s or 1.5/s"
    )


def add_import_connector(
    store: CatalogStore,
    code: str,
    secret: str,
    rate_limit: str | None = None,
    *,
    rate_limit_http: bool = False,
    tracking_polls: int = 3,
) -> Connector:
    """Create (or reconfigure) an import connector on ``store``.

    Args:
        rate_limit: calls allowed per window, ``"5/s"`` or ``"120/min"``.
        rate_limit_http: answer calls past the budget with HTTP 429 and
            ``Retry-After`` instead of API error 10.
        tracking_polls: polls a tracking URL takes to reach ``end``.

    Raises:
        UsageError: for a rate that cannot be read.
    """
    options: dict[str, Any] = {"tracking_polls": tracking_polls}
    if rate_limit:
        parse_rate_limit(rate_limit)
        options["rate_limit"] = rate_limit
    if rate_limit_http:
        options["rate_limit_http"] = True
    return store.put_connector(code, secret, kind="import", options=options)


class _CallError(Exception):
    """The whole call is refused with API error 1."""


@dataclass
class _Job:
    """A tracked import: how many polls it has had, and its final message."""

    polls: int
    total: int
    message: str


@dataclass
class _Tally:
    """What one call did, per table."""

    new: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    updated: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    deleted: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def applied(self) -> int:
        """Items created, updated or deleted."""
        kinds = (self.new, self.updated, self.deleted)
        return sum(len(pairs) for kind in kinds for pairs in kind.values())

    def response(self, pairs: bool) -> dict[str, Any]:
        """The ``input_response``: counts per table, or id↔REF pairs."""
        applied = self.applied()
        result = 2 if self.errors and not applied else (1 if applied else 0)

        affected: dict[str, int] = {}
        for kind in (self.new, self.updated, self.deleted):
            for table, done in kind.items():
                affected[table] = affected.get(table, 0) + len(done)

        def shape(kind: dict[str, list[tuple[int, str]]]) -> dict[str, Any]:
            """Counts, or pairs when the call asked for affected ids."""
            if not pairs:
                return {table: len(done) for table, done in kind.items()}
            return {
                table: [{"ID": id_, "REF": ref} for id_, ref in done]
                for table, done in kind.items()
            }

        return {
            "result": result,
            "errors": self.errors,
            "items_affected": affected,
            "new_items": shape(self.new),
            "updated_items": shape(self.updated),
            "deleted_items": shape(self.deleted),
        }


class ImportDesk:
    """The import connectors' side of an :class:`Emulator`."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.store: CatalogStore = emulator.store
        self._arrivals: dict[str, list[float]] = {}
        self._refusals: dict[str, list[float]] = {}
        self._windows: dict[str, deque[float]] = {}
        self._jobs: OrderedDict[str, _Job] = OrderedDict()
        self._refs: dict[str, dict[str, int]] = {}
        self._refs_version: tuple[int, int] | None = None

    def __repr__(self) -> str:
        calls = sum(len(times) for times in self._arrivals.values())
        return f"<ImportDesk calls={calls} tracked={len(self._jobs)}>"

    def routes(self, app: web.Application) -> None:
        """Add the tracking route to the emulator's application."""
        app.router.add_route("GET", TRACKING_PATH + "{token}", self.tracking)

    def arrivals(self, code: str) -> list[float]:
        """``time.monotonic()`` of every call of ``code`` the rate budget let in."""
        return list(self._arrivals.get(code, ()))

    def refusals(self, code: str) -> list[float]:
        """``time.monotonic()`` of every call of ``code`` refused for rate."""
        return list(self._refusals.get(code, ()))

    # -- a call ---------------------------------------------------------------

    async def handle(
        self,
        request: web.Request,
        connector: Connector,
        params: dict[str, Any],
        now: int,
    ) -> web.Response:
        """Answer one signed call of an import connector."""
        refused = self.over_budget(connector, now)
        if refused is not None:
            return refused
        try:
            tally = self._apply(params, now)
        except _CallError as exc:
            return error_response(1, now, str(exc))

        response = tally.response(pairs=flag(params, "get_affected_ids"))
        if not flag(params, "input_data_directly"):
            response["status_tracking"] = self._track(request, connector, tally)

        logger.debug(
            "import.complete code=%s applied=%d errors=%d",
            connector.code,
            tally.applied(),
            len(tally.errors),
        )
        body = {"version": API_VERSION, "time": now, "input_response": response}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    def over_budget(self, connector: Connector, now: int) -> web.Response | None:
        """Refuse a call past the connector's rate budget; else record its arrival.

        Returns the refusal to answer with, or ``None`` for a call let in.
        """
        arrived = time.monotonic()
        limit = connector.options.get("rate_limit")
        if limit:
            count, period = parse_rate_limit(limit)
            window = self._windows.setdefault(connector.code, deque())
            while window and window[0] <= arrived - period:
                window.popleft()
            if len(window) >= math.floor(count):
                self._refusals.setdefault(connector.code, []).append(arrived)
                wait = max(1, math.ceil(window[0] + period - arrived))
                return _rate_refusal(connector, limit, wait, now)
            window.append(arrived)
        self._arrivals.setdefault(connector.code, []).append(arrived)
        return None

    def _apply(self, params: dict[str, Any], now: int) -> _Tally:
        """Apply a call's upserts and deletions in one transaction."""
        upserts = _tables_of(params.get("input_data"), "input_data")
        deletes = _tables_of(params.get("delete_data"), "delete_data")
        total = sum(len(items) for items in (*upserts.values(), *deletes.values()))
        if total > MAX_ITEMS_PER_CALL:
            raise _CallError(
                f"at most {MAX_ITEMS_PER_CALL:,} items per call; this call has "
                f"{total:,}: send them in smaller batches"
            )
        # Someone else wrote (churn, another process): the REF index is stale.
        if self.store.version() != self._refs_version:
            self._refs.clear()

        tables: list[str] = list(self.store.get_meta("tables") or [])
        tally = _Tally()
        writer = _Writer(self, tally, now)

        with self.store.transaction():
            for table in _ordered(upserts, tables, tally, "input_data"):
                writer.upserts(table, upserts[table])
            for table in _ordered(deletes, tables[::-1], tally, "delete_data"):
                writer.deletes(table, deletes[table])
        self._refs_version = self.store.version()
        return tally

    # -- references -------------------------------------------------------------

    def refs(self, table: str) -> dict[str, int]:
        """REF → ID of the live items of ``table``; calls keep it up to date."""
        found = self._refs.get(table)
        if found is None:
            position = _ref_position(self.store, table)
            found = {
                str(values[position]): id_
                for id_, values in self.store.iter_items(table)
                if position is not None and values[position] not in (None, "")
            }
            self._refs[table] = found
        return found

    def next_file_id(self) -> int:
        """A file id no media value of this emulator has had from an import."""
        current = int(self.store.get_meta("import_file_id") or FIRST_FILE_ID)
        self.store.set_meta("import_file_id", current + 1)
        return current

    # -- tracking -----------------------------------------------------------------

    def _track(self, request: web.Request, connector: Connector, tally: _Tally) -> str:
        """Open a tracking job for a call; return its URL."""
        token = secrets.token_urlsafe(18)
        total = max(0, int(connector.options.get("tracking_polls", 3)))
        message = (
            f"import finished: {sum(map(len, tally.new.values()))} new, "
            f"{sum(map(len, tally.updated.values()))} updated, "
            f"{sum(map(len, tally.deleted.values()))} deleted, "
            f"{len(tally.errors)} errors"
        )

        self._jobs[token] = _Job(0, total, message)
        while len(self._jobs) > MAX_JOBS:
            self._jobs.popitem(last=False)

        origin = connector.options.get("tracking_origin") or (
            f"{request.scheme}://{request.host}"
        )
        return f"{origin}{TRACKING_PATH}{token}"

    async def tracking(self, request: web.Request) -> web.Response:
        """Answer a poll of a ``status_tracking`` URL: one step further each time."""
        job = self._jobs.get(request.match_info["token"])
        if job is None:
            raise web.HTTPNotFound(text="unknown or expired tracking id")

        now = int(time.time()) + self.emulator.config.clock_offset
        job.polls += 1
        body: dict[str, Any] = {"version": API_VERSION, "time": now}

        if job.polls > job.total:
            body.update(
                input_status="end",
                input_percent_completion=100,
                input_action_message=job.message,
            )
        elif job.polls == 1:
            body.update(
                input_status="prepare",
                input_percent_completion=0,
                input_action_message="preparing the import",
            )
        else:
            percent = round(100 * (job.polls - 1) / job.total)
            body.update(
                input_status="started",
                input_percent_completion=percent,
                input_action_message="importing items",
            )
        return web.Response(body=orjson.dumps(body), content_type="application/json")


class _Writer:
    """Applies the items of one call inside its transaction."""

    def __init__(self, desk: ImportDesk, tally: _Tally, now: int) -> None:
        self.desk = desk
        self.store = desk.store
        self.tally = tally
        self.now = now

        data_schema = self.store.get_meta("data_schema") or {}
        info = self.store.get_meta("data_schema_info") or {}
        self.schemas = {
            table: build_schema(table, entries, info.get(table))
            for table, entries in data_schema.items()
        }
        self._next_ids: dict[str, int] = {}

    def upserts(self, table: str, items: list[Any]) -> None:
        """Apply ``items``; an item whose reference is not there yet waits its turn."""
        pending = list(enumerate(items))
        while pending:
            waiting: list[tuple[int, Any, Unresolved]] = []
            for index, raw in pending:
                try:
                    self._upsert(table, raw)
                except Unresolved as unresolved:
                    waiting.append((index, raw, unresolved))
                except ItemError as exc:
                    self._refuse(f"input_data[{table}][{index}]", raw, exc)

            # A pass that resolved nothing more will not resolve the rest.
            if len(waiting) == len(pending):
                for index, raw, reason in waiting:
                    self._refuse(f"input_data[{table}][{index}]", raw, reason)
                return
            pending = [(index, raw) for index, raw, _ in waiting]

    def deletes(self, table: str, items: list[Any]) -> None:
        """Remove the items named by REF; a REF that names nothing is a no-op."""
        refs = self.desk.refs(table)
        for index, raw in enumerate(items):
            try:
                ref = ref_of(raw)
            except ItemError as exc:
                self._refuse(f"delete_data[{table}][{index}]", raw, exc)
                continue
            id_ = refs.pop(ref, None)
            if id_ is not None and self.store.delete(table, id_, at=self.now):
                self.tally.deleted.setdefault(table, []).append((id_, ref))

    def _refuse(self, path: str, raw: Any, exc: Exception) -> None:
        ref = raw.get("REF") if isinstance(raw, dict) else None
        named = f" REF {ref!r}" if ref not in (None, "") else ""
        self.tally.errors.append(f"{path}{named}: {exc}")

    def _upsert(self, table: str, raw: Any) -> None:
        schema = self.schemas[table]
        ref = ref_of(raw)
        changes = {
            column.position - 2: value
            for column, value in (
                self._field(schema, name, value)
                for name, value in raw.items()
                if name != "REF"
            )
        }

        refs = self.desk.refs(table)
        id_ = refs.get(ref)
        if id_ is None:
            id_, row = self._new_id(table), defaults(schema)
            self.tally.new.setdefault(table, []).append((id_, ref))
        else:
            row = self._row(table, id_)
            self.tally.updated.setdefault(table, []).append((id_, ref))

        row[schema.column("REF").position - 2] = ref
        for position, value in changes.items():
            row[position] = value
        self.store.upsert(table, id_, row, at=self.now)
        refs[ref] = id_

    def _field(self, schema: TableSchema, name: str, value: Any) -> tuple[Column, Any]:
        """The column a field writes and its value, read by the column's type."""
        if name.startswith("REF_"):
            column = column_of(schema, "ID_" + name[len("REF_") :], name)
            if column.kind is not Kind.REFERENCE:
                raise ItemError(f"field {name!r} is not a reference")
            target = column.joins or schema.name
            return column, references(column, value, self.desk.refs(target), target)

        column = column_of(schema, name, name)
        try:
            return column, coerce(column, value, self.desk.next_file_id)
        except ValueError as exc:
            raise ItemError(f"field {name!r}: {exc}") from None

    def _new_id(self, table: str) -> int:
        next_id = self._next_ids.get(table) or self.store.max_id(table) + 1
        self._next_ids[table] = next_id + 1
        return next_id

    def _row(self, table: str, id_: int) -> list[Any]:
        for found, values in self.store.iter_items(table, after_id=id_ - 1, limit=1):
            if found == id_:
                return values
        raise ItemError(f"item {id_} of {table} vanished")  # pragma: no cover


# -- calls --------------------------------------------------------------------


def _tables_of(value: Any, name: str) -> dict[str, list[Any]]:
    """``input_data`` or ``delete_data`` as table → items."""
    if blank(value):
        return {}
    if not isinstance(value, dict):
        raise _CallError(f"{name} must map tables to lists of items")
    tables: dict[str, list[Any]] = {}
    for table, items in value.items():
        if isinstance(items, str):
            # A CSV URL or an FTP object (§4.1): the emulator fetches nothing.
            tables[table] = [_FetchRefused(items)]
        elif not blank(items):
            tables[table] = members(items)
    return tables


@dataclass(frozen=True)
class _FetchRefused:
    """A table value that is a file location instead of items."""

    location: str


def _ordered(
    data: dict[str, list[Any]], order: list[str], tally: _Tally, name: str
) -> list[str]:
    """The tables of ``data`` in ``order``; unknown ones and file URLs become errors."""
    for table in data:
        if table not in order:
            tally.errors.append(
                f"{name}[{table}]: no table {table!r} in this catalog; it has "
                f"{', '.join(order)}"
            )
        elif data[table] and isinstance(data[table][0], _FetchRefused):
            tally.errors.append(
                f"{name}[{table}]: the emulator imports item lists only, not files "
                "from a URL or FTP"
            )

    return [
        table
        for table in order
        if table in data and not isinstance(data[table][0], _FetchRefused)
    ]


def _ref_position(store: CatalogStore, table: str) -> int | None:
    entries = (store.get_meta("data_schema") or {}).get(table, [])
    for position, entry in enumerate(entries[2:]):
        if entry == "REF":
            return position
    return None


def _rate_refusal(
    connector: Connector, limit: str, wait: int, now: int
) -> web.Response:
    message = f"rate budget of {limit} exceeded; retry in {wait} s"
    if connector.options.get("rate_limit_http"):
        return web.Response(
            status=429,
            headers={"Retry-After": str(wait)},
            body=orjson.dumps({"error": 10, "error_message": message}),
            content_type="application/json",
        )
    return error_response(10, now, message)
