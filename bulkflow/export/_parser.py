"""The streaming page parser: response bytes in, header values and row chunks out.

It is push-based and does no I/O: :meth:`PageParser.feed` takes whatever
bytes have arrived (one byte or a megabyte) and returns what became complete.
Rows are emitted in chunks of at most ``max_chunk_rows`` rows of one table, so
no page is ever held whole, whatever its size.

How it stays fast: ijson's C backend builds every value in C, rows included,
as one object for the whole page (``ijson.items(reader, "")``). Two hooks
keep that object from ever holding the page:

* the page and its ``data`` map are built as :class:`_Watched` maps (ijson's
  ``map_type``), so the parser hears of every top-level member and every
  table the moment it starts;
* the C reader pulls its bytes through :meth:`_Reader.read`; when it asks for
  more, everything it was given before has been built, so the parser takes
  the finished rows out of the table's list (all but the last, which may
  still be growing) and hands them on in chunks.

The C reader is an async iterator; :class:`PageParser` steps it by hand
(``next()`` on its awaitable) and it pauses, by yielding :data:`_WAIT`, when
``read`` finds no bytes. No event loop is involved, so the parser also works
from plain synchronous code, one byte at a time if need be.

Integers outside -2**63 + 1 .. 2**63 - 1 are refused ("integer overflow"):
yajl, under ijson's C backend, reads no wider integers.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import ijson
import orjson

from bulkflow._exceptions import IncompletePage, PageParseError, shorten
from bulkflow._json import has_long_number

BOM = b"\xef\xbb\xbf"

#: Bytes handed to the C reader per step; rows are taken out between steps.
READ_SIZE = 256 * 1024

#: A size worth reading whole (:meth:`PageParser.parse_whole`) when asked to.
WHOLE_PAGE_BYTES = 4 * 1024 * 1024

_JSON_SPACE = b" \t\r\n"


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


class _Wait:
    """What :meth:`_Reader.read` yields when it has no bytes: the parser pauses."""

    __slots__ = ()

    def __await__(self) -> Generator[_Wait, None, None]:
        yield self


_WAIT = _Wait()


class _Watched:
    """A JSON object built by ijson that tells the parser of each member it gets.

    Not a ``dict`` subclass on purpose: ijson must go through ``__setitem__``
    (a C fast path for real dicts would skip it and lose the hook).
    """

    __slots__ = ("_parser", "members")

    def __init__(self, parser: PageParser) -> None:
        self._parser = parser
        self.members: dict[str, Any] = {}

    def __setitem__(self, key: str, value: Any) -> None:
        self.members[key] = value
        try:
            self._parser._member(self, key, value)
        except Exception as exc:
            # ijson's C builder may swallow what a hook raises: keep it, so
            # that the parser raises it once ijson hands control back.
            self._parser._crash(exc)

    def __getitem__(self, key: str) -> Any:
        return self.members[key]

    def __len__(self) -> int:
        return len(self.members)

    def __iter__(self) -> Iterator[str]:
        return iter(self.members)


class _Reader:
    """The file ijson reads: hands over fed bytes, takes rows out between reads."""

    def __init__(self, parser: PageParser) -> None:
        self._parser = parser
        self._pending: list[bytes] = []
        self.eof = False
        self.given = 0

    def push(self, data: bytes) -> None:
        self._pending.append(data)

    async def read(self, size: int) -> bytes:
        self._parser._take_rows()
        while not self._pending:
            if self.eof:
                return b""
            await _WAIT
        data = self._pending[0]
        if len(data) > size:
            data, self._pending[0] = data[:size], data[size:]
        else:
            self._pending.pop(0)
        self.given += len(data)
        return data


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
        self._reader = _Reader(self)
        self._values = ijson.items(
            self._reader, "", map_type=self._new_map, use_float=True, buf_size=READ_SIZE
        )
        self._step: Any = None
        self._head = b""
        self._started = False
        self._looked = False  # the first byte of the page was checked
        self._out: list[Event] = []
        self._page: _Watched | None = None
        self._pending: tuple[str, Any] | None = None  # a header value being built
        self._data: _Watched | None = None
        self._data_list: list[Any] | None = None  # PHP's ``[]`` for an empty map
        self._in_data = False
        self._table: str | None = None
        self._rows: list[Any] | None = None
        self._row_count: dict[str, int] = {}
        self._failure: PageParseError | None = None
        self._done = False
        self._ended = False
        self._last = b""  # the last byte fed that is not JSON whitespace

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
        if not self._looked:
            self._look(data)
        self._note_last_byte(data)
        self._reader.push(data)
        self._run()
        return self._take()

    def _note_last_byte(self, data: bytes) -> None:
        text = data.rstrip(_JSON_SPACE)
        if text:
            self._last = text[-1:]

    def close(self) -> list[Event]:
        """Signal the end of the body; return the last events.

        Raises:
            PageParseError: when the body ended before the page did.
        """
        if not self._started and self._head:
            self._started = True
            self.bytes_fed += len(self._head)
            self._look(self._head)
            self._note_last_byte(self._head)
            self._reader.push(self._head)
        if self._done and self._last != b"}":
            # yajl waits, at the end of the body, for the rest of a value
            # that follows the page ("1", "t", an open string), and would
            # call a body with such a tail truncated.
            raise self._error("bytes after the end of the page")
        self._reader.eof = True
        self._run()
        if not self._done:
            raise self._error(
                "the body ended before the page was complete", incomplete=True
            )
        return self._take()

    def parse_whole(self, body: bytes) -> list[Event]:
        """Parse a complete body at once; the same events as feeding it and closing.

        orjson reads small pages two to three times faster than the streaming
        reader, but holds the body and all its rows at once: keep this to
        bodies of a few megabytes (see :data:`WHOLE_PAGE_BYTES`). A body orjson
        refuses is read again by the streaming reader, so that errors (and
        their byte offsets, and truncation being transient) are the same
        either way, and so is a body with a run of 19 digits or more (orjson
        would read integers beyond 64 bits as floats, without a word), or
        one that names ``data`` or a table twice in so many bytes.

        One difference stays, which is why exports stream by default: a page
        that names ``data`` or a table twice under different escapes
        (``"data"`` and ``"d\\u0061ta"``) is read as orjson reads it, the last
        one counting, where the streaming reader refuses it.

        Raises:
            PageParseError: as :meth:`feed` and :meth:`close` would.
        """
        text = body.removeprefix(BOM)
        try:
            # orjson turns integers beyond 64 bits into floats without a word;
            # any run of 19 digits goes to the streaming reader, which reads
            # them exactly or refuses them.
            if has_long_number(text):
                raise ValueError("a number may be too wide for orjson")
            page = orjson.loads(text)
            # orjson keeps the last of two equal keys; the streaming reader
            # refuses a page that names data, or a table, twice.
            if type(page) is dict and _may_repeat(text, page.get("data")):
                raise ValueError("data or a table may be named twice")
        except ValueError:  # orjson.JSONDecodeError is one
            events = self.feed(body)
            return events + self.close()
        body = text
        self.bytes_fed = self._reader.given = len(body)
        self._started = True
        self._look(body)
        if type(page) is not dict:
            raise self._error("a page must be a JSON object", page)
        self._page = watched = _Watched(self)
        for key, value in page.items():
            watched[key] = value
            self._raise_failure()
        self._page_complete()
        self._raise_failure()
        return self._take()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    def _strip_bom(self, data: bytes) -> bytes:
        """Drop a leading UTF-8 BOM even when it arrives split across feeds."""
        self._head += data
        if len(self._head) < len(BOM) and BOM.startswith(self._head):
            return b""
        self._started = True
        data, self._head = self._head, b""
        return data[len(BOM) :] if data.startswith(BOM) else data

    def _look(self, data: bytes) -> None:
        """Refuse a body that is not a JSON object before ijson builds any of it."""
        text = data.lstrip(_JSON_SPACE)
        if not text:
            return
        self._looked = True
        if text[:1] != b"{":
            raise self._error(
                "a page must be a JSON object", text[:40].decode("utf-8", "replace")
            )

    def _take(self) -> list[Event]:
        out, self._out = self._out, []
        return out

    def _error(
        self, message: str, value: Any = None, *, incomplete: bool = False
    ) -> PageParseError:
        # yajl's messages draw a "(right here) ---^" picture over several
        # lines; an error is one line.
        message = message.strip().splitlines()[0] if message.strip() else message
        offset = self._reader.given if self._looked else self.bytes_fed
        text = f"{self.where}, byte {offset}: {message}"
        if value is not None:
            text += f": {shorten(value)}"
        kind = IncompletePage if incomplete else PageParseError
        return kind(text, where=self.where, offset=offset, value=value)

    # -- stepping the C reader ----------------------------------------------

    def _run(self) -> None:
        """Step ijson until it waits for bytes or the body is over."""
        if self._ended:
            if self._reader._pending:
                # Only whitespace may follow the page, and ijson has ended.
                raise self._error("bytes after the end of the page")
            return
        try:
            while True:
                if self._step is None:
                    self._step = self._values.__anext__().__await__()
                try:
                    signal = next(self._step)
                except StopIteration:
                    self._step = None
                    self._page_complete()
                    continue
                except StopAsyncIteration:
                    self._step = None
                    self._ended = True
                    return
                if signal is _WAIT:
                    return
        except ijson.IncompleteJSONError as exc:
            if self._reader.eof:
                raise self._error(
                    f"the body ended inside the JSON: {exc}", incomplete=True
                ) from exc
            raise self._error(f"invalid JSON: {exc}") from exc
        except ijson.JSONError as exc:
            raise self._error(f"invalid JSON: {exc}") from exc
        except UnicodeDecodeError as exc:
            # yajl passes bytes that are not UTF-8 (or a lone surrogate
            # escape) on to Python, whose decoding refuses them.
            raise self._error(f"text that is not UTF-8: {exc.reason}") from exc
        finally:
            self._raise_failure()

    # -- hooks called while ijson builds ---------------------------------------

    def _new_map(self) -> Any:
        """ijson's ``map_type``: watched maps up to ``data``, plain dicts inside it."""
        if self._data is None and self._data_list is None:
            watched = _Watched(self)
            if self._page is None:
                self._page = watched
            return watched
        return {}

    def _member(self, where: _Watched, key: str, value: Any) -> None:
        """A member was set on a watched map (its value may still be growing)."""
        if where is self._page:
            self._end_member()
            if key == "data":
                self._start_data(value)
            elif type(value) in (list, dict, _Watched):
                self._pending = (key, value)
            else:
                self._out.append(HeaderValue(key, value))
        elif where is self._data:
            self._start_table(key, value)

    def _start_table(self, key: str, value: Any) -> None:
        self._end_table()
        if key in self._row_count:
            self._fail(f"data names the table {key!r} twice")
            return
        self._row_count[key] = 0
        if type(value) is not list:
            shape = "a map" if type(value) in (dict, _Watched) else "a scalar"
            self._fail(f"data[{key!r}] must be a list of rows, got {shape}", value)
            return
        self._table, self._rows = key, value

    def _start_data(self, value: Any) -> None:
        if self._data is not None or self._data_list is not None or self._row_count:
            self._fail("the page names data twice")
            return
        self._in_data = True
        if type(value) is _Watched:
            self._data = value
        elif type(value) is dict:
            # A page parsed whole (see parse_whole): every table is complete.
            for table, rows in value.items():
                self._start_table(table, rows)
        elif type(value) is list:
            self._data_list = value
        else:
            self._fail("data must map table names to lists of rows", value)

    def _fail(self, message: str, value: Any = None) -> None:
        if self._failure is None:
            self._failure = self._error(message, value)

    def _crash(self, exc: Exception) -> None:
        """A hook failed unexpectedly: the page is refused, the cause kept."""
        if self._failure is None:
            failure = self._error(f"cannot read the page: {type(exc).__name__}: {exc}")
            failure.__cause__ = exc
            self._failure = failure

    def _end_member(self) -> None:
        """The page's previous member is complete: deliver it."""
        if self._pending is not None:
            key, value = self._pending
            self._pending = None
            self._out.append(HeaderValue(key, _plain(value)))
        if self._in_data:
            self._end_table()
            self._in_data = False
            if self._data_list:
                self._fail("data must map table names to lists of rows, not hold rows")

    def _end_table(self) -> None:
        if self._rows is not None:
            self._take_rows(final=True)
            self._rows = self._table = None

    def _page_complete(self) -> None:
        self._end_member()
        self._done = True

    def _take_rows(self, *, final: bool = False) -> None:
        """Move finished rows of the current table into chunks.

        The last row of the list may still be growing, so it stays unless the
        table is over (``final``). Only full chunks leave before the end.
        """
        if self._data_list:
            self._fail("data must map table names to lists of rows, not hold rows")
        rows = self._rows
        if rows is None or self._failure is not None:
            return
        if rows and type(rows[-1]) is not list:
            index = self._row_count.get(str(self._table), 0) + len(rows) - 1
            self._fail(
                f"a row of data[{self._table!r}] is not a list (row {index})", rows[-1]
            )
            return
        size = self.max_chunk_rows
        ready = len(rows) if final else len(rows) - 1
        if not final:
            ready -= ready % size
        if ready <= 0:
            return
        for row in rows[:ready]:
            if type(row) is not list:
                self._fail(f"a row of data[{self._table!r}] is not a list", row)
                return
        table = str(self._table)
        first = self._row_count.get(table, 0)
        for start in range(0, ready, size):
            chunk = rows[start : min(start + size, ready)]
            self._out.append(RowChunk(table, chunk, first + start))
        self._row_count[table] = first + ready
        del rows[:ready]


def _may_repeat(body: bytes, data: Any) -> bool:
    """True when ``data`` or one of its tables may appear twice in ``body``.

    A cheap look over the bytes, not a proof: a text value that happens to
    read ``"data"`` also says yes, and the page then goes to the streaming
    reader, which decides.
    """
    if body.count(b'"data"') > 1:
        return True
    if type(data) is not dict:
        return False
    for table in data:
        # A table's rows open as ``"name":[[`` or ``"name":[]``; data_schema
        # lists open as ``"name":["``.
        key = re.escape(orjson.dumps(table))
        if len(re.findall(key + rb"\s*:\s*\[\s*[\[\]]", body)) > 1:
            return True
    return False


def _plain(value: Any) -> Any:
    """A header value with every watched map turned back into a dict.

    Iterative, not recursive: a header nested a thousand deep must not end
    in a RecursionError inside ijson's builder.
    """
    if type(value) not in (_Watched, list, dict):
        return value
    root = _empty_like(value)
    pending = [(value, root)]
    while pending:
        source, target = pending.pop()
        if type(source) is list:
            members: Any = enumerate(source)
        else:
            members = (source.members if type(source) is _Watched else source).items()
        for key, member in members:
            if type(member) in (_Watched, list, dict):
                copy = _empty_like(member)
                pending.append((member, copy))
            else:
                copy = member
            if type(target) is list:
                target.append(copy)
            else:
                target[key] = copy
    return root


def _empty_like(value: Any) -> Any:
    return [] if type(value) is list else {}
