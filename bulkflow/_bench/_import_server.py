"""The import server of ``bench import``: the emulator, lean or whole, and its log.

The emulator applies every imported item to its SQLite catalog, checking
each field against the table's schema. That costs about as much CPU per
item as encoding the item costs a client, so on a two-core machine it
would be what ``bench import`` measures. The lean mode keeps the
emulator's request handling (signature, clock and ``unique`` checks, the
connector's sliding-window rate budget answered with error 10, the log of
arrivals and refusals) and replaces applying items with a receipt: it
reads each item's table and REF from the body, keeps the REFs, and
answers with the counts the emulator would give (``new_items``,
``updated_items``, ``deleted_items``). Form bodies are scanned for their
``…[REF]=`` fields without decoding every field; a body where that scan
does not account for every ``[REF]`` field is decoded whole. Every call is
answered as a direct one (no ``status_tracking``): the harness asks for
``input_data_directly=1``. ``--mode emulator`` serves with the whole
emulator instead, items applied.

Run as ``python -m bulkflow._bench._import_server --code CODE --stats FILE
[--rate-limit 5/s] [--mode lean|emulator]``: it prints one JSON line (URL,
code, mode) once it serves, and when its standard input closes it stops
and writes to FILE what it saw: the monotonic times of every call let in
and every call refused for rate, the REFs received per table (or, in
emulator mode, the live items of each table), and the CPU seconds it spent
serving.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import resource
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

import orjson
from aiohttp import web

from bulkflow._bench._server import wait_for_stop
from bulkflow.emulator import (
    DEMO_SECRET,
    CatalogStore,
    Emulator,
    EmulatorConfig,
    catalog_source,
    serve_emulator,
)
from bulkflow.emulator._imports import MAX_ITEMS_PER_CALL, add_import_connector
from bulkflow.emulator._server import SUPPORTED_VERSIONS
from bulkflow.protocol import API_VERSION, decode_form, decode_pairs

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bulkflow.emulator import Connector

#: Every ``[REF]`` field of a form body, however deep.
_REF_FIELD = b"%5BREF%5D="

#: An item's REF field, ``<kind>[<table>][<index>][REF]=<value>``, encoded.
_ITEM_REF = {
    kind: re.compile(kind.encode() + rb"%5B([^&=%]*)%5D%5B\d+%5D%5BREF%5D=([^&]*)")
    for kind in ("input_data", "delete_data")
}


class CallError(Exception):
    """The whole call is refused with API error 1, as the emulator refuses it."""


@dataclass
class CallCounts:
    """What one call brought: (new, updated, deleted) REFs per table."""

    new: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)

    def response(self) -> dict[str, Any]:
        """The ``input_response`` of a call that applied everything it brought."""
        affected: dict[str, int] = {}
        for kind in (self.new, self.updated, self.deleted):
            for table, count in kind.items():
                affected[table] = affected.get(table, 0) + count
        return {
            "result": 1 if affected else 0,
            "errors": [],
            "items_affected": affected,
            "new_items": self.new,
            "updated_items": self.updated,
            "deleted_items": self.deleted,
        }


@dataclass
class Receipt:
    """The REFs received per table, across every call let in."""

    refs: dict[str, set[str]] = field(default_factory=dict)
    items: int = 0
    decoded_whole: int = 0

    def take(self, raw: bytes, content_type: str) -> CallCounts:
        """Read one call's items, by table and REF; return what it did.

        Raises:
            CallError: a body that is not an import call, or too many items.
        """
        if content_type == "application/json" or raw.lstrip()[:1] == b"{":
            return self._take_pairs(_tables_of_json(raw))
        found = {kind: pattern.findall(raw) for kind, pattern in _ITEM_REF.items()}
        if sum(map(len, found.values())) != raw.count(_REF_FIELD):
            # A table name the scan does not read, or a nested REF field.
            self.decoded_whole += 1
            return self._take_pairs(_tables_of(decode_form(raw.decode())))
        pairs = [
            (kind, _text(table), _text(ref))
            for kind, matches in found.items()
            for table, ref in matches
        ]
        return self._take_pairs(pairs)

    def _take_pairs(self, pairs: list[tuple[str, str, str]]) -> CallCounts:
        if len(pairs) > MAX_ITEMS_PER_CALL:
            raise CallError(
                f"at most {MAX_ITEMS_PER_CALL:,} items per call; this call has "
                f"{len(pairs):,}: send them in smaller batches"
            )
        counts = CallCounts()
        for kind, table, ref in pairs:
            known = self.refs.setdefault(table, set())
            if kind == "delete_data":
                if ref in known:
                    known.discard(ref)
                    counts.deleted[table] = counts.deleted.get(table, 0) + 1
                continue
            tally = counts.updated if ref in known else counts.new
            tally[table] = tally.get(table, 0) + 1
            known.add(ref)
        self.items += len(pairs)
        return counts


def _text(encoded: bytes) -> str:
    """A form value as text (``+`` and ``%XX`` decoded only where present)."""
    text = encoded.decode()
    return unquote_plus(text) if "%" in text or "+" in text else text


def _tables_of_json(raw: bytes) -> list[tuple[str, str, str]]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise CallError(f"unreadable request: {exc}") from None
    if not isinstance(body, dict):
        raise CallError("unreadable request: a JSON body must be an object")
    return _tables_of(body)


def _tables_of(body: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(kind, table, REF)`` of every item of a decoded call."""
    pairs = []
    for kind in ("input_data", "delete_data"):
        tables = body.get(kind) or {}
        if not isinstance(tables, Mapping):
            raise CallError(f"{kind} must map tables to lists of items")
        for table, items in tables.items():
            members = items.values() if isinstance(items, Mapping) else items
            for item in members or ():
                ref = item.get("REF") if isinstance(item, Mapping) else None
                if ref in (None, ""):
                    raise CallError(f"{kind}[{table}]: an item has no REF")
                pairs.append((kind, str(table), str(ref)))
    return pairs


class LeanEmulator(Emulator):
    """The emulator, with import calls counted by REF instead of applied."""

    def __init__(self, store: CatalogStore, config: EmulatorConfig) -> None:
        super().__init__(store, config)
        self.receipt = Receipt()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer a signed import POST leanly; anything else as the emulator does."""
        connector = self._import_connector(request)
        if connector is None:
            return await super().handle(request)
        now = int(time.time()) + self.config.clock_offset
        params = decode_pairs(list(request.query.items()))
        refused = self._check_signature(connector, params, now)
        if refused:
            return self._error(refused, now)
        over = self.imports.over_budget(connector, now)
        if over is not None:
            return over

        raw = await request.read()
        try:
            counts = self.receipt.take(raw, request.content_type)
        except (CallError, ValueError) as exc:
            return self._error(1, now, str(exc))
        body = {
            "version": API_VERSION,
            "time": now,
            "input_response": counts.response(),
        }
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    def _import_connector(self, request: web.Request) -> Connector | None:
        """The import connector of a POST signed in its query, else ``None``."""
        query = request.query
        if request.method != "POST" or query.get("ver") not in SUPPORTED_VERSIONS:
            return None
        connector = self.store.connector(query.get("code", ""))
        if connector is None or connector.kind != "import" or "time" not in query:
            return None
        return connector


@dataclass(frozen=True)
class ServerOptions:
    """What the import server serves."""

    code: str
    rate_limit: str | None
    mode: str
    stats: Path
    max_seconds: float


async def serve(options: ServerOptions) -> None:
    """Serve until standard input closes; then write what was seen."""
    store = CatalogStore.open(None)
    store.load(catalog_source("empty"))
    add_import_connector(store, options.code, DEMO_SECRET, options.rate_limit)
    config = EmulatorConfig()
    kind = LeanEmulator if options.mode == "lean" else Emulator
    emulator = kind(store, config)
    try:
        async with serve_emulator(emulator) as url:
            cpu_started = time.process_time()
            ready = {"url": url, "code": options.code, "mode": options.mode}
            sys.stdout.write(orjson.dumps(ready).decode() + "\n")
            sys.stdout.flush()
            await wait_for_stop(options.max_seconds)
            cpu = time.process_time() - cpu_started
        stats = _stats(emulator, options, cpu)
    finally:
        store.close()
    options.stats.write_bytes(orjson.dumps(stats))


def _stats(emulator: Emulator, options: ServerOptions, cpu: float) -> dict[str, Any]:
    desk = emulator.imports
    if isinstance(emulator, LeanEmulator):
        refs = {table: len(found) for table, found in emulator.receipt.refs.items()}
        received: int | None = emulator.receipt.items
        decoded_whole = emulator.receipt.decoded_whole
    else:
        tables = emulator.store.get_meta("tables") or []
        refs = {table: len(desk.refs(table)) for table in tables}
        received, decoded_whole = None, 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "mode": options.mode,
        "rate_limit": options.rate_limit,
        "arrivals": desk.arrivals(options.code),
        "refusals": desk.refusals(options.code),
        "refs": {table: count for table, count in refs.items() if count},
        "items_received": received,
        "bodies_decoded_whole": decoded_whole,
        "cpu_seconds": round(cpu, 3),
        "peak_rss_mib": round(peak, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the server process."""
    parser = argparse.ArgumentParser(prog="python -m bulkflow._bench._import_server")
    parser.add_argument("--code", required=True)
    parser.add_argument("--rate-limit", help="e.g. 5/s; none by default")
    parser.add_argument("--mode", choices=("lean", "emulator"), default="lean")
    parser.add_argument("--stats", type=Path, required=True)
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    args = parser.parse_args(argv)
    options = ServerOptions(
        args.code, args.rate_limit, args.mode, args.stats, args.max_seconds
    )
    asyncio.run(serve(options))
    return 0


if __name__ == "__main__":
    sys.exit(main())
