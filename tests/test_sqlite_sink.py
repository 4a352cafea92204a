"""The SQLite sink on its own: rows of the §2.7 example page, written directly."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

from bulkflow._exceptions import RowDecodeError, SinkError
from bulkflow.protocol import schemas
from bulkflow.sinks import Checkpoint, SQLiteSink

PAGE = orjson.loads((Path(__file__).parent / "data" / "example_page.json").read_bytes())
SCHEMAS = schemas(PAGE["data_schema"], PAGE.get("data_schema_info"))


def products(*rows: list[Any]) -> list[list[Any]]:
    """Copies of ``rows`` (the sink turns list values into JSON text in place)."""
    copies: list[list[Any]] = orjson.loads(orjson.dumps(list(rows)))
    return copies


def write(db: Path, rows: list[list[Any]]) -> None:
    """Write ``rows`` of the products table as one page and commit it."""
    sink = SQLiteSink(db)
    try:
        sink.begin_page("CN1", 1, SCHEMAS)
        sink.write("products", rows, first_index=0)
        sink.commit_page(Checkpoint("CN1", cursor=1))
    finally:
        sink.close()


def stored(db: Path) -> dict[Any, dict[str, Any]]:
    with sqlite3.connect(db) as connection:
        connection.row_factory = sqlite3.Row
        rows = connection.execute('SELECT * FROM "products"').fetchall()
    return {row["ID"]: dict(row) for row in rows}


def test_rows_are_stored_with_lists_as_json_text(tmp_path: Path) -> None:
    """Every column of the example's products lands, lists and media as JSON."""
    db = tmp_path / "replica.sqlite"
    wire = PAGE["data"]["products"]
    write(db, products(*wire))

    rows = stored(db)
    first = wire[0]
    assert rows[first[1]]["product_reference"] == first[3]
    assert orjson.loads(rows[first[1]]["ID_catalogue"]) == first[2]
    assert orjson.loads(rows[first[1]]["product_image"]) == first[7]
    assert len(rows) == len([row for row in wire if row[0] != "D"])


def test_an_integer_beyond_64_bits_is_a_sink_error_naming_the_table(
    tmp_path: Path,
) -> None:
    """SQLite stores 64-bit integers; a wider one is refused clearly, not raised raw."""
    db = tmp_path / "replica.sqlite"
    row = products(PAGE["data"]["products"][0])[0]
    row[-1] = 2**63

    with pytest.raises(SinkError, match="products.*64 bits"):
        write(db, [row])
    with sqlite3.connect(db) as connection:
        tables = connection.execute("SELECT name FROM sqlite_master").fetchall()
    assert ("products",) not in tables  # the page, table and all, rolled back


def test_a_row_of_the_wrong_width_names_its_index(tmp_path: Path) -> None:
    """A row shorter than the schema is refused with its table and index."""
    db = tmp_path / "replica.sqlite"
    good = products(PAGE["data"]["products"][0])[0]

    with pytest.raises(RowDecodeError, match=r"'products', row 1\b"):
        write(db, [good, good[:-1]])


def test_a_page_rolled_back_after_creating_tables_can_be_written_again(
    tmp_path: Path,
) -> None:
    """A retried first page (its tables rolled back with it) writes, not fails."""
    db = tmp_path / "replica.sqlite"
    sink = SQLiteSink(db)
    try:
        sink.begin_page("CN1", 1, SCHEMAS)
        sink.write("products", products(*PAGE["data"]["products"]), first_index=0)
        sink.rollback_page()
        sink.begin_page("CN1", 2, SCHEMAS)
        sink.write("products", products(*PAGE["data"]["products"]), first_index=0)
        sink.commit_page(Checkpoint("CN1", cursor=1))
    finally:
        sink.close()

    wire = PAGE["data"]["products"]
    assert len(stored(db)) == len([row for row in wire if row[0] != "D"])


def test_a_list_where_the_schema_says_string_is_kept_as_json(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A feed that breaks its own schema loses nothing: the list is JSON text."""
    db = tmp_path / "replica.sqlite"
    row = products(PAGE["data"]["products"][0])[0]
    row[3] = ["not", "a", "reference"]  # product_reference is a string column

    write(db, [row])

    assert orjson.loads(stored(db)[row[1]]["product_reference"]) == [
        "not",
        "a",
        "reference",
    ]
    assert "product_reference" in caplog.text


def test_a_list_nested_past_orjsons_limit_is_stored_or_refused_clearly(
    tmp_path: Path,
) -> None:
    """Nesting orjson cannot write is written by the standard library instead."""
    db = tmp_path / "replica.sqlite"
    row = products(PAGE["data"]["products"][0])[0]
    deep: list[Any] = [1]
    for _ in range(300):
        deep = [deep]
    row[6] = deep  # product_tags, a list column

    write(db, [row])

    assert stored(db)[row[1]]["product_tags"].startswith("[" * 301 + "1")
