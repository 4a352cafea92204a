"""The clients ``bench import`` runs beside bulkflow: the naive one, the ceilings.

Each runs alone in a child process (its peak memory is read when it ends)
and writes a JSON report. Rates are timed from before the items file is
read to after the last answer, as bulkflow's own report times an import:
interpreter start-up and imports are not counted.

``naive`` is what one writes without a pipeline: load the whole JSONL file
into a list, then for each run of ``--batch-size`` items build the
``input_data`` payload, flatten it into PHP-bracket field names (bulkflow's
``iter_fields``) and encode those with the standard library's ``urlencode``,
as a script would, with ``input_data_directly=1``; sign, POST, read the
answer, next batch.
One request at a time, no rate control: a refusal for rate (API error 10
or HTTP 429) makes it sleep for the ``Retry-After`` the server names (one
second without one) and send the same batch again.

``ceilings`` measures the two halves of an import alone, over the same
file: **encode** reads and parses every line, batches the items with
bulkflow's :class:`~bulkflow.import_.Batcher` and builds every body, with no
network (what the client side can do); **POST round trip** then sends those
bodies, already encoded, with ``--concurrency`` requests in flight, each
signed anew, and drops the answers after checking that each is an
``input_response`` (what the server and loopback allow).

Run as ``python -m bulkflow._bench._import_clients naive|ceilings OPTIONS``.
The module imports no more than these clients need.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import aiohttp
import orjson

from bulkflow.import_._batch import Batcher
from bulkflow.import_._sources import item_from_record
from bulkflow.protocol import API_VERSION, iter_fields, signed_params

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

FORM = {"Content-Type": "application/x-www-form-urlencoded"}

#: Tries of one batch before the naive client gives up.
MAX_TRIES = 100


def signed_query(code: str, secret: str) -> dict[str, str]:
    """The query of one import call: a fresh signature and the version."""
    return {**signed_params(code, secret, time=int(time.time())), "ver": API_VERSION}


def refused_for_rate(status: int, answer: dict[str, Any]) -> bool:
    """True for HTTP 429 or API error 10."""
    return status == 429 or answer.get("error") == 10


def load_records(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSONL file, parsed: ``{"table": t, "item": {...}}``."""
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line]


def naive_payload(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``input_data`` of one batch, items grouped by table, sent directly."""
    tables: dict[str, list[Any]] = {}
    for record in records:
        tables.setdefault(str(record["table"]), []).append(record["item"])
    return {"input_data": tables, "input_data_directly": "1"}


async def naive_import(
    url: str, code: str, secret: str, path: Path, *, batch_size: int
) -> dict[str, Any]:
    """Run the naive client once; return its report."""
    started = time.perf_counter()
    records = load_records(path)
    requests = refused = batches = 0
    async with aiohttp.ClientSession() as session:
        for first in range(0, len(records), batch_size):
            payload = naive_payload(records[first : first + batch_size])
            body = urlencode(list(iter_fields(payload)))
            batches += 1
            for _ in range(MAX_TRIES):
                requests += 1
                query = signed_query(code, secret)
                async with session.post(
                    url, params=query, data=body, headers=FORM
                ) as reply:
                    answer = orjson.loads(await reply.read())
                    wait = reply.headers.get("Retry-After")
                if not refused_for_rate(reply.status, answer):
                    break
                refused += 1
                await asyncio.sleep(float(wait or 1))
            else:
                raise RuntimeError(f"batch {batches} refused {MAX_TRIES} times")
            if "input_response" not in answer:
                raise RuntimeError(f"batch {batches}: {answer}")
    seconds = time.perf_counter() - started
    return {
        "items": len(records),
        "batches": batches,
        "requests": requests,
        "refused": refused,
        "seconds": round(seconds, 3),
        "items_per_s": _per_s(len(records), seconds),
        "requests_per_s": _per_s(requests, seconds),
    }


def encode_bodies(path: Path, batch_size: int) -> tuple[list[tuple[int, bytes]], int]:
    """Batch every item of ``path`` as bulkflow does; return (items, body) pairs."""
    batcher = Batcher(max_items=batch_size)
    bodies: list[tuple[int, bytes]] = []
    flags = {"input_data_directly": "1"}
    items = 0
    with path.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            record = orjson.loads(line)
            item = item_from_record(record, table=None, where=f"line {number}")
            items += 1
            closed = batcher.add(item)
            if closed is not None:
                bodies.append((len(closed.items), closed.body(flags)))
    last = batcher.flush()
    if last is not None:
        bodies.append((len(last.items), last.body(flags)))
    return bodies, items


async def post_all(
    url: str, code: str, secret: str, bodies: list[tuple[int, bytes]], concurrency: int
) -> None:
    """POST every body, ``concurrency`` at a time; check and drop the answers."""
    pending: Iterator[tuple[int, bytes]] = iter(bodies)

    async def worker(session: aiohttp.ClientSession) -> None:
        for _, body in pending:
            query = signed_query(code, secret)
            async with session.post(url, params=query, data=body, headers=FORM) as r:
                answer = await r.read()
            if r.status != 200 or b'"input_response"' not in answer:
                raise RuntimeError(f"HTTP {r.status}: {answer[:300]!r}")

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))


async def ceilings(
    url: str, code: str, secret: str, path: Path, *, batch_size: int, concurrency: int
) -> dict[str, Any]:
    """Measure encoding alone, then POSTing what it encoded; return the rates."""
    started = time.perf_counter()
    bodies, items = encode_bodies(path, batch_size)
    encoded = time.perf_counter()
    await post_all(url, code, secret, bodies, concurrency)
    posted = time.perf_counter()

    size = sum(len(body) for _, body in bodies)
    encode_s, post_s = encoded - started, posted - encoded
    return {
        "items": items,
        "batches": len(bodies),
        "bytes": size,
        "concurrency": concurrency,
        "encode_seconds": round(encode_s, 3),
        "encode_items_per_s": _per_s(items, encode_s),
        "post_seconds": round(post_s, 3),
        "post_items_per_s": _per_s(items, post_s),
        "post_requests_per_s": _per_s(len(bodies), post_s),
        "post_mb_per_s": round(size / post_s / 1e6, 1) if post_s > 0 else 0.0,
    }


def _per_s(amount: int, seconds: float) -> float:
    return round(amount / seconds, 1) if seconds > 0 else 0.0


def parser() -> argparse.ArgumentParser:
    """The options: those of ``bulkflow import`` that the harness uses."""
    main_parser = argparse.ArgumentParser(
        prog="python -m bulkflow._bench._import_clients"
    )
    clients = main_parser.add_subparsers(dest="client", required=True)
    for name in ("naive", "ceilings"):
        client = clients.add_parser(name)
        client.add_argument("--url", required=True)
        client.add_argument("--code", required=True)
        client.add_argument("--secret-env", required=True)
        client.add_argument("--from", dest="source", type=Path, required=True)
        client.add_argument("--batch-size", type=int, required=True)
        client.add_argument("--report", type=Path, required=True)
        if name == "ceilings":
            client.add_argument("--concurrency", type=int, default=4)
    return main_parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of a client process."""
    args = parser().parse_args(argv)
    secret = os.environ[args.secret_env]
    where = (args.url, args.code, secret, args.source)
    if args.client == "naive":
        report = asyncio.run(naive_import(*where, batch_size=args.batch_size))
    else:
        run = ceilings(*where, batch_size=args.batch_size, concurrency=args.concurrency)
        report = asyncio.run(run)
    args.report.write_bytes(orjson.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
