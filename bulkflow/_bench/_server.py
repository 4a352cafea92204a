"""A replay server for benchmarks: every page rendered once, then served as bytes.

The emulator builds each page from its catalog on every request, which on a
two-core machine would compete with the client being measured. This server
asks an in-process emulator for every page of a run once, at start-up, for
each page size it is given, and then answers the same requests with the
stored bytes: a signed POST at ``/`` gets the first page, each ``next_page``
URL gets the page after it. Pages go out in slices, so a slow client makes
the server wait (TCP flow control) rather than queue a copy of the page.

Run it as ``python -m bulkflow._bench._server --rows N --page-sizes P,...``:
it prints one JSON line (URL, pages and bytes per page size) once it
serves, and stops when its standard input closes or ``--max-seconds`` pass.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import orjson
from aiohttp import web

from bulkflow._bench._baselines import HEAD_BYTES, find_next_page, first_request
from bulkflow.emulator import (
    DEMO_CODE,
    DEMO_SECRET,
    CatalogStore,
    EmulatorConfig,
    catalog_source,
    open_emulator,
)
from bulkflow.protocol import (
    API_VERSION,
    KEY_PARAM,
    Algorithm,
    round_page_size,
    verify,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

#: Bytes written per send while serving a page.
WRITE_SIZE = 1024 * 1024


@dataclass
class PageBook:
    """Every rendered page: first pages by page size, the others by token."""

    first: dict[int, bytes] = field(default_factory=dict)
    by_token: dict[str, bytes] = field(default_factory=dict)
    page_counts: dict[int, int] = field(default_factory=dict)
    byte_counts: dict[int, int] = field(default_factory=dict)

    def add(self, page_size: int, token: str | None, body: bytes) -> None:
        """File one page of the run at ``page_size`` (``token=None``: the first)."""
        if token is None:
            self.first[page_size] = body
        else:
            self.by_token[token] = body
        counts, sizes = self.page_counts, self.byte_counts
        counts[page_size] = counts.get(page_size, 0) + 1
        sizes[page_size] = sizes.get(page_size, 0) + len(body)


async def render_book(
    store: CatalogStore, page_sizes: Sequence[int], *, public_host: str
) -> PageBook:
    """Ask an emulator of ``store`` for every page of a run at each page size.

    ``public_host`` is sent as the ``Host`` header: the emulator builds its
    ``next_page`` URLs from it, so they point at the replay server.
    """
    book = PageBook()
    config = EmulatorConfig(next_page_first=True, token_ttl=10**9)
    async with open_emulator(store, config=config) as url:
        async with aiohttp.ClientSession() as session:
            for size in page_sizes:
                await _render_run(session, url, size, public_host, book)
    return book


async def _render_run(
    session: aiohttp.ClientSession,
    url: str,
    page_size: int,
    public_host: str,
    book: PageBook,
) -> None:
    query, body, headers = first_request(DEMO_CODE, DEMO_SECRET, page_size)
    headers = {**headers, "Host": public_host}
    async with session.post(url, params=query, data=body, headers=headers) as reply:
        page = await reply.read()
    book.add(page_size, None, page)

    # A run of the emulator ends; the bound is there should that ever change.
    for _ in range(10_000_000):
        next_url = find_next_page(page[:HEAD_BYTES])
        if next_url is None:
            return
        query_string = urlsplit(next_url).query
        token = parse_qs(query_string)["page_token"][0]
        local = f"{url}?{query_string}"
        async with session.get(local, headers={"Host": public_host}) as reply:
            page = await reply.read()
        book.add(page_size, token, page)


class ReplayServer:
    """The aiohttp side: check the first request's signature, replay pages."""

    def __init__(self, book: PageBook, *, code: str, secret: str) -> None:
        self.book = book
        self.code = code
        self._secret = secret
        self.requests = 0

    def application(self) -> web.Application:
        """Return the aiohttp application serving the book."""
        app = web.Application()
        app.router.add_route("GET", "/", self.handle)
        app.router.add_route("POST", "/", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one API call with a stored page or an API error."""
        self.requests += 1
        token = request.query.get("page_token")
        if token is not None:
            body = self.book.by_token.get(token)
            if body is None:
                return _error(1, "this page_token was not rendered by the server")
            return await _send(request, body)

        # The first request of a run: signed, with the page size in its form.
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST":
            params.update((k, str(v)) for k, v in (await request.post()).items())
        if not self._signed(params):
            return _error(4, "the request is not signed for the bench connector")
        size = round_page_size(_int_or_none(params.get("pagination")))
        body = self.book.first.get(size)
        if body is None:
            sizes = ", ".join(str(s) for s in sorted(self.book.first))
            return _error(1, f"pagination {size} was not rendered; only {sizes}")
        return await _send(request, body)

    def _signed(self, params: Mapping[str, Any]) -> bool:
        if params.get("code") != self.code:
            return False
        algorithm: Algorithm = "sha256" if KEY_PARAM["sha256"] in params else "sha1"
        try:
            sent_time, unique = int(params["time"]), int(params["unique"])
        except (KeyError, ValueError):
            return False
        key = str(params.get(KEY_PARAM[algorithm], ""))
        return verify(self.code, self._secret, sent_time, unique, key, algorithm)


async def _send(request: web.Request, body: bytes) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.content_length = len(body)
    await response.prepare(request)
    view = memoryview(body)
    for start in range(0, len(body), WRITE_SIZE):
        await response.write(view[start : start + WRITE_SIZE])
    await response.write_eof()
    return response


def _error(code: int, message: str) -> web.Response:
    body = {"version": API_VERSION, "time": int(time.time()), "error": code}
    body["error_message"] = message
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def _int_or_none(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


async def serve(
    rows: int, page_sizes: Sequence[int], *, seed: int, max_seconds: float
) -> None:
    """Load the catalog, render every page, print the ready line, then serve."""
    started = time.perf_counter()
    store = CatalogStore.open(None)
    loaded = store.load(catalog_source(f"synthetic:{rows}", seed=seed))
    store.put_connector(DEMO_CODE, DEMO_SECRET, kind="export", options={})

    # Bind first: the rendered next_page URLs must name this server's port.
    replay = ReplayServer(PageBook(), code=DEMO_CODE, secret=DEMO_SECRET)
    runner = web.AppRunner(replay.application(), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        sizes = sorted({round_page_size(size) for size in page_sizes})
        replay.book = await render_book(store, sizes, public_host=f"127.0.0.1:{port}")
        store.close()
        _announce(replay.book, port, loaded, time.perf_counter() - started)
        await wait_for_stop(max_seconds)
    finally:
        await runner.cleanup()


def _announce(book: PageBook, port: int, rows: int, seconds: float) -> None:
    ready = {
        "url": f"http://127.0.0.1:{port}/",
        "code": DEMO_CODE,
        "rows": rows,
        "pages": book.page_counts,
        "bytes": book.byte_counts,
        "startup_seconds": round(seconds, 3),
    }
    line = orjson.dumps(ready, option=orjson.OPT_NON_STR_KEYS).decode()
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def wait_for_stop(max_seconds: float) -> None:
    """Return when standard input closes (the harness is done or gone)."""
    loop = asyncio.get_running_loop()
    closed = asyncio.Event()

    def watch() -> None:
        sys.stdin.buffer.read()
        loop.call_soon_threadsafe(closed.set)

    # A daemon thread: a blocked read must not keep the process alive.
    threading.Thread(target=watch, name="stdin-watch", daemon=True).start()
    try:
        await asyncio.wait_for(closed.wait(), timeout=max_seconds)
    except TimeoutError:
        sys.stderr.write(f"bench server: stopping after {max_seconds:g} s\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the server process."""
    parser = argparse.ArgumentParser(prog="python -m bulkflow._bench._server")
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--page-sizes", required=True, help="comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.page_sizes.split(",")]
    asyncio.run(serve(args.rows, sizes, seed=args.seed, max_seconds=args.max_seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
