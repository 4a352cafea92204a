"""Specification tests for the streaming page parser (``bulkflow.export._parser``).

Every expectation is computed a second way: the page is decoded whole with
``orjson.loads`` and cut into the events a streaming reader must produce
(header values in page order, each table's rows sliced into chunks). The
parser is then fed whole, one byte at a time, in every buffer size and in
Hypothesis-chosen pieces, and must always give exactly those events.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings, strategies as st

from bulkflow._exceptions import IncompletePage, PageParseError
from bulkflow.export._parser import Event, HeaderValue, PageParser, RowChunk

BOM = b"\xef\xbb\xbf"

EXAMPLE_PAGE = (Path(__file__).parent / "data" / "example_page.json").read_bytes()

# A page in the emulator's key order (§9: next_page and page_count before
# data) with nested lists and maps in rows, unicode, quotes, numbers of every
# shape, nulls, booleans and an empty table.
GENERATED: dict[str, Any] = {
    "version": "1.18",
    "time": 1717000123,
    "action": "refresh",
    "next_page": "https://api.saleslayer.com/?code=CN1&page_token=a%2Fb",
    "page_count": 4,
    "page_length": 500,
    "schema": {"languages": ["en", "es"], "custom_parameters": {}, "headings": []},
    "data": {
        "catalogue": [
            ["M", 1, 0, 'Zapatos "rápidos"', [["M", 5, "https://x/a.jpg", None]]],
            ["M", 2, [1, 3], "日本語 😀 Ωmega", []],
            ["D", 3],
        ],
        "empty": [],
        "products": [
            ["M", -7, 3.25, -0.5, 1.5e300, -2.5e-300, 12345678901234, -(2**62)],
            ["M", 8, None, True, False, "back\\slash", "tab\tand\nline", "", []],
            ["M", 9, {"nested": {"deep": [1, [2, [3, {"x": None}]]]}}, {}, [[], [[]]]],
        ],
        "product_formats": [["U", 30, 1, "", 0.0, -0.0, 1e-7]],
    },
    "waiting": {"images": {"total": 0, "partial": 0}, "files": 0},
}

GENERATED_PAGE = orjson.dumps(GENERATED)

# The same page with next_page, page_count and page_length after data, as the
# service may write them (and the §2.7 example does).
GENERATED_TAIL_PAGE = orjson.dumps(
    {key: value for key, value in GENERATED.items() if not key.startswith("page")}
    | {"next_page": GENERATED["next_page"], "page_count": 4, "page_length": 500}
)

# Written by hand for the escapes and number spellings orjson never writes.
ESCAPED_PAGE = (
    rb'{"next_page":"https:\/\/api.saleslayer.com\/?p=2",'
    rb'"data":{"t":[["M",1,"\"q\"","\\","\u00f1","\ud83d\ude00","a\nb\t\u0000",'
    rb"1E+2,-0.5e-1,2e3,0,-0,-12,1.0E-2,null,true,false]],"
    rb'"u":[]},"page_count":2}'
)

# PHP writes an empty data map as a list.
EMPTY_DATA_PAGE = b'{"version":"1.18","time":1,"data":[],"page_count":1}'

# Whitespace everywhere JSON allows it.
SPACED_PAGE = (
    b' \n{ "data" : { "t" : [ [ "M" , 1 , [ ] , { } ] ] } ,\r\n "time" : 5 }\t'
)

SMALL_PAGES = {
    "escaped": ESCAPED_PAGE,
    "empty-data": EMPTY_DATA_PAGE,
    "spaced": SPACED_PAGE,
    "generated": GENERATED_PAGE,
}

ALL_PAGES = SMALL_PAGES | {
    "example": EXAMPLE_PAGE,
    "generated-tail": GENERATED_TAIL_PAGE,
}


def expected_events(page: bytes, max_chunk_rows: int = 1000) -> list[Event]:
    """Compute the events of ``page`` from ``orjson.loads``, not the parser."""
    decoded: dict[str, Any] = orjson.loads(page.removeprefix(BOM))
    events: list[Event] = []
    for key, value in decoded.items():
        if key != "data":
            events.append(HeaderValue(key, value))
            continue
        tables = value or {}  # PHP's [] for an empty map
        for table, rows in tables.items():
            for start in range(0, len(rows), max_chunk_rows):
                chunk = rows[start : start + max_chunk_rows]
                events.append(RowChunk(table, chunk, start))
    return events


def parse(chunks: Iterable[bytes], **options: Any) -> list[Event]:
    """Feed ``chunks`` to a new parser, close it and return every event."""
    parser = PageParser(**options)
    events: list[Event] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    events += parser.close()
    return events


def pieces(data: bytes, size: int) -> list[bytes]:
    """Cut ``data`` into pieces of ``size`` bytes (the last may be shorter)."""
    return [data[start : start + size] for start in range(0, len(data), size)]


def cut(data: bytes, positions: Iterable[int]) -> list[bytes]:
    """Cut ``data`` at the given byte positions (duplicates give empty pieces)."""
    bounds = [0, *sorted(positions), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def parse_error(chunks: Iterable[bytes], **options: Any) -> PageParseError:
    """Feed and close, expecting a PageParseError; return it."""
    with pytest.raises(PageParseError) as caught:
        parse(chunks, **options)
    return caught.value


# -- the right events, however the bytes arrive -------------------------------


@pytest.mark.parametrize("name", sorted(ALL_PAGES))
def test_page_fed_whole_gives_orjsons_headers_and_rows(name: str) -> None:
    """Fed in one piece, a page yields its headers and rows as orjson reads them."""
    page = ALL_PAGES[name]

    assert parse([page]) == expected_events(page)


def test_example_page_rows_and_headers() -> None:
    """The §2.7 page gives its three tables' rows and every top-level key but data."""
    events = parse([EXAMPLE_PAGE])
    decoded = orjson.loads(EXAMPLE_PAGE)

    headers = {e.key: e.value for e in events if isinstance(e, HeaderValue)}
    rows = {e.table: e.rows for e in events if isinstance(e, RowChunk)}
    assert headers == {k: v for k, v in decoded.items() if k != "data"}
    assert rows == decoded["data"]
    assert rows["catalogue"][2] == ["D", 11]


@pytest.mark.parametrize("name", sorted(ALL_PAGES))
def test_page_fed_one_byte_at_a_time(name: str) -> None:
    """Fed one byte per call, a page yields the same events as orjson's reading."""
    page = ALL_PAGES[name]

    assert parse(pieces(page, 1)) == expected_events(page)


@pytest.mark.parametrize("name", sorted(SMALL_PAGES))
def test_small_page_in_every_buffer_size(name: str) -> None:
    """Every buffer size from 1 to 64 bytes gives the same events."""
    page = SMALL_PAGES[name]
    expected = expected_events(page)

    for size in range(1, 65):
        assert parse(pieces(page, size)) == expected, f"buffer size {size}"


def test_example_page_in_every_buffer_size() -> None:
    """The §2.7 page gives the same events in every buffer size from 1 to 64."""
    expected = expected_events(EXAMPLE_PAGE)

    for size in range(1, 65):
        assert parse(pieces(EXAMPLE_PAGE, size)) == expected, f"buffer size {size}"


@settings(deadline=None, max_examples=200)
@given(
    page=st.sampled_from(sorted(ALL_PAGES)).map(ALL_PAGES.__getitem__),
    bom=st.booleans(),
    data=st.data(),
)
def test_any_split_gives_identical_events(
    page: bytes, bom: bool, data: st.DataObject
) -> None:
    """However the body is cut into feeds (empty feeds too), the events are the same."""
    body = BOM + page if bom else page
    positions = data.draw(st.lists(st.integers(0, len(body)), max_size=40))

    assert parse(cut(body, positions)) == expected_events(body)


JSON_TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63) + 1, 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | JSON_TEXT
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(JSON_TEXT, inner, max_size=4)
    ),
    max_leaves=12,
)
TABLES = st.dictionaries(
    JSON_TEXT, st.lists(st.lists(JSON_VALUES, max_size=6), max_size=5), max_size=3
)


@settings(deadline=None, max_examples=200)
@given(
    tables=TABLES,
    header=JSON_VALUES,
    max_chunk_rows=st.integers(1, 4),
    data=st.data(),
)
def test_any_rows_orjson_writes_come_back_equal(
    tables: dict[str, list[list[Any]]],
    header: Any,
    max_chunk_rows: int,
    data: st.DataObject,
) -> None:
    """Rows of any JSON values come back as written, in any split and chunk size."""
    page = orjson.dumps({"schema": header, "data": tables, "next_page": ""})
    positions = data.draw(st.lists(st.integers(0, len(page)), max_size=10))

    events = parse(cut(page, positions), max_chunk_rows=max_chunk_rows)

    assert events == expected_events(page, max_chunk_rows)


@pytest.mark.parametrize(
    "chunks",
    [
        [b'{"time":1', b"", b"}"],
        [b'{"time":1}', b""],
        [b"", b'{"time":1}'],
    ],
    ids=["middle", "after-the-end", "first"],
)
def test_empty_feeds_are_ignored(chunks: list[bytes]) -> None:
    """An empty chunk (a decompressor may yield one) is not the end of the body."""
    assert parse(chunks) == [HeaderValue("time", 1)]


@pytest.mark.parametrize("number", [-(2**63) + 1, 2**63 - 1], ids=["min", "max"])
def test_integers_at_the_edges_of_int64_are_read(number: int) -> None:
    """Integers from -2**63 + 1 to 2**63 - 1 are read like orjson reads them."""
    page = b'{"data":{"t":[["M",%d]]},"time":%d}' % (number, number)

    assert parse([page]) == expected_events(page)


@pytest.mark.parametrize(
    "number", [-(2**63), 2**63, 2**64 - 1], ids=["int64-min", "2**63", "uint64-max"]
)
def test_integers_beyond_int64_are_refused_clearly(number: int) -> None:
    """ijson's C backend stops at int64 (a documented limitation): a clear error."""
    page = b'{"data":{"t":[["M",%d]]},"time":1}' % number

    with pytest.raises(PageParseError, match="byte .*integer overflow") as info:
        parse([page])
    assert info.value.offset == len(page)


# -- byte order mark -----------------------------------------------------------


def test_leading_bom_is_accepted() -> None:
    """A UTF-8 BOM before the page is skipped (§2.1: every client strips it)."""
    assert parse([BOM + EXAMPLE_PAGE]) == expected_events(EXAMPLE_PAGE)


@pytest.mark.parametrize(
    "chunks",
    [
        [b"\xef", b"\xbb\xbf" + GENERATED_PAGE],
        [b"\xef\xbb", b"\xbf" + GENERATED_PAGE],
        [b"\xef", b"\xbb", b"\xbf", GENERATED_PAGE],
        [b"", b"\xef\xbb\xbf", b"", GENERATED_PAGE],
        pieces(BOM + GENERATED_PAGE, 1),
    ],
    ids=["1+rest", "2+rest", "1+1+1+page", "empty-feeds", "bytewise"],
)
def test_bom_split_across_feeds_is_accepted(chunks: list[bytes]) -> None:
    """A BOM cut across feeds is still recognised and skipped."""
    assert parse(chunks) == expected_events(GENERATED_PAGE)


def test_bom_is_not_counted_as_page_bytes() -> None:
    """The byte offsets of a page with a BOM are those of the page itself."""
    parser = PageParser()
    parser.feed(BOM + GENERATED_PAGE)
    parser.close()

    assert parser.bytes_fed == len(GENERATED_PAGE)


@pytest.mark.parametrize("body", [b"\xef", b"\xef\xbb"], ids=["1-byte", "2-bytes"])
def test_body_cut_inside_the_bom_is_a_page_parse_error(body: bytes) -> None:
    """A body that ends inside its BOM is truncated: PageParseError at close()."""
    parser = PageParser()
    assert parser.feed(body) == []

    with pytest.raises(PageParseError):
        parser.close()


# -- chunking ------------------------------------------------------------------


@pytest.mark.parametrize("max_chunk_rows", [1, 2, 3, 1000])
@pytest.mark.parametrize("name", ["example", "generated", "generated-tail"])
def test_chunk_size_keeps_rows_order_and_first_index(
    name: str, max_chunk_rows: int
) -> None:
    """Chunks of at most max_chunk_rows rows give the same rows with running indexes."""
    page = ALL_PAGES[name]

    events = parse(pieces(page, 7), max_chunk_rows=max_chunk_rows)

    assert events == expected_events(page, max_chunk_rows)
    for event in events:
        if isinstance(event, RowChunk):
            assert 1 <= len(event.rows) <= max_chunk_rows


def test_chunks_of_one_row_number_every_row() -> None:
    """With one row per chunk, first_index counts 0, 1, 2 within each table."""
    events = parse([EXAMPLE_PAGE], max_chunk_rows=1)

    indexes = [(e.table, e.first_index) for e in events if isinstance(e, RowChunk)]
    assert indexes == [
        ("catalogue", 0),
        ("catalogue", 1),
        ("catalogue", 2),
        ("products", 0),
        ("products", 1),
        ("product_formats", 0),
        ("product_formats", 1),
    ]


def test_empty_tables_and_empty_data_give_no_rows() -> None:
    """An empty table, or ``"data": []``, yields header values and no row chunk."""
    empty_table = parse([b'{"data":{"t":[]},"time":1}'])
    empty_data = parse([EMPTY_DATA_PAGE])

    assert empty_table == [HeaderValue("time", 1)]
    assert empty_data == [
        HeaderValue("version", "1.18"),
        HeaderValue("time", 1),
        HeaderValue("page_count", 1),
    ]


def test_full_chunks_are_delivered_before_the_body_ends() -> None:
    """Rows come out as soon as a chunk is full, not only at close()."""
    page = orjson.dumps({"data": {"t": [["M", n] for n in range(10)]}})
    parser = PageParser(max_chunk_rows=3)

    events = parser.feed(page[:-3])  # cut before the closing brackets

    assert [e.first_index for e in events if isinstance(e, RowChunk)] == [0, 3, 6]


def test_header_values_before_data_are_delivered_before_the_rows() -> None:
    """next_page and page_count written before data reach the reader first (§9)."""
    parser = PageParser()
    before_data = GENERATED_PAGE[: GENERATED_PAGE.index(b'"data"')]

    events = parser.feed(before_data)

    keys = [e.key for e in events if isinstance(e, HeaderValue)]
    assert {"next_page", "page_count", "page_length"} <= set(keys)


@pytest.mark.parametrize(
    "page", [GENERATED_PAGE, GENERATED_TAIL_PAGE], ids=["before-data", "after-data"]
)
def test_paging_keys_appear_before_or_after_data(page: bytes) -> None:
    """next_page and page_count are header values wherever they stand."""
    events = parse([page])

    headers = {e.key: e.value for e in events if isinstance(e, HeaderValue)}
    assert headers["next_page"] == GENERATED["next_page"]
    assert headers["page_count"] == 4
    assert "data" not in headers


# -- refused input --------------------------------------------------------------


def test_every_truncation_is_refused_at_close_with_the_offset() -> None:
    """Any proper prefix of a page feeds quietly, then close() raises at its length."""
    page = GENERATED_PAGE

    for length in range(len(page)):
        parser = PageParser()
        parser.feed(page[:length])
        with pytest.raises(PageParseError) as caught:
            parser.close()
        assert caught.value.offset == length, f"prefix of {length} bytes"
        assert re.search(rf"\b{length}\b", str(caught.value))


@pytest.mark.parametrize(
    "body",
    [b"hello", b"{'data': {}}", b"<html><body>502</body></html>", b'{"a" 1}'],
    ids=["word", "single-quotes", "html", "missing-colon"],
)
def test_text_that_is_not_json_is_refused(body: bytes) -> None:
    """A body that is not JSON raises PageParseError naming the byte offset."""
    error = parse_error([body])

    assert error.offset is not None and 0 <= error.offset <= len(body)
    assert re.search(rf"\b{error.offset}\b", str(error))


def test_bytes_after_the_page_are_refused() -> None:
    """A second value after the page's closing brace is not a page."""
    parse_error([GENERATED_PAGE + b' {"time": 2}'])


@pytest.mark.parametrize("body", [b"[]", b'[{"data": {}}]'])
def test_top_level_list_is_refused(body: bytes) -> None:
    """A page must be a JSON object, not a list."""
    error = parse_error([body])

    assert "object" in str(error)


@pytest.mark.parametrize("body", [b"5", b'"page"', b"null", b"true"])
def test_top_level_scalar_is_refused_as_not_an_object(body: bytes) -> None:
    """A bare scalar is refused with a message saying a page must be an object."""
    error = parse_error([body])

    assert "object" in str(error)


def shape_error(page: bytes, marker: bytes) -> PageParseError:
    """Parse ``page`` byte by byte; check the error's offset is at ``marker``."""
    error = parse_error(pieces(page, 1), where="connector CN1, page 2")

    start = page.index(marker)
    assert error.offset is not None
    assert start < error.offset <= start + len(marker) + 1
    assert error.where == "connector CN1, page 2"
    assert str(error).startswith("connector CN1, page 2")
    assert re.search(rf"\b{error.offset}\b", str(error))
    return error


@pytest.mark.parametrize("scalar", [b"5", b'"M"', b"null", b"true"])
def test_row_that_is_a_scalar_is_refused(scalar: bytes) -> None:
    """A row must be a list; a scalar row names its table and byte offset."""
    page = b'{"data":{"catalogue":[["M",1],' + scalar + b"]}}"

    error = shape_error(page, scalar + b"]")

    assert "catalogue" in str(error)


def test_row_that_is_a_map_is_refused() -> None:
    """A row written as an object names its table and the offset of that row."""
    page = b'{"data":{"products":[["M",1],{"STATUS":"M","ID":2}]}}'

    error = shape_error(page, b'{"STATUS"')

    assert "products" in str(error)


def test_table_that_is_a_map_is_refused() -> None:
    """A table whose value is an object names the table and byte offset."""
    page = b'{"data":{"catalogue":[["M",1]],"products":{"0":["M",2]}}}'

    error = shape_error(page, b'{"0"')

    assert "products" in str(error)


@pytest.mark.parametrize("scalar", [b"5", b'"rows"', b"null"])
def test_table_that_is_a_scalar_is_refused_naming_the_table(scalar: bytes) -> None:
    """A table whose value is a scalar names the table and byte offset."""
    page = b'{"data":{"catalogue":[["M",1]],"products":' + scalar + b"}}"

    error = shape_error(page, scalar + b"}")

    assert "products" in str(error)


def test_rows_directly_under_a_data_list_are_refused() -> None:
    """``"data": [[...]]`` has rows without a table: PageParseError."""
    parse_error([b'{"data":[["M",1]]}'])


# -- memory ----------------------------------------------------------------------


def test_parser_holds_at_most_a_chunk_and_one_read_of_rows() -> None:
    """However large the feed, the rows kept inside are bounded, not the page.

    The bound is a chunk (rows wait for it to fill) plus the rows of one read
    of the C reader (``READ_SIZE`` bytes); the page here is 40 times that.
    """
    from bulkflow.export import _parser

    row = ["M", 1, "x" * 200]
    rows_per_read = _parser.READ_SIZE // len(orjson.dumps(row)) + 1
    page = orjson.dumps({"data": {"t": [row] * (40 * rows_per_read)}, "time": 1})
    parser = PageParser(max_chunk_rows=100)
    delivered = 0
    for piece in pieces(page, 1024 * 1024):
        delivered += sum(
            len(e.rows) for e in parser.feed(piece) if isinstance(e, RowChunk)
        )
        held = len(parser._rows or [])
        assert held <= 100 + rows_per_read
    delivered += sum(len(e.rows) for e in parser.close() if isinstance(e, RowChunk))

    assert delivered == 40 * rows_per_read


def test_rows_under_a_data_list_are_refused_before_the_list_ends() -> None:
    """``"data": [...]`` holding rows is refused early, not after building it whole."""
    page = b'{"data":[' + b'["M",1],' * 100_000
    parser = PageParser()

    with pytest.raises(PageParseError, match="table names"):
        for piece in pieces(page, 4096):
            parser.feed(piece)
    assert parser.bytes_fed < len(page) // 10


# -- small pages read whole ------------------------------------------------------


def parse_whole(body: bytes, **options: Any) -> list[Event]:
    """Parse ``body`` with a new parser's orjson path."""
    return PageParser(**options).parse_whole(body)


@pytest.mark.parametrize("max_chunk_rows", [1, 3, 1000])
@pytest.mark.parametrize("name", sorted(ALL_PAGES))
def test_whole_page_gives_the_streamed_events(name: str, max_chunk_rows: int) -> None:
    """Parsed whole, a page gives the events its streaming gives, chunk by chunk."""
    page = ALL_PAGES[name]

    assert parse_whole(page, max_chunk_rows=max_chunk_rows) == expected_events(
        page, max_chunk_rows
    )
    assert parse_whole(BOM + page) == expected_events(page)


REFUSED_BODIES = {
    "word": b"hello",
    "html": b"<html><body>502</body></html>",
    "list": b'[{"data": {}}]',
    "scalar": b"5",
    "trailing": GENERATED_PAGE + b' {"time": 2}',
    "row-scalar": b'{"data":{"catalogue":[["M",1],5]}}',
    "row-map": b'{"data":{"products":[["M",1],{"STATUS":"M","ID":2}]}}',
    "table-map": b'{"data":{"catalogue":[["M",1]],"products":{"0":["M",2]}}}',
    "table-scalar": b'{"data":{"catalogue":[["M",1]],"products":null}}',
    "data-scalar": b'{"data":5}',
    "data-rows": b'{"data":[["M",1]]}',
    "overflow": b'{"data":{"t":[["M",%d]]},"time":1}' % 2**64,
}


@pytest.mark.parametrize("name", sorted(REFUSED_BODIES))
def test_whole_page_refuses_what_streaming_refuses(name: str) -> None:
    """Bad bodies are refused either way, with the same class and message."""
    body = REFUSED_BODIES[name]

    with pytest.raises(PageParseError) as streamed:
        parse([body])
    with pytest.raises(PageParseError) as whole:
        parse_whole(body)

    assert type(whole.value) is type(streamed.value)
    # The same words; the value shown may differ (a map is shown as far as
    # it was read when the stream refused it).
    message = re.compile(r"byte \d+: ([^:]*)")
    assert message.findall(str(whole.value)) == message.findall(str(streamed.value))


def test_whole_page_cut_short_is_an_incomplete_page() -> None:
    """A truncated body read whole is an IncompletePage, retried like a stream's."""
    for length in (1, len(GENERATED_PAGE) // 2, len(GENERATED_PAGE) - 1):
        with pytest.raises(IncompletePage) as caught:
            parse_whole(GENERATED_PAGE[:length])
        assert caught.value.offset == length


@pytest.mark.parametrize(
    "number",
    [2**63 - 1, -(2**63) + 1, 10**18, 1234567890123456789, -1234567890123456789],
)
def test_whole_page_reads_wide_integers_exactly(number: int) -> None:
    """Integers of 19 digits go through the streaming reader: exact, never floats."""
    page = b'{"data":{"t":[["M",%d,"%d"]]},"time":1}' % (number, number)

    events = parse_whole(page)

    assert events == expected_events(page)
    [chunk] = [e for e in events if isinstance(e, RowChunk)]
    assert type(chunk.rows[0][1]) is int


def test_whole_page_does_not_turn_too_wide_integers_into_floats() -> None:
    """orjson would read 2**64 as a float; the page is refused as streaming does."""
    page = b'{"data":{"t":[["M",%d]]},"time":1}' % -(2**64)

    with pytest.raises(PageParseError, match="integer overflow"):
        parse_whole(page)


# -- what a tester found --------------------------------------------------------


@pytest.mark.parametrize("depth", [600, 3000])
@pytest.mark.parametrize("where", ["first", "last"])
def test_a_deeply_nested_header_loses_nothing(depth: int, where: str) -> None:
    """A header nested thousands deep comes out whole, and so does the rest."""
    deep = b'"deep":' + b"[" * depth + b"1" + b"]" * depth
    rest = b'"time":5,"data":{"t":[[1],[2]]},"next_page":"x"'
    page = (
        b"{" + (deep + b"," + rest if where == "first" else rest + b"," + deep) + b"}"
    )

    for events in (parse([page]), parse(pieces(page, 1000))):
        headers = {e.key: e.value for e in events if isinstance(e, HeaderValue)}
        assert headers["next_page"] == "x" and headers["time"] == 5
        assert [e.rows for e in events if isinstance(e, RowChunk)] == [[[1], [2]]]
        value = headers["deep"]
        for _ in range(depth):
            [value] = value
        assert value == 1


def test_a_hook_that_fails_refuses_the_page(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever goes wrong while ijson builds the page is raised, never swallowed."""
    from bulkflow.export import _parser

    def broken(value: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(_parser, "_plain", broken)
    with pytest.raises(PageParseError, match="RuntimeError: boom"):
        parse([b'{"schema":{"a":1},"data":{"t":[[1]]},"time":1}'])


@pytest.mark.parametrize(
    "body",
    [
        b'{"data":{"t":[["M","\\udc00"]]}}',
        b'{"data":{"t":[["M","\xed\xa0\x80"]]}}',
        b'{"data":{"t":[["M","\xc0\x80"]]}}',
        b'{"data":{"t":[["M","\xf4\x90\x80\x80"]]}}',
    ],
    ids=["lone-low-surrogate", "utf8-surrogate", "overlong", "beyond-unicode"],
)
def test_text_that_is_not_utf8_is_a_page_parse_error(body: bytes) -> None:
    """Bytes that are not UTF-8 are bad data (exit 3), not a crash."""
    with pytest.raises(PageParseError, match="UTF-8"):
        parse([body])
    with pytest.raises(PageParseError):
        parse_whole(body)


@pytest.mark.parametrize("tail", [b"1", b" t", b"-", b'"', b' "abc', b"x"])
def test_bytes_after_the_page_are_refused_not_retried(tail: bytes) -> None:
    """A tail after the page is bad data at once, never a truncation to retry."""
    page = GENERATED_PAGE + tail

    for chunks in ([page], pieces(page, 5)):
        with pytest.raises(PageParseError) as caught:
            parse(chunks)
        assert not isinstance(caught.value, IncompletePage)
    with pytest.raises(PageParseError) as whole:
        parse_whole(page)
    assert not isinstance(whole.value, IncompletePage)


def test_two_boms_are_refused_either_way() -> None:
    """One BOM is skipped; a second is not a page, whole or streamed."""
    body = BOM + BOM + GENERATED_PAGE
    parse_error([body])
    with pytest.raises(PageParseError):
        parse_whole(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"data":{"t":[[1]]},"time":1,"data":{"t":[]}}',
        b'{"data":[],"data":{"t":[[1]]}}',
        b'{"data":{"t":[[1]],"u":[[2]],"t":[[3]]}}',
        b'{"data":{"t": [ [1]],"t":[]}}',
    ],
    ids=["data-twice", "php-empty-then-data", "table-twice", "table-twice-spaced"],
)
def test_data_or_a_table_named_twice_is_refused_either_way(body: bytes) -> None:
    """orjson would keep the last of two keys; streaming cannot: both refuse."""
    error = parse_error([body])
    assert "twice" in str(error)
    with pytest.raises(PageParseError, match="twice"):
        parse_whole(body)
