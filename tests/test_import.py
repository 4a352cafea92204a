"""The import path: sources, batches, answers, ledger, rate, round trip and resume."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from aiohttp import web

from bulkflow import (
    DataError,
    ExportConnector,
    PageParseError,
    RetryPolicy,
    SQLiteSink,
    UnsafeURL,
    UsageError,
    export,
)
from bulkflow.emulator import (
    DEMO_CODE,
    DEMO_SECRET,
    CatalogStore,
    Emulator,
    EmulatorConfig,
    catalog_source,
    serve_emulator,
)
from bulkflow.emulator._imports import add_import_connector
from bulkflow.import_ import (
    Batcher,
    CsvSource,
    ImportConnector,
    ImportItem,
    ImportOptions,
    ImportRun,
    IterableSource,
    JsonlSource,
    Ledger,
    RateBudget,
    RunStatistics,
    SqliteSource,
    import_items,
    open_source,
    parse_input_response,
)
from bulkflow.import_._cli import default_rejects, ledger_beside
from bulkflow.import_._limits import max_in_any_window
from bulkflow.import_._outcome import attribute
from bulkflow.protocol import decode_form

pytestmark = pytest.mark.anyio

CODE = "CN_IMPORT_TEST"
SECRET = "import-test-secret"
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05)


# -- helpers ------------------------------------------------------------------


def empty_store(rate_limit: str | None = None, **options: Any) -> CatalogStore:
    """An emulator store with the Luma schema, no items, an import connector."""
    store = CatalogStore.open(None)
    store.load(catalog_source("empty"))
    store.put_connector(DEMO_CODE, DEMO_SECRET, kind="export", options={})
    add_import_connector(store, CODE, SECRET, rate_limit, **options)
    return store


@pytest.fixture
def store() -> Iterator[CatalogStore]:
    """An empty store with an import connector whose tracking takes one poll."""
    store = empty_store(tracking_polls=1)
    yield store
    store.close()


@asynccontextmanager
async def serve(store: CatalogStore) -> AsyncIterator[tuple[str, Emulator]]:
    """Serve ``store`` on 127.0.0.1; yield the URL and the emulator."""
    emulator = Emulator(store, EmulatorConfig(round_pages=False))
    async with serve_emulator(emulator) as url:
        yield url, emulator


def connector(url: str) -> ImportConnector:
    """The test import connector at ``url``."""
    return ImportConnector(url=url, code=CODE, secret=SECRET)


def products(count: int, start: int = 0) -> list[dict[str, Any]]:
    """``count`` plain product items with a name and a price."""
    return [
        {"REF": f"P-{index:04}", "product_name_en": f"Item {index}", "price": index}
        for index in range(start, start + count)
    ]


def catalog(store: CatalogStore, table: str) -> dict[str, list[Any]]:
    """The live items of ``table`` as values keyed by REF (IDs left out)."""
    entries = store.get_meta("data_schema")[table][2:]
    position = entries.index("REF")
    return {values[position]: values for _, values in store.iter_items(table)}


def field(store: CatalogStore, table: str, ref: str, name: str) -> Any:
    """One stored value of the item ``ref`` of ``table``."""
    entries = store.get_meta("data_schema")[table][2:]
    return catalog(store, table)[ref][entries.index(name)]


def write_jsonl(path: Path, records: list[Any]) -> Path:
    """Write one JSON value per line."""
    path.write_bytes(b"".join(orjson.dumps(record) + b"\n" for record in records))
    return path


async def collect(source: Any) -> list[ImportItem]:
    """Every item of a source."""
    return [item async for item in source.aiter_items()]


@pytest.fixture(scope="module")
def luma_replica(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Luma catalog exported from an emulator into a SQLite replica."""
    path = tmp_path_factory.mktemp("replica") / "luma.sqlite"

    async def run() -> None:
        store = CatalogStore.open(None)
        store.load(catalog_source("luma"))
        store.put_connector(DEMO_CODE, DEMO_SECRET, kind="export", options={})
        try:
            async with serve(store) as (url, _):
                await export_into(url, path)
        finally:
            store.close()

    anyio.run(run)
    return path


async def export_into(url: str, path: Path) -> None:
    """Export the demo connector at ``url`` into the replica ``path``."""
    sink = SQLiteSink(path)
    try:
        await export(ExportConnector(url, DEMO_CODE, DEMO_SECRET, page_size=1000), sink)
    finally:
        sink.close()


#: The table each reference column of the Luma schema points at.
TARGETS = {
    "ID_PARENT": "catalogue",
    "ID_catalogue": "catalogue",
    "ID_products": "products",
}


def replica_by_ref(path: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """Each table of a replica keyed by REF, references turned into REFs.

    The expected side of the round trip, computed with plain SQL instead of
    the code under test: each ``ID_*`` value is looked up in its table.
    """
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    tables = ("catalogue", "products", "product_formats")
    refs = {
        table: dict(db.execute(f'SELECT "ID", "REF" FROM "{table}"').fetchall())
        for table in tables
    }
    result = {
        table: dict(
            row_by_ref(row, refs) for row in db.execute(f'SELECT * FROM "{table}"')
        )
        for table in tables
    }
    db.close()
    return result


def row_by_ref(
    row: sqlite3.Row, refs: dict[str, dict[Any, Any]]
) -> tuple[str, dict[str, Any]]:
    """One replica row as ``(REF, values)``, without bookkeeping, refs as REFs."""
    values: dict[str, Any] = {}
    for key in row.keys():
        if key == "ID" or key.startswith("_bulkflow"):
            continue
        value = row[key]
        if key in TARGETS:
            ids = orjson.loads(value) if isinstance(value, str) else value
            lookup = refs[TARGETS[key]]
            value = (
                [lookup[i] for i in ids] if isinstance(ids, list) else lookup.get(ids)
            )
        values[key] = value
    return row["REF"], values


# -- sources ------------------------------------------------------------------


async def test_jsonl_reads_envelopes_and_plain_items(tmp_path: Path) -> None:
    """Lines may name their table or take --table; _delete marks deletions."""
    path = write_jsonl(
        tmp_path / "items.jsonl",
        [
            {"table": "catalogue", "item": {"REF": "C-1", "category_name_en": "A"}},
            {"REF": "P-1", "price": 3},
            {"table": "products", "item": {"REF": "P-2"}, "_delete": True},
            {"REF": "P-3", "_delete": 1, "price": 9},
        ],
    )
    found = await collect(JsonlSource(path, table="products"))

    assert [(item.table, item.ref, item.delete) for item in found] == [
        ("catalogue", "C-1", False),
        ("products", "P-1", False),
        ("products", "P-2", True),
        ("products", "P-3", True),
    ]
    assert found[3].fields == {"REF": "P-3"}
    assert found[1].where == f"{path} line 2"


async def test_a_bad_jsonl_line_names_file_line_and_value(tmp_path: Path) -> None:
    """The error shows where and what; the items before it are yielded first."""
    path = tmp_path / "items.jsonl"
    path.write_text('{"REF": "P-1"}\n\n{"REF": "P-2"\n{"REF": "P-3"}\n')
    seen: list[str] = []
    with pytest.raises(DataError, match=r"items.jsonl line 3: not JSON") as caught:
        async for item in JsonlSource(path, table="products").aiter_items():
            seen.append(item.ref)
    assert seen == ["P-1"]
    assert caught.value.offset == 3
    assert caught.value.where == f"{path} line 3"
    assert '{"REF": "P-2"' in caught.value.value


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"price": 1}, "has no usable REF"),
        ({"REF": ""}, "has no usable REF"),
        ({"REF": ["a"]}, "has no usable REF"),
        ([1, 2], "expected an object"),
    ],
)
async def test_items_without_a_ref_are_refused_with_their_line(
    tmp_path: Path, line: Any, message: str
) -> None:
    """Every item needs a REF, and a record must be an object."""
    path = write_jsonl(tmp_path / "items.jsonl", [line])
    with pytest.raises(DataError, match=rf"line 1: .*{message}"):
        await collect(JsonlSource(path, table="products"))


async def test_a_plain_item_without_a_table_asks_for_one(tmp_path: Path) -> None:
    """No table in the line and no --table: the error says how to give one."""
    path = write_jsonl(tmp_path / "items.jsonl", [{"REF": "P-1"}])
    with pytest.raises(DataError, match="pass --table"):
        await collect(JsonlSource(path))


async def test_csv_maps_columns_to_fields_and_splits_lists(tmp_path: Path) -> None:
    """--map picks and renames columns; FIELD[] splits on |; a BOM is fine."""
    path = tmp_path / "products.csv"
    path.write_text(
        "\ufeffsku,name,cats,ignored\nP-1,Runner,men|women,x\nP-2,Trail,,y\n",
        encoding="utf-8",
    )
    mapping = {"sku": "REF", "name": "product_name_en", "cats": "REF_catalogue[]"}
    found = await collect(CsvSource(path, table="products", mapping=mapping))
    assert [item.fields for item in found] == [
        {"REF": "P-1", "product_name_en": "Runner", "REF_catalogue": ["men", "women"]},
        {"REF": "P-2", "product_name_en": "Trail", "REF_catalogue": []},
    ]
    assert found[1].where == f"{path} line 3"


async def test_csv_problems_name_the_column_or_the_line(tmp_path: Path) -> None:
    """Unknown mapped column and missing REF are usage errors; a short row is data."""
    path = tmp_path / "products.csv"
    path.write_text("sku,name\nP-1,Runner\nP-2\n")
    with pytest.raises(UsageError, match=r"'colour'.*its columns are: sku, name"):
        await collect(CsvSource(path, table="products", mapping={"colour": "color"}))
    with pytest.raises(UsageError, match="no column gives REF"):
        await collect(CsvSource(path, table="products"))
    mapping = {"sku": "REF"}
    with pytest.raises(DataError, match=r"products.csv line 3: 1 cells where"):
        await collect(CsvSource(path, table="products", mapping=mapping))


def test_open_source_picks_the_reader_by_name(tmp_path: Path) -> None:
    """.jsonl, .csv and sqlite:/// each have their reader; others are refused."""
    assert isinstance(open_source("a.jsonl"), JsonlSource)
    assert isinstance(open_source("a.csv", table="products"), CsvSource)
    replica = open_source("sqlite:///r.sqlite", table="products")
    assert isinstance(replica, SqliteSource)
    with pytest.raises(UsageError, match="--table"):
        open_source("sqlite:///r.sqlite")
    with pytest.raises(UsageError, match=r"give a \.jsonl"):
        open_source("items.xml")


async def test_an_iterable_source_takes_sync_and_async_items() -> None:
    """Library users pass lists, generators or async generators."""

    async def agen() -> AsyncIterator[dict[str, Any]]:
        yield {"REF": "A"}
        yield {"table": "catalogue", "item": {"REF": "B"}}

    sync = await collect(IterableSource([{"REF": "A"}], table="products"))
    assert [(item.table, item.ref) for item in sync] == [("products", "A")]
    found = await collect(IterableSource(agen(), table="products"))
    assert [(item.table, item.ref) for item in found] == [
        ("products", "A"),
        ("catalogue", "B"),
    ]


async def test_a_replica_table_becomes_items_keyed_by_ref(luma_replica: Path) -> None:
    """ID_* columns become REF_* fields holding the referenced items' REFs."""
    expected = replica_by_ref(luma_replica)
    formats = await collect(SqliteSource(luma_replica, "product_formats"))
    assert len(formats) == len(expected["product_formats"])
    for item in formats[:50]:
        assert "ID" not in item.fields and "ID_products" not in item.fields
        want = expected["product_formats"][item.ref]["ID_products"]
        assert item.fields["REF_products"] == want
    found = await collect(SqliteSource(luma_replica, "products"))
    first = found[0]
    assert (
        first.fields["REF_catalogue"] == expected["products"][first.ref]["ID_catalogue"]
    )
    assert list(first.fields)[0] == "REF"


async def test_catalogue_rows_come_parents_first(luma_replica: Path) -> None:
    """Every category comes after the category its REF_PARENT names."""
    found = await collect(SqliteSource(luma_replica, "catalogue"))
    seen: set[str] = set()
    for item in found:
        parent = item.fields["REF_PARENT"]
        assert parent is None or parent in seen
        seen.add(item.ref)
    assert len(seen) == len(found) == 32


async def test_replica_media_go_as_urls_or_as_tuples(luma_replica: Path) -> None:
    """urls: the first size of each file; tuples: the exported value as it is."""
    urls = await collect(SqliteSource(luma_replica, "products", media="urls"))
    tuples = await collect(SqliteSource(luma_replica, "products", media="tuples"))
    with_images = next(
        i for i, item in enumerate(tuples) if item.fields["product_image"]
    )
    exported = tuples[with_images].fields["product_image"]
    assert exported[0][0] == "M" and len(exported[0]) == 5
    assert urls[with_images].fields["product_image"] == [entry[2] for entry in exported]


async def test_a_reference_the_replica_lacks_is_a_data_error(
    luma_replica: Path, tmp_path: Path
) -> None:
    """A product whose category is not in the replica: table, ID and value named."""
    copy = tmp_path / "partial.sqlite"
    source = sqlite3.connect(luma_replica)
    source.backup(target := sqlite3.connect(copy))
    source.close()
    gone = target.execute('SELECT min("ID") FROM catalogue').fetchone()[0]
    target.execute('DELETE FROM catalogue WHERE "ID"=?', (gone,))
    target.commit()
    target.close()
    with pytest.raises(DataError, match=rf"ID_catalogue points at catalogue ID {gone}"):
        await collect(SqliteSource(copy, "products"))
    with pytest.raises(UsageError, match="no such table"):
        await collect(SqliteSource(copy, "shoes"))


# -- batches ------------------------------------------------------------------


def batches_of(batcher: Batcher, found: list[ImportItem]) -> list[Any]:
    """Feed every item; return the closed batches, the last one flushed."""
    closed = [batch for item in found if (batch := batcher.add(item)) is not None]
    final = batcher.flush()
    return closed + ([final] if final else [])


def item(ref: str, **fields: Any) -> ImportItem:
    """A products item."""
    return ImportItem("products", {"REF": ref, **fields})


def test_batches_hold_at_most_max_items() -> None:
    """23 items in batches of 10: 10, 10, 3, numbered from 1."""
    batcher = Batcher(max_items=10)
    batches = batches_of(batcher, [item(f"P-{i}") for i in range(23)])
    assert [len(batch.items) for batch in batches] == [10, 10, 3]
    assert [batch.number for batch in batches] == [1, 2, 3]
    assert batcher.statistics().batches_out == 3
    assert batcher.statistics().items_in == 23


@pytest.mark.parametrize("encoding", ["form", "json"])
def test_batches_stay_under_max_batch_bytes_and_decode_back(encoding: Any) -> None:
    """Every body is within the byte bound and decodes to the items sent."""
    found = [
        item(
            f"P-{i}", product_name_en="x" * (i * 7), climate=["a", None, "b"], qty=None
        )
        for i in range(60)
    ]
    batcher = Batcher(max_items=50, max_batch_bytes=4096, encoding=encoding)
    batches = batches_of(batcher, found)

    assert len(batches) > 2
    sent: list[dict[str, Any]] = []
    for batch in batches:
        body = batch.body()
        assert len(body) <= 4096
        decoded = (
            decode_form(body.decode()) if encoding == "form" else orjson.loads(body)
        )
        sent.extend(decoded["input_data"]["products"])
    if encoding == "form":
        # Form bodies carry text, and "no value" as an empty one.
        assert sent[3] == {
            "REF": "P-3",
            "product_name_en": "x" * 21,
            "climate": ["a", "", "b"],
            "qty": "",
        }
    else:
        assert sent == [i.fields for i in found]
    assert len(sent) == 60


def test_a_delete_of_a_ref_upserted_in_the_batch_starts_a_new_one() -> None:
    """Upsert then delete of P-1 stay in that order: two batches."""
    batcher = Batcher(max_items=100)
    deletion = ImportItem("products", {"REF": "P-1"}, delete=True)
    batches = batches_of(batcher, [item("P-1"), item("P-2"), deletion])
    assert [len(batch.items) for batch in batches] == [2, 1]
    assert batches[1].payload() == {"delete_data": {"products": [{"REF": "P-1"}]}}


def test_an_item_larger_than_max_batch_bytes_is_a_data_error() -> None:
    """One item that alone passes the bound: its source position and REF named."""
    batcher = Batcher(max_batch_bytes=1024)
    big = ImportItem(
        "products", {"REF": "P-9", "x": "y" * 2000}, where="a.jsonl line 9"
    )
    with pytest.raises(DataError, match=r"a.jsonl line 9: the item 'P-9'"):
        batcher.add(big)


@pytest.mark.parametrize("index", [0, 9, 10, 99, 1234])
@pytest.mark.parametrize("encoding", ["form", "json"])
def test_an_item_that_fits_alone_is_refused_only_beyond_the_bound(
    encoding: Any, index: int
) -> None:
    """The least size of an item is its size first in a batch, wherever it comes.

    The bound is measured here a second way: the item encoded alone into a
    batch of its own. Exactly that many bytes pass, one byte fewer refuses,
    whatever the item's index in the batch being filled.
    """
    big = item("P-big", name="ü & = x" * 200, tags=["a", None, ["b", "c"]], qty=None)
    alone = Batcher(encoding=encoding)
    alone.add(big)
    least = alone.statistics().pending_bytes
    for bound, refused in ((max(least, 1024), False), (least - 1, True)):
        if bound < 1024:
            continue
        batcher = Batcher(max_items=50_000, max_batch_bytes=bound, encoding=encoding)
        for number in range(index):
            batcher.add(item(f"P-{number}"))
        if refused:
            with pytest.raises(DataError, match="P-big"):
                batcher.add(big)
        else:
            batcher.add(big)
            batches = batches_of(batcher, [])
            assert batches[-1].items[-1] is big


def test_the_digest_is_the_content_not_the_encoding() -> None:
    """Form and JSON batches of the same items share a digest; other items do not."""
    found = [item("P-1", price=1), item("P-2", price=2)]
    digests = {
        encoding: batches_of(Batcher(encoding=encoding), found)[0].digest
        for encoding in ("form", "json")
    }
    assert digests["form"] == digests["json"]
    other = batches_of(Batcher(), [item("P-1", price=1), item("P-2", price=3)])[0]
    assert other.digest != digests["form"]


def test_a_batch_size_past_the_api_limit_is_refused() -> None:
    """50,000 items per call is the API's limit."""
    with pytest.raises(UsageError, match="--batch-size 50001"):
        Batcher(max_items=50_001)


# -- answers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {
                "input_response": {
                    "result": 1,
                    "errors": [],
                    "items_affected": {"products": 5, "catalogue": 1},
                    "new_items": {"products": 3},
                    "updated_items": {"products": 2, "catalogue": 1},
                    "deleted_items": {},
                }
            },
            ("accepted", 1, (), 6, 3, 3, 0, None),
        ),
        (
            {
                "input_response": {
                    "result": "1",
                    "error": "P-9: bad",
                    "items_affected": 4,
                }
            },
            ("partial", 1, ("P-9: bad",), 4, 0, 0, 0, None),
        ),
        (
            {"input_response": {"result": 2, "errors": "refused"}},
            ("refused", 2, ("refused",), None, 0, 0, 0, None),
        ),
        (
            {"input_response": {"result": 0, "errors": [{"REF": "x", "why": "y"}]}},
            ("partial", 0, ('{"REF":"x","why":"y"}',), None, 0, 0, 0, None),
        ),
        (
            {
                "input_response": {
                    "result": 1,
                    "new_items": {
                        "products": [{"ID": 1, "REF": "a"}, {"ID": 2, "REF": "b"}]
                    },
                    "deleted_items": [[7, "z"]],
                    "status_tracking": "https://h.test/t/1",
                }
            },
            ("accepted", 1, (), None, 2, 0, 1, "https://h.test/t/1"),
        ),
        (
            {"result": 1, "items_affected": "2", "updated_items": "2"},
            ("accepted", 1, (), 2, 0, 2, 0, None),
        ),
        (
            {"input_response": {"new_items": 1}, "status_tracking": "https://h.test/x"},
            ("accepted", None, (), None, 1, 0, 0, "https://h.test/x"),
        ),
    ],
)
def test_every_documented_answer_shape_is_read(
    body: Any, expected: tuple[Any, ...]
) -> None:
    """Counts, maps, totals, pairs, error or errors, nested or flat (§4.3, §9)."""
    outcome = parse_input_response(body, where="test")
    got = (
        outcome.status,
        outcome.result,
        outcome.errors,
        outcome.affected,
        outcome.new,
        outcome.updated,
        outcome.deleted,
        outcome.tracking_url,
    )
    assert got == expected


def test_an_answer_without_an_import_response_is_a_parse_error() -> None:
    """Neither input_response nor its keys: nothing can be concluded."""
    with pytest.raises(
        PageParseError, match="batch 3: the answer has no input_response"
    ):
        parse_input_response({"version": "1.18", "time": 1}, where="batch 3")


def test_errors_are_tied_to_items_by_path_or_by_quoted_ref() -> None:
    """The emulator's path, a quoted REF naming one item, or nothing."""
    batch = batches_of(Batcher(), [item("P-1"), item("P-2"), item("P-12")])[0]
    assert attribute(batch, "input_data[products][1] REF 'P-2': x") is batch.items[1]
    assert attribute(batch, "item 'P-12' has a bad price") is batch.items[2]
    assert attribute(batch, "price must be a number") is None
    assert attribute(batch, "input_data[products][9]: x") is None


# -- ledger -------------------------------------------------------------------


def test_the_ledger_skips_only_accepted_batches(tmp_path: Path) -> None:
    """Accepted is final; partial, refused, sent and unconfirmed are sent again."""
    ledger = Ledger(tmp_path / "ledger.sqlite")
    batches = batches_of(Batcher(max_items=1), [item(f"P-{i}") for i in range(5)])
    statuses: list[Any] = ["accepted", "partial", "refused", "sent", "unconfirmed"]
    for batch, status in zip(batches, statuses, strict=True):
        key = Ledger.key(CODE, batch)
        ledger.record_sent(key, CODE, batch)
        if status != "sent":
            ledger.record_outcome(key, status)
    ledger.close()
    reopened = Ledger(tmp_path / "ledger.sqlite")
    skipped = [reopened.accepted(Ledger.key(CODE, batch)) for batch in batches]

    assert skipped == [True, False, False, False, False]
    assert not reopened.accepted(Ledger.key("CN_OTHER", batches[0]))
    assert reopened.statistics().accepted == 1
    reopened.close()


# -- runs against the emulator ----------------------------------------------------


async def test_refused_items_go_to_the_rejects_file(
    store: CatalogStore, tmp_path: Path
) -> None:
    """Each refused item is a line with its table, the item and the reason."""
    found = products(6)
    found[2]["colour"] = "red"
    found[4]["price"] = "cheap"
    rejects = tmp_path / "rejects.jsonl"
    async with serve(store) as (url, _):
        report = await import_items(
            connector(url),
            found,
            ImportOptions(batch_size=3, poll_interval=0.01),
            table="products",
            rejects=rejects,
        )
    lines = [orjson.loads(line) for line in rejects.read_bytes().splitlines()]

    assert [(line["table"], line["item"]["REF"]) for line in lines] == [
        ("products", "P-0002"),
        ("products", "P-0004"),
    ]
    assert lines[0]["item"] == found[2]
    assert "unknown field 'colour'" in lines[0]["reason"]
    assert "'cheap' is not a number" in lines[1]["reason"]
    assert (report.batches_sent, report.batches_partial) == (2, 2)
    assert (report.items_new, report.items_rejected) == (4, 2)
    assert set(catalog(store, "products")) == {f"P-{i:04}" for i in (0, 1, 3, 5)}


async def test_a_run_shows_its_state_while_it_runs_and_when_it_ends(
    store: CatalogStore,
) -> None:
    """Batches in flight, tracked and queued, in statistics() and the repr."""
    snapshots: list[RunStatistics] = []
    source = IterableSource(products(20), table="products")
    options = ImportOptions(batch_size=5, concurrency=2, poll_interval=0.01)
    async with serve(store) as (url, _):
        run = ImportRun(
            connector(url),
            source,
            options,
            ledger=Ledger(None),
            progress=lambda report: snapshots.append(run.statistics()),
        )
        report = await run.run()

    assert report.batches_accepted == 4 and len(snapshots) == 4
    assert all(0 <= snap.in_flight <= 3 and snap.max_queued == 2 for snap in snapshots)
    assert run.statistics() == RunStatistics(0, 0, 0, 2)
    assert "accepted=4" in repr(run) and "in_flight=0" in repr(run)


def test_options_out_of_range_are_usage_errors() -> None:
    """A bad rate, concurrency or encoding is refused before anything opens."""
    for bad in ({"rate": "lots"}, {"concurrency": 0}, {"encoding": "xml"}):
        with pytest.raises(UsageError):
            ImportOptions(**bad)


async def test_a_bad_record_stops_the_run_after_sending_what_came_before(
    store: CatalogStore, tmp_path: Path
) -> None:
    """Items before the bad line are imported, then the error is raised."""
    path = tmp_path / "items.jsonl"
    write_jsonl(path, products(7))
    with path.open("a") as handle:
        handle.write("not json\n")
    async with serve(store) as (url, _):
        with pytest.raises(DataError, match="items.jsonl line 8"):
            await import_items(
                connector(url),
                JsonlSource(path, table="products"),
                ImportOptions(batch_size=5, direct=True),
            )
    assert len(catalog(store, "products")) == 7


async def test_the_luma_catalog_comes_back_equal_after_a_round_trip(
    luma_replica: Path, tmp_path: Path
) -> None:
    """Export Luma, import it table by table into an empty emulator, export again.

    Items, field values, parents and categories are compared by REF, since
    the second instance numbers its items afresh.
    """
    store = empty_store(tracking_polls=2)
    second = tmp_path / "second.sqlite"
    try:
        async with serve(store) as (url, _):
            for table in ("catalogue", "products", "product_formats"):
                report = await import_items(
                    connector(url),
                    SqliteSource(luma_replica, table, media="tuples"),
                    ImportOptions(rate=None, batch_size=400, poll_interval=0.01),
                )
                assert report.complete, report.as_dict()
            await export_into(url, second)
    finally:
        store.close()
    before, after = replica_by_ref(luma_replica), replica_by_ref(second)

    assert {t: len(rows) for t, rows in before.items()} == {
        "catalogue": 32,
        "products": 191,
        "product_formats": 1847,
    }
    for table in before:
        assert after[table] == before[table], table


async def test_the_rate_budget_holds_against_an_emulator_budget() -> None:
    """5/s on both sides: nothing refused, ≥ 95 % of 5/s, ≤ 5 in any second.

    20 batches, 4 in flight. The windows are counted on the emulator's own
    arrival times. The achieved rate is (calls − 1) / (last − first arrival):
    evenly spaced calls, as the budget sends them, make it the pace itself.
    """
    store = empty_store("5/s")
    try:
        async with serve(store) as (url, emulator):
            report = await import_items(
                connector(url),
                products(100),
                ImportOptions(
                    rate=RateBudget(5, 1.0), concurrency=4, batch_size=5, direct=True
                ),
                table="products",
            )
        arrivals = sorted(emulator.imports.arrivals(CODE))
        refusals = emulator.imports.refusals(CODE)
    finally:
        store.close()

    assert report.batches_accepted == 20 and report.retries == 0
    assert refusals == [] and len(arrivals) == 20
    windows = [sum(1 for u in arrivals if t <= u < t + 1.0) for t in arrivals]
    assert max(windows) <= 5
    achieved = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    assert achieved >= 0.95 * 5
    assert report.max_requests_in_any_1s_window <= 5


@pytest.mark.parametrize("http_429", [False, True])
async def test_refusals_for_rate_slow_the_budget_and_honour_the_wait(
    http_429: bool,
) -> None:
    """Against a 2/s emulator, a 10/s budget is refused, slows down and waits.

    After each refusal nothing arrives before the wait is over (Retry-After
    for 429, one second for error 10), and every batch is accepted in the end.
    """
    store = empty_store("2/s", rate_limit_http=http_429)
    try:
        async with serve(store) as (url, emulator):
            report = await import_items(
                connector(url),
                products(16),
                ImportOptions(
                    rate=RateBudget(10, 1.0), concurrency=1, batch_size=2, direct=True
                ),
                table="products",
            )
        arrivals = emulator.imports.arrivals(CODE)
        refusals = emulator.imports.refusals(CODE)
    finally:
        store.close()

    assert report.batches_accepted == 8
    assert refusals and report.slowdowns >= 1
    assert report.retries == len(refusals)
    events = sorted(arrivals + refusals)
    for refused in refusals:
        following = [t for t in events if t > refused]
        assert not following or following[0] - refused >= 0.95
    assert max_in_any_window(arrivals) <= 2


@asynccontextmanager
async def fake_api(answers: list[Any]) -> AsyncIterator[tuple[str, list[float]]]:
    """A server answering POSTs from ``answers`` in turn (the last one repeats).

    An answer is a JSON body, an int (that HTTP status) or "reset" (the
    connection is dropped after the body was read).
    """
    calls: list[float] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        await request.read()
        calls.append(time.monotonic())
        answer = answers[min(len(calls), len(answers)) - 1]
        if answer == "reset":
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if isinstance(answer, int):
            return web.Response(status=answer)
        return web.json_response(answer)

    app = web.Application()
    app.router.add_post("/", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/", calls
    finally:
        await runner.cleanup()


ACCEPTED = {"input_response": {"result": 1, "errors": [], "new_items": 2}}


@pytest.mark.parametrize("failure", [500, "reset", {"version": "1.18"}, "not json"])
async def test_a_batch_without_a_usable_answer_is_sent_again(failure: Any) -> None:
    """No answer, 5xx or a body that is no import answer: replaying is harmless."""
    if failure == "not json":
        failure = ["not", "an", "object"]
    async with fake_api([failure, ACCEPTED]) as (url, calls):
        report = await import_items(
            connector(url),
            products(2),
            ImportOptions(retry=FAST_RETRY, rate=None),
            table="products",
        )
    assert len(calls) == 2
    assert (report.batches_accepted, report.retries, report.requests) == (1, 1, 2)


@pytest.mark.parametrize(
    "answer",
    [
        {"input_response": {"result": 2, "errors": ["connector refuses new items"]}},
        {"version": "1.18", "error": 1, "error_message": "Validation error"},
    ],
)
async def test_a_refused_batch_is_not_sent_again(answer: Any, tmp_path: Path) -> None:
    """result 2 or API error 1: one POST, every item to the rejects file."""
    rejects = tmp_path / "rejects.jsonl"
    async with fake_api([answer]) as (url, calls):
        report = await import_items(
            connector(url),
            products(3),
            ImportOptions(rate=None),
            table="products",
            rejects=rejects,
        )
    assert len(calls) == 1
    assert (report.batches_refused, report.items_rejected) == (1, 3)
    assert len(rejects.read_bytes().splitlines()) == 3


async def test_an_authentication_error_stops_the_run() -> None:
    """Error 4: no batch can succeed; the run raises it at once."""
    from bulkflow import AuthenticationError

    answer = {"error": 4, "error_message": "Invalid codification key"}
    async with fake_api([answer]) as (url, calls):
        with pytest.raises(AuthenticationError, match="check the connector's secret"):
            await import_items(
                connector(url), products(3), ImportOptions(rate=None), table="products"
            )
    assert len(calls) == 1


async def test_a_tracking_url_that_never_ends_leaves_the_batch_unconfirmed(
    tmp_path: Path,
) -> None:
    """Past the deadline the batch is unconfirmed, and the next run sends it again."""
    store = empty_store(tracking_polls=10_000)
    ledger = tmp_path / "ledger.sqlite"
    try:
        async with serve(store) as (url, _):
            for _ in range(2):
                report = await import_items(
                    connector(url),
                    products(3),
                    ImportOptions(tracking_timeout=0.2, poll_interval=0.05),
                    table="products",
                    ledger=ledger,
                )
                assert (report.batches_unconfirmed, report.batches_skipped) == (1, 0)
    finally:
        store.close()

    assert "tracking ended in timeout" in report.warnings[0]


async def test_a_tracking_url_off_the_host_is_refused(store: CatalogStore) -> None:
    """The SDK's same-host rule: an import answer cannot send us elsewhere."""
    store.put_connector(
        CODE,
        SECRET,
        kind="import",
        options={"tracking_origin": "http://127.0.0.2:9"},
    )
    async with serve(store) as (url, _):
        with pytest.raises(UnsafeURL, match="status_tracking URL"):
            await import_items(connector(url), products(1), table="products")


@pytest.mark.parametrize(("encoding", "compress"), [("json", False), ("form", True)])
async def test_json_and_gzip_imports_land_the_same(
    store: CatalogStore, encoding: Any, compress: bool
) -> None:
    """Either body gives the same catalog as a plain form."""
    async with serve(store) as (url, _):
        report = await import_items(
            connector(url),
            products(30),
            ImportOptions(
                batch_size=7, encoding=encoding, gzip=compress, poll_interval=0.01
            ),
            table="products",
        )
    assert report.complete and report.items_new == 30
    assert field(store, "products", "P-0029", "product_name_en") == "Item 29"


async def test_an_import_cancelled_halfway_resumes_with_the_rest(
    tmp_path: Path,
) -> None:
    """Cancelled after 8 accepted batches, the next run skips exactly those."""
    ledger = tmp_path / "ledger.sqlite"
    store = empty_store()
    try:
        async with serve(store) as (url, emulator):
            with anyio.CancelScope() as scope:

                def stop(report: Any) -> None:
                    if report.batches_accepted >= 8:
                        scope.cancel()

                await import_items(
                    connector(url),
                    products(300),
                    ImportOptions(
                        batch_size=10, concurrency=2, rate="40/s", direct=True
                    ),
                    table="products",
                    ledger=ledger,
                    progress=stop,
                )
            assert scope.cancelled_caught
            accepted = Ledger(ledger).statistics().accepted
            first_calls = len(emulator.imports.arrivals(CODE))
            report = await import_items(
                connector(url),
                products(300),
                ImportOptions(batch_size=10, rate=None, direct=True),
                table="products",
                ledger=ledger,
            )
            second_calls = len(emulator.imports.arrivals(CODE)) - first_calls
        resumed = catalog(store, "products")
    finally:
        store.close()
    assert 8 <= accepted < 30
    assert report.batches_skipped == accepted
    assert report.batches_sent == second_calls == 30 - accepted
    assert resumed == await clean_import(products(300))


async def clean_import(found: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The products catalog after one uninterrupted import of ``found``."""
    store = empty_store()
    try:
        async with serve(store) as (url, _):
            await import_items(
                connector(url),
                found,
                ImportOptions(rate=None, direct=True),
                table="products",
            )
        return catalog(store, "products")
    finally:
        store.close()


# -- the command ----------------------------------------------------------------


def test_default_files_are_named_after_connector_source_and_table() -> None:
    """Rejects and ledger files sit side by side, one pair per source."""
    rejects = default_rejects("CN 1", "sqlite:///data/luma.sqlite", "products")
    assert rejects == Path("import-CN_1-luma-products.rejects.jsonl")
    assert ledger_beside(rejects) == Path("import-CN_1-luma-products.ledger.sqlite")


def command(url: str, source: Path, workdir: Path, *extra: str) -> list[str]:
    """The ``bulkflow import`` command line for ``source`` into the test connector."""
    target = ["--url", url, "--code", CODE, "--secret-env", "BULKFLOW_TEST_SECRET"]
    files = ["--rejects", str(workdir / "rejects.jsonl")]
    files += ["--report", str(workdir / "report.json")]
    source_args = ["--from", str(source), "--table", "products"]
    return [
        sys.executable,
        "-m",
        "bulkflow",
        "import",
        *target,
        *source_args,
        *files,
        *extra,
    ]


async def run_command(argv: list[str], workdir: Path) -> int:
    """Run a command to its end; return its exit code."""
    env = {**os.environ, "BULKFLOW_TEST_SECRET": SECRET}
    with (workdir / "stderr.txt").open("ab") as stderr:
        async with await anyio.open_process(
            argv, env=env, stdout=stderr, stderr=stderr, cwd=workdir
        ) as process:
            return await process.wait()


async def test_an_import_killed_with_sigkill_resumes_with_the_rest(
    tmp_path: Path,
) -> None:
    """``bulkflow import`` killed after 12 calls: the rerun skips what was accepted."""
    source = write_jsonl(tmp_path / "items.jsonl", products(400))
    argv = command("", source, tmp_path, "--batch-size", "10", "--direct")
    store = empty_store()
    try:
        async with serve(store) as (url, emulator):
            argv[argv.index("--url") + 1] = url
            env = {**os.environ, "BULKFLOW_TEST_SECRET": SECRET}
            async with await anyio.open_process(
                [*argv, "--rate", "20/s", "--concurrency", "2"], env=env, cwd=tmp_path
            ) as killed:
                with anyio.fail_after(60):
                    while len(emulator.imports.arrivals(CODE)) < 12:
                        assert killed.returncode is None, "the import ended early"
                        await anyio.sleep(0.02)
                killed.kill()
                assert await killed.wait() != 0
            killed_calls = len(emulator.imports.arrivals(CODE))
            accepted = Ledger(tmp_path / "rejects.ledger.sqlite").statistics().accepted
            assert await run_command([*argv, "--rate", "none"], tmp_path) == 0
            rerun_calls = len(emulator.imports.arrivals(CODE)) - killed_calls
        resumed = catalog(store, "products")
    finally:
        store.close()
    report = orjson.loads((tmp_path / "report.json").read_bytes())

    assert 0 < accepted < 40
    assert report["batches"]["skipped"] == accepted
    assert report["batches"]["sent"] == rerun_calls == 40 - accepted
    assert resumed == await clean_import(products(400))


async def test_the_command_exits_3_when_items_are_refused(
    store: CatalogStore, tmp_path: Path
) -> None:
    """Rejected items: exit 3, the rejects file and the report say which."""
    found = products(4)
    found[1]["colour"] = "red"
    source = write_jsonl(tmp_path / "items.jsonl", found)
    async with serve(store) as (url, _):
        argv = command(url, source, tmp_path, "--poll-interval", "0.05")
        assert await run_command(argv, tmp_path) == 3
    report = orjson.loads((tmp_path / "report.json").read_bytes())
    assert report["items"]["rejected"] == 1 and report["items"]["new"] == 3
    assert "items were refused" in (tmp_path / "stderr.txt").read_text()
    assert len((tmp_path / "rejects.jsonl").read_bytes().splitlines()) == 1


# -- found by the break test ------------------------------------------------------


def test_items_before_an_oversized_one_stay_to_be_sent() -> None:
    """An item too large to send refuses itself only: the batch before it stays."""
    batcher = Batcher(max_items=30, max_batch_bytes=4096)
    for index in range(10):
        assert batcher.add(item(f"P-{index}")) is None
    with pytest.raises(DataError, match="more than --max-batch-bytes"):
        batcher.add(item("P-big", product_name_en="x" * 10_000))

    final = batcher.flush()

    assert final is not None and len(final.items) == 10


def test_brackets_in_names_are_refused_for_forms() -> None:
    """A field or table named with '[' or ']' would change the decoded shape."""
    batcher = Batcher()
    with pytest.raises(DataError, match=r"'\[' or '\]'"):
        batcher.add(item("P-1", **{"product_name_en][REF": "evil"}))
    with pytest.raises(DataError, match=r"'\[' or '\]'"):
        batcher.add(ImportItem("catalogue][x", {"REF": "C-1"}))


async def test_the_same_import_after_a_delete_is_sent_again(
    store: CatalogStore, tmp_path: Path
) -> None:
    """A completed import leaves nothing to skip: import, delete, import again."""
    ledger = tmp_path / "ledger.sqlite"
    found = products(3)
    deletions = [{**entry, "_delete": True} for entry in found]
    options = ImportOptions(batch_size=10, poll_interval=0.01)
    async with serve(store) as (url, _):
        first = await import_items(
            connector(url), found, options, table="products", ledger=ledger
        )
        await import_items(
            connector(url), deletions, options, table="products", ledger=ledger
        )
        gone = set(catalog(store, "products"))
        again = await import_items(
            connector(url), found, options, table="products", ledger=ledger
        )

    assert first.items_new == 3 and gone == set()
    assert again.batches_skipped == 0 and again.batches_sent == 1
    assert set(catalog(store, "products")) == {"P-0000", "P-0001", "P-0002"}


async def test_a_ledger_does_not_skip_batches_for_another_service(
    tmp_path: Path,
) -> None:
    """The ledger's entries belong to one service: another host gets everything."""
    ledger = Ledger(tmp_path / "ledger.sqlite")
    batcher = Batcher()
    batcher.add(item("P-1"))
    batch = batcher.flush()
    assert batch is not None
    key_a = Ledger.key("http://a:80 CN", batch)
    key_b = Ledger.key("http://b:80 CN", batch)
    ledger.record_sent(key_a, "http://a:80 CN", batch)

    assert key_a != key_b
    assert ledger.forget("http://a:80 CN") == 1
    ledger.close()


def test_an_export_page_for_an_answer_names_the_wrong_connector() -> None:
    """Importing into an export connector stops at once with the fix."""
    from bulkflow import UsageError
    from bulkflow.import_._outcome import parse_input_response

    page = {"version": "1.18", "time": 1, "data_schema": {}, "data": {}}
    with pytest.raises(UsageError, match="export connector.*import connector"):
        parse_input_response(page, where="batch 1")


@pytest.mark.parametrize("encoding", ["form", "json"])
def test_flags_count_in_the_byte_bound(encoding: Any) -> None:
    """With flags (--direct), every body, flags and all, stays within the bound."""
    flags = {"input_data_directly": "1", "get_affected_ids": "1"}
    found = [item(f"P-{i}", name="n" * (i % 50)) for i in range(400)]
    batcher = Batcher(max_batch_bytes=2048, encoding=encoding, flags=flags)

    batches = batches_of(batcher, found)

    assert len(batches) > 5
    assert max(len(batch.body(flags)) for batch in batches) <= 2048
    assert sum(len(batch.items) for batch in batches) == 400


def test_a_jsonl_integer_beyond_64_bits_stays_an_integer(tmp_path: Path) -> None:
    """orjson would read it as a float; the source keeps every digit."""
    path = tmp_path / "items.jsonl"
    path.write_text(
        '{"table": "products", "item": {"REF": "P-1", "ean": 123456789012345678901}}\n'
        '{"table": "products", "item": {"REF": "P-2", "ean": 12}}\n'
    )

    found = list(JsonlSource(path).iter_items())

    assert [i.fields["ean"] for i in found] == [123456789012345678901, 12]
    assert type(found[0].fields["ean"]) is int


@pytest.mark.parametrize("encoding", ["form", "json"])
def test_an_integer_beyond_64_bits_travels_and_is_keyed(encoding: Any) -> None:
    """orjson cannot write it; the batch's body and ledger digest still can."""
    wide = 123456789012345678901
    batcher = Batcher(encoding=encoding)
    [batch] = batches_of(batcher, [item("P-1", ean=wide)])

    body = batch.body({"input_data_directly": "1"})
    # The standard library reads every digit (orjson would read a float).
    sent = decode_form(body.decode()) if encoding == "form" else json.loads(body)
    assert str(sent["input_data"]["products"][0]["ean"]) == str(wide)
    assert len(batch.digest) == 64
