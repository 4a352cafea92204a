"""The export path end to end: emulator → HTTP → streaming parser → SQLite."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from bulkflow import (
    AuthenticationError,
    ClockError,
    ExportConnector,
    RunReport,
    SinkError,
    SQLiteSink,
    UnsafeURL,
    export,
)
from bulkflow.emulator import (
    DEMO_CODE,
    DEMO_SECRET,
    CatalogStore,
    EmulatorConfig,
    open_emulator,
)
from bulkflow.export._parser import WHOLE_PAGE_BYTES
from bulkflow.sinks import Checkpoint

pytestmark = pytest.mark.anyio

LUMA_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "magento-luma"


def connector(url: str, page_size: int = 500, **kwargs: Any) -> ExportConnector:
    """The demo export connector at ``url``."""
    return ExportConnector(
        url=url, code=DEMO_CODE, secret=DEMO_SECRET, page_size=page_size, **kwargs
    )


def read_csv(name: str) -> list[dict[str, str]]:
    """Every row of a Luma fixture CSV."""
    with (LUMA_DIR / name).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def table(db_path: Path, name: str) -> list[dict[str, Any]]:
    """Every row of a replica table as a dict, without bulkflow's bookkeeping."""
    db = sqlite3.connect(db_path)
    db.row_factory = sqlite3.Row
    rows = db.execute(f'SELECT * FROM "{name}" ORDER BY "ID"').fetchall()
    db.close()
    return [
        {key: row[key] for key in row.keys() if not key.startswith("_bulkflow")}
        for row in rows
    ]


def by_ref(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Rows keyed by their REF column."""
    return {row["REF"]: row for row in rows}


async def run_export(
    url: str, path: Path, page_size: int = 500, **options: Any
) -> RunReport:
    """Export the demo connector at ``url`` into the SQLite file ``path``."""
    sink = SQLiteSink(path)
    try:
        return await export(connector(url, page_size), sink, **options)
    finally:
        sink.close()


async def test_luma_export_matches_the_csvs(luma_url: str, tmp_path: Path) -> None:
    """Counts, names, prices, parents and categories equal what the CSVs say."""
    db = tmp_path / "luma.sqlite"
    report = await run_export(luma_url, db)

    configurable = read_csv("configurable_products.csv")
    parents = [row for row in configurable if row["product_type"] == "configurable"]
    variants = [row for row in configurable if row["product_type"] == "simple"]
    simple = [
        row
        for path in sorted(LUMA_DIR.glob("simple_products_*.csv"))
        for row in read_csv(path.name)
    ]
    category_paths = {
        (row["path"], row["name"])
        for name in ("catalog_categories.csv", "configurable_categories.csv")
        for row in read_csv(name)
    }
    products = by_ref(table(db, "products"))
    formats = by_ref(table(db, "product_formats"))
    categories = table(db, "catalogue")

    assert report.action == "refresh"
    assert len(products) == len(parents) + len(simple) == 191
    assert len(formats) == len(variants) == 1847
    assert len(categories) == len(category_paths) == 32
    for row in parents[::10] + simple[::5]:
        assert products[row["sku"]]["product_name_en"] == row["name"]
        assert float(products[row["sku"]]["price"]) == float(row["price"])
    for row in variants[::50]:
        assert formats[row["sku"]]["format_name_en"] == row["name"]
        assert float(formats[row["sku"]]["price"]) == float(row["price"])


async def test_variants_point_at_their_configurable_parent(
    luma_url: str, tmp_path: Path
) -> None:
    """Each variant's ID_products is the parent whose variations list its sku."""
    db = tmp_path / "luma.sqlite"
    await run_export(luma_url, db)
    expected: dict[str, str] = {}
    for row in read_csv("configurable_products.csv"):
        for variation in filter(None, row["configurable_variations"].split("|")):
            pairs = dict(part.split("=", 1) for part in variation.split(","))
            expected[pairs["sku"]] = row["sku"]
    sku_of_product = {row["ID"]: row["REF"] for row in table(db, "products")}

    formats = table(db, "product_formats")

    assert len(expected) == len(formats)
    for row in formats:
        assert sku_of_product[row["ID_products"]] == expected[row["REF"]]


async def test_categories_form_the_tree_of_the_csvs(
    luma_url: str, tmp_path: Path
) -> None:
    """ID_PARENT rebuilds each category's path; products list their categories."""
    db = tmp_path / "luma.sqlite"
    await run_export(luma_url, db)
    rows = table(db, "catalogue")
    by_id = {row["ID"]: row for row in rows}

    def path_of(row: dict[str, Any]) -> str:
        names = []
        while row["ID_PARENT"]:
            row = by_id[row["ID_PARENT"]]
            names.append(row["category_name_en"])
        return "/".join(reversed(names))

    expected = {
        (row["path"], row["name"])
        for name in ("catalog_categories.csv", "configurable_categories.csv")
        for row in read_csv(name)
    }
    assert {(path_of(row), row["category_name_en"]) for row in rows} == expected

    # A configurable product's "Default Category/A/B" paths, root dropped.
    hoodie = next(
        row for row in read_csv("configurable_products.csv") if row["sku"] == "MH01"
    )
    wanted = {
        tuple(path.split("/")[1:])
        for path in hoodie["categories"].split(",")
        if path != "Default Category"
    }
    product = by_ref(table(db, "products"))["MH01"]
    got = {
        tuple([*path_of(by_id[id_]).split("/"), by_id[id_]["category_name_en"]])
        for id_ in orjson.loads(product["ID_catalogue"])
    }
    assert got == wanted


@pytest.mark.parametrize(
    "whole_page_bytes", [0, WHOLE_PAGE_BYTES], ids=["streamed", "whole"]
)
@pytest.mark.parametrize("page_size", [1, 7, 500, 5000])
async def test_page_sizes_give_identical_replicas(
    luma_url: str, tmp_path: Path, page_size: int, whole_page_bytes: int
) -> None:
    """Pages of 1, 7, 500 or 5,000 rows leave the same rows in every table.

    The reference streams one page of everything; the paged runs either
    stream too or read each (small) page whole with orjson.
    """
    reference = tmp_path / "whole.sqlite"
    await run_export(luma_url, reference, page_size=100_000, whole_page_bytes=0)
    db = tmp_path / f"paged-{page_size}.sqlite"

    report = await run_export(
        luma_url, db, page_size=page_size, whole_page_bytes=whole_page_bytes
    )

    assert report.pages == -(-2070 // page_size)
    for name in ("catalogue", "products", "product_formats"):
        assert table(db, name) == table(reference, name)


async def test_second_run_is_an_empty_update(luma_url: str, tmp_path: Path) -> None:
    """A run after a complete one sends the cursor and receives nothing."""
    db = tmp_path / "luma.sqlite"
    first = await run_export(luma_url, db)

    second = await run_export(luma_url, db)

    assert second.action == "update"
    assert second.previous_cursor == first.cursor
    assert sum(second.upserts.values()) == sum(second.deletes.values()) == 0
    assert len(table(db, "products")) == 191


async def test_update_applies_changes_and_deletions(
    luma_store: CatalogStore, luma_url: str, tmp_path: Path
) -> None:
    """Rows changed after the cursor arrive as M rows, removed ones as D rows."""
    db = tmp_path / "luma.sqlite"
    first = await run_export(luma_url, db)
    assert first.cursor is not None
    product_id, values = next(luma_store.iter_items("products"))
    values[2] = "Renamed hoodie"  # product_name_en follows ID_catalogue and REF
    luma_store.upsert("products", product_id, values, at=first.cursor + 1)
    luma_store.delete("product_formats", 5, at=first.cursor + 1)

    second = await run_export(luma_url, db)

    assert second.action == "update"
    assert second.upserts == {"products": 1}
    assert second.deletes == {"product_formats": 1}
    names = {row["ID"]: row["product_name_en"] for row in table(db, "products")}
    assert names[product_id] == "Renamed hoodie"
    assert 5 not in {row["ID"] for row in table(db, "product_formats")}


async def test_wrong_secret_names_the_key_and_the_fix(
    luma_url: str, tmp_path: Path
) -> None:
    """Error 4 becomes an AuthenticationError that says to check the secret."""
    sink = SQLiteSink(tmp_path / "x.sqlite")
    bad = ExportConnector(url=luma_url, code=DEMO_CODE, secret="not-the-secret")
    with pytest.raises(AuthenticationError, match=r"API error 4 .*secret") as info:
        await export(bad, sink)
    assert info.value.code == 4
    assert "not-the-secret" not in str(info.value)
    sink.close()


async def test_unknown_connector_code_is_error_2(luma_url: str, tmp_path: Path) -> None:
    """A code the service does not know is error 2, naming --code."""
    sink = SQLiteSink(tmp_path / "x.sqlite")
    bad = ExportConnector(url=luma_url, code="CN_NOPE", secret=DEMO_SECRET)
    with pytest.raises(AuthenticationError, match=r"API error 2 .*--code"):
        await export(bad, sink)
    sink.close()


@pytest.mark.parametrize(("offset", "code"), [(600, 13), (-600, 12)])
async def test_clock_errors_are_retried_once_then_explained(
    luma_store: CatalogStore, tmp_path: Path, offset: int, code: int
) -> None:
    """A server whose clock is 10 minutes off gets one re-signed retry, then advice."""
    config = EmulatorConfig(clock_offset=offset)
    sink = SQLiteSink(tmp_path / "x.sqlite")
    async with open_emulator(luma_store, config=config) as url:
        run = connector(url)
        with pytest.raises(ClockError, match=rf"API error {code} .*clock") as info:
            await export(run, sink)
    assert info.value.code == code
    assert sink.load_checkpoint(DEMO_CODE) == Checkpoint(DEMO_CODE)
    sink.close()


async def test_next_page_on_another_host_is_refused(
    luma_store: CatalogStore, tmp_path: Path
) -> None:
    """A next_page URL that leaves the connector's host stops the run."""
    config = EmulatorConfig(round_pages=False, next_page_origin="http://elsewhere.test")
    sink = SQLiteSink(tmp_path / "x.sqlite")
    async with open_emulator(luma_store, config=config) as url:
        with pytest.raises(UnsafeURL, match=r"elsewhere.test/\?… is not on the conn"):
            await export(connector(url, page_size=1000), sink)
    assert sink.load_checkpoint(DEMO_CODE) == Checkpoint(DEMO_CODE)
    sink.close()


class FailingSink(SQLiteSink):
    """A SQLite sink whose writes fail from page ``fail_at`` on."""

    def __init__(self, path: Path, fail_at: int) -> None:
        super().__init__(path)
        self.pages = 0
        self.fail_at = fail_at

    def begin_page(self, *args: Any) -> None:
        """Count pages."""
        self.pages += 1
        super().begin_page(*args)

    def write(self, table: str, rows: list[list[Any]], *, first_index: int) -> None:
        """Write, or fail once the chosen page is reached."""
        super().write(table, rows, first_index=first_index)
        if self.pages >= self.fail_at:
            raise SinkError("disk full (simulated)")


async def test_sink_failure_keeps_committed_pages_and_resumes(
    luma_url: str, tmp_path: Path
) -> None:
    """A failing write rolls back its page only; the next run resumes after it."""
    db = tmp_path / "luma.sqlite"
    failing = FailingSink(db, fail_at=3)
    with pytest.raises(SinkError, match="disk full"):
        await export(connector(luma_url, page_size=300), failing)
    failing.close()
    stored = SQLiteSink(db).load_checkpoint(DEMO_CODE)
    counts = sum(
        len(table(db, name)) for name in ("catalogue", "products", "product_formats")
    )

    report = await run_export(luma_url, db, page_size=300)

    assert stored.pages_done == 2 and stored.cursor is None
    assert counts == 600
    assert report.resumed and report.pages_skipped == 2
    assert report.pages == -(-2070 // 300) - 2
    assert len(table(db, "product_formats")) == 1847


async def test_cancelling_a_run_keeps_whole_pages_only(
    luma_url: str, tmp_path: Path
) -> None:
    """A run cancelled mid-way leaves whole pages; resuming completes the replica."""
    db = tmp_path / "luma.sqlite"
    sink = SQLiteSink(db)
    with anyio.CancelScope() as scope:

        def progress(report: RunReport) -> None:
            if report.pages >= 3:
                scope.cancel()  # takes effect at the run's next await

        await export(connector(luma_url, page_size=7), sink, progress=progress)
    assert scope.cancelled_caught
    sink.close()
    rows_after_cancel = sum(
        len(table(db, name)) for name in ("catalogue", "products", "product_formats")
    )
    stored = SQLiteSink(db).load_checkpoint(DEMO_CODE)

    report = await run_export(luma_url, db, page_size=7)

    assert rows_after_cancel == 7 * stored.pages_done
    assert report.resumed and report.pages_skipped == stored.pages_done
    assert len(table(db, "product_formats")) == 1847


@pytest.mark.parametrize("read_ahead", [True, False])
async def test_read_ahead_opens_each_next_page_early(
    luma_url: str, tmp_path: Path, read_ahead: bool
) -> None:
    """With read-ahead every page after the first comes from an early request."""
    sink = SQLiteSink(tmp_path / "r.sqlite")
    try:
        report = await export(
            connector(luma_url, page_size=300), sink, read_ahead=read_ahead
        )
    finally:
        sink.close()

    pages = -(-2070 // 300)
    assert report.pages == pages
    assert report.pages_read_ahead == (pages - 1 if read_ahead else 0)
    assert len(table(tmp_path / "r.sqlite", "product_formats")) == 1847
