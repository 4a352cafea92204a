"""The streaming page parser: response bytes in, header values and row chunks out.

It is push-based and does no I/O: :meth:`PageParser.feed` takes whatever
bytes have arrived (one byte or a megabyte) and returns what became complete.
Rows are emitted in chunks of at most ``max_chunk_rows`` rows of one table, so
no page is ever held whole, whatever its size. ijson's C backend does the
lexing; this module only assembles values from its events, in batches of
events per call rather than one Python generator step per event, which is
what keeps it near ijson's own speed.

Integers outside -2**63 + 1 .. 2**63 - 1 are refused ("integer overflow"):
yajl, under ijson's C backend, reads no wider integers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ijson
from ijson.utils import sendable_list

from bulkflow._exceptions import IncompletePage, PageParseError, shorten

BOM = b"\xef\xbb\xbf"

_CONTAINER_EVENTS = frozenset(
    {"start_map", "end_map", "start_array", "end_array", "map_key"}
)


@dataclass(frozen=True)
class HeaderValue:
    """A complete top-level member other than ``data`` (``time``, ``next_page``...)."""

    key: str
    value: Any


@dataclass(frozen=True)
class RowChunk:
    """Up to ``max_chunk_rows`` consecutive wire rows of one table."""

    table: str
    rows: list[list[Any]]
    first_index: int


Event = HeaderValue | RowChunk


class PageParser:
    """Parse one page incrementally.

    Args:
        max_chunk_rows: the most rows one :class:`RowChunk` carries.
        where: words naming the connector and page, used in errors.
    """

    def __init__(self, *, max_chunk_rows: int = 1000, where: str = "page") -> None:
        self.max_chunk_rows = max_chunk_rows
        self.where = where
        self.bytes_fed = 0
        self._events: Any = sendable_list()
        self._coro = ijson.basic_parse_coro(self._events, use_float=True)
        self._head = b""
        self._started = False
        self._out: list[Event] = []
        # Builder state: containers being built and the keys they wait on.
        self._stack: list[Any] = []
        self._keys: list[str | None] = []
        self._depth = 0
        self._top_key: str | None = None
        self._table: str | None = None
        self._rows: list[list[Any]] = []
        self._in_rows = False
        self._row_stack: list[Any] = []
        self._row_keys: list[Any] = []
        self._row_count: dict[str, int] = {}
        self._done = False

    def feed(self, data: bytes) -> list[Event]:
        """Take the next bytes of the body; return the events they completed.

        Raises:
            PageParseError: when the bytes are not JSON or not a page; the
                error carries the byte offset.
        """
        if not data:
            # ijson reads empty bytes as the end of the body; a decompressor
            # may well hand us an empty chunk in the middle.
            return []
        if not self._started:
            data = self._strip_bom(data)
            if not data:
                return []
        self.bytes_fed += len(data)
        try:
            self._coro.send(data)
        except ijson.JSONError as exc:
            raise self._error(f"invalid JSON: {exc}") from exc
        self._consume()
        return self._take()

    def close(self) -> list[Event]:
        """Signal the end of the body; return the last events.

        Raises:
            PageParseError: when the body ended before the page did.
        """
        try:
            if not self._started and self._head:
                self._started = True
                self._coro.send(self._head)
            self._coro.close()
        except ijson.IncompleteJSONError as exc:
            raise self._error(
                f"the body ended inside the JSON: {exc}", incomplete=True
            ) from exc
        except ijson.JSONError as exc:
            raise self._error(f"invalid JSON: {exc}") from exc
        self._consume()
        if not self._done:
            raise self._error(
                "the body ended before the page was complete", incomplete=True
            )
        return self._take()

    def _strip_bom(self, data: bytes) -> bytes:
        """Drop a leading UTF-8 BOM even when it arrives split across feeds."""
        self._head += data
        if len(self._head) < len(BOM) and BOM.startswith(self._head):
            return b""
        self._started = True
        data, self._head = self._head, b""
        return data[len(BOM) :] if data.startswith(BOM) else data

    def _take(self) -> list[Event]:
        out, self._out = self._out, []
        return out

    def _error(
        self, message: str, value: Any = None, *, incomplete: bool = False
    ) -> PageParseError:
        # yajl's messages draw a "(right here) ---^" picture over several
        # lines; an error is one line.
        message = message.strip().splitlines()[0] if message.strip() else message
        text = f"{self.where}, byte {self.bytes_fed}: {message}"
        if value is not None:
            text += f": {shorten(value)}"
        kind = IncompletePage if incomplete else PageParseError
        return kind(text, where=self.where, offset=self.bytes_fed, value=value)

    # -- assembling values --------------------------------------------------

    def _consume(self) -> None:
        events = self._events
        index, count = 0, len(events)
        while index < count:
            if self._in_rows:
                index = self._consume_rows(events, index)
            else:
                event, value = events[index]
                index += 1
                self._header_event(event, value)
        del events[:]

    def _consume_rows(self, events: list[tuple[str, Any]], start: int) -> int:
        """Build rows from ``events[start:]`` until the table's list ends.

        This is the hot loop: most events are scalars inside a row and go
        straight to the current list's ``append``. Returns the index of the
        first event after the table's list, or ``len(events)``.
        """
        stack = self._row_stack
        keys = self._row_keys  # one pending key per open map, innermost last
        rows = self._rows
        max_rows = self.max_chunk_rows
        containers = _CONTAINER_EVENTS
        top = stack[-1] if stack else None
        append = top.append if type(top) is list else None
        index = start
        for index in range(start, len(events)):
            event, value = events[index]
            if append is not None and event not in containers:
                append(value)
            elif event == "start_array":
                child: list[Any] = []
                if append is not None:
                    append(child)
                elif stack:
                    stack[-1][keys[-1]] = child
                stack.append(child)
                append = child.append
            elif event == "end_array" or event == "end_map":
                if not stack:
                    self._flush()
                    self._in_rows = False
                    self._depth -= 1
                    return index + 1
                done = stack.pop()
                if event == "end_map":
                    keys.pop()
                if stack:
                    top = stack[-1]
                    append = top.append if type(top) is list else None
                    continue
                rows.append(done)
                append = None
                if len(rows) >= max_rows:
                    self._flush()
                    rows = self._rows
            elif event == "start_map":
                if not stack:
                    raise self._error(f"a row of data[{self._table!r}] is not a list")
                mapping: dict[str, Any] = {}
                if append is not None:
                    append(mapping)
                else:
                    stack[-1][keys[-1]] = mapping
                stack.append(mapping)
                keys.append(None)
                append = None
            elif event == "map_key":
                keys[-1] = value
            elif stack:
                stack[-1][keys[-1]] = value
            else:
                raise self._error(
                    f"a row of data[{self._table!r}] is not a list", value
                )
        return index + 1

    def _header_event(self, event: str, value: Any) -> None:
        """Everything outside the rows: top-level members and ``data``'s frame."""
        depth = self._depth
        if event == "map_key":
            if self._stack:
                self._keys[-1] = value
            elif depth == 1:
                self._top_key = value
            elif depth == 2 and self._top_key == "data":
                self._table = value
        elif event in ("start_map", "start_array"):
            self._open(event == "start_map", depth)
        elif event in ("end_map", "end_array"):
            self._close(depth)
        else:
            self._scalar(value, depth)

    def _open(self, is_map: bool, depth: int) -> None:
        self._depth = depth + 1
        if depth == 0:
            if not is_map:
                raise self._error("a page must be a JSON object")
            return
        if not self._stack and self._top_key == "data" and depth in (1, 2):
            if depth == 2:
                if is_map or self._table is None:
                    raise self._error(
                        f"data[{self._table!r}] must be a list of rows, got a map"
                    )
                self._in_rows = True
            # At depth 1 PHP may write an empty ``data`` map as ``[]``.
            return
        container: Any = {} if is_map else []
        if self._stack:
            top = self._stack[-1]
            if type(top) is list:
                top.append(container)
            else:
                top[self._keys[-1]] = container
        self._stack.append(container)
        self._keys.append(None)

    def _close(self, depth: int) -> None:
        self._depth = depth - 1
        if depth == 1:
            self._done = True
            return
        if not self._stack:
            return  # the end of ``data``
        value = self._stack.pop()
        self._keys.pop()
        if not self._stack:
            self._out.append(HeaderValue(str(self._top_key), value))

    def _scalar(self, value: Any, depth: int) -> None:
        if self._stack:
            top = self._stack[-1]
            if type(top) is list:
                top.append(value)
            else:
                top[self._keys[-1]] = value
        elif depth == 0:
            raise self._error("a page must be a JSON object", value)
        elif depth == 1 and self._top_key == "data":
            raise self._error("data must map table names to lists of rows", value)
        elif depth == 1:
            self._out.append(HeaderValue(str(self._top_key), value))
        else:
            raise self._error(
                f"data[{self._table!r}] must be a list of rows, got a scalar", value
            )

    def _flush(self) -> None:
        if not self._rows or self._table is None:
            return
        first = self._row_count.get(self._table, 0)
        self._out.append(RowChunk(self._table, self._rows, first))
        self._row_count[self._table] = first + len(self._rows)
        self._rows = []
