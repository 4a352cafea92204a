"""Read-ahead: the next page's request goes out while the current page drains.

``next_page`` comes before the rows (§9 key order), so by the time a page's
rows are being parsed and written, the next page's URL is known. Opening its
request then overlaps the service's time to first byte with our parsing and
committing. Only the response headers are awaited: the body stays in the
socket until the page's turn comes, held there by TCP flow control, so memory
stays bounded. If the early request fails, the page is fetched again in its
turn, with the usual retries, and the early failure counts as one retry.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
from anyio.abc import TaskGroup

from bulkflow._http import HttpClient, ResponseStream


@dataclass
class _Slot:
    url: str
    ready: anyio.Event = field(default_factory=anyio.Event)
    released: anyio.Event = field(default_factory=anyio.Event)
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    stream: ResponseStream | None = None
    error: Exception | None = None


class ReadAhead:
    """At most one early request at a time, for the page after the current one."""

    def __init__(self, http: HttpClient, group: TaskGroup) -> None:
        self._http = http
        self._group = group
        self._slot: _Slot | None = None
        self.used = 0

    def __repr__(self) -> str:
        url = "none" if self._slot is None else "pending"
        return f"ReadAhead(slot={url}, used={self.used})"

    def start(self, url: str) -> None:
        """Open ``url`` early, dropping an early request not taken."""
        if self._slot is not None and self._slot.url == url:
            return
        self.close()
        self._slot = _Slot(url)
        self._group.start_soon(self._fetch, self._slot)

    def close(self) -> None:
        """Drop the early request, if any."""
        if self._slot is not None:
            self._slot.scope.cancel()
            self._slot = None

    @asynccontextmanager
    async def take(
        self, url: str
    ) -> AsyncIterator[tuple[ResponseStream | None, Exception | None]]:
        """The early response for ``url`` (or ``None``), and why it failed."""
        slot = self._slot if self._slot is not None and self._slot.url == url else None
        if slot is not None:
            self._slot = None
            await slot.ready.wait()
        if slot is None or slot.stream is None:
            yield None, None if slot is None else slot.error
            return
        self.used += 1
        try:
            yield slot.stream, None
        finally:
            slot.released.set()

    async def _fetch(self, slot: _Slot) -> None:
        with slot.scope:
            try:
                async with self._http.open_stream("GET", slot.url) as stream:
                    slot.stream = stream
                    slot.ready.set()
                    await slot.released.wait()
            except Exception as exc:  # the page's own fetch tries again
                slot.stream, slot.error = None, exc
            finally:
                slot.ready.set()
