"""Specification tests for the deterministic synthetic catalog generator."""

from __future__ import annotations

import hashlib
import inspect
import itertools
import json
import os
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import pytest

from bulkflow.emulator._source import CatalogSource, SourceRow
from bulkflow.emulator._synthetic import load_synthetic

TABLES = ("catalogue", "products", "product_formats")


def column_names(layout: list[Any]) -> list[str]:
    """The column names of a data_schema list, media dicts by their key."""
    return [entry if isinstance(entry, str) else next(iter(entry)) for entry in layout]


def as_dicts(source: CatalogSource) -> dict[str, dict[int, dict[str, Any]]]:
    """Rows by table and ID, as dicts keyed by column name."""
    tables: dict[str, dict[int, dict[str, Any]]] = {t: {} for t in source.tables}
    for table, item_id, values in source.rows():
        names = column_names(source.data_schema[table])[2:]
        tables[table][item_id] = dict(zip(names, values, strict=True))
    return tables


def wire_bytes(row: SourceRow) -> bytes:
    """A row as compact UTF-8 JSON, the way the emulator's store keeps it."""
    _, item_id, values = row
    text = json.dumps(
        ["M", item_id, *values], ensure_ascii=False, separators=(",", ":")
    )
    return text.encode()


def digest(n: int, seed: int) -> str:
    """A hash of every row of one synthetic catalog."""
    rows = load_synthetic(n, seed=seed).rows()
    return hashlib.sha256(b"\n".join(map(repr_bytes, rows))).hexdigest()


def repr_bytes(row: SourceRow) -> bytes:
    """A row as sorted-key JSON bytes, for hashing."""
    return json.dumps(row, sort_keys=True, ensure_ascii=False).encode()


def test_same_seed_same_rows() -> None:
    """Two catalogs from the same n and seed yield identical rows."""
    first = load_synthetic(600, seed=7)
    second = load_synthetic(600, seed=7)
    assert list(first.rows()) == list(second.rows())
    assert list(first.rows()) == list(first.rows())
    assert first.data_schema == second.data_schema


def test_other_seed_other_rows() -> None:
    """A different seed changes the rows but not the counts or the schema."""
    first = load_synthetic(600, seed=1)
    second = load_synthetic(600, seed=2)
    assert list(first.rows()) != list(second.rows())
    assert first.data_schema == second.data_schema
    assert Counter(t for t, _, _ in first.rows()) == Counter(
        t for t, _, _ in second.rows()
    )


def test_rows_do_not_depend_on_the_process() -> None:
    """A fresh interpreter with another hash seed yields the same bytes."""
    # The child imports this module to hash with the very same function.
    here = os.path.dirname(os.path.abspath(__file__))
    code = f"import sys; sys.path.insert(0, {here!r}); import test_synthetic as t;"
    code += " print(t.digest(300, 5))"
    env = {**os.environ, "PYTHONHASHSEED": "12345", "TZ": "Pacific/Auckland"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert result.stdout.strip() == digest(300, 5)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 49, 50, 51, 1000, 4321])
def test_total_is_exactly_n(n: int) -> None:
    """The three tables together hold exactly n items with IDs 1..count."""
    counts = Counter(table for table, _, _ in load_synthetic(n).rows())
    assert sum(counts.values()) == n
    if n >= 1:
        assert counts["catalogue"] >= 1
    if n >= 2:
        assert counts["products"] >= 1
    ids: dict[str, list[int]] = {table: [] for table in TABLES}
    for table, item_id, _ in load_synthetic(n).rows():
        ids[table].append(item_id)
    for table in TABLES:
        assert ids[table] == list(range(1, counts[table] + 1))


def test_proportions() -> None:
    """About n/50 categories, n/4 products and the rest variants."""
    counts = Counter(table for table, _, _ in load_synthetic(10_000).rows())
    assert counts["catalogue"] == 10_000 // 50
    assert counts["products"] == 10_000 // 4
    assert counts["product_formats"] == 10_000 - 200 - 2500


def test_empty_catalog_keeps_its_schema() -> None:
    """n=0 gives no rows but still describes the three tables."""
    source = load_synthetic(0)
    assert list(source.rows()) == []
    assert source.tables == TABLES
    assert set(source.data_schema) == set(TABLES)


def test_rows_match_schema() -> None:
    """Every row has one value per data_schema column after STATUS and ID."""
    source = load_synthetic(800)
    for table, _, values in source.rows():
        assert len(values) == len(source.data_schema[table]) - 2


def test_references_resolve_and_tree_is_shallow() -> None:
    """Parents, category lists and product links point at existing rows."""
    rows = as_dicts(load_synthetic(20_000, seed=3))
    categories, products = rows["catalogue"], rows["products"]
    for category in categories.values():
        assert category["ID_PARENT"] == 0 or category["ID_PARENT"] in categories
    for item_id in categories:
        depth, parent = 1, categories[item_id]["ID_PARENT"]
        while parent:
            depth, parent = depth + 1, categories[parent]["ID_PARENT"]
        assert depth <= 4
    for product in products.values():
        links = product["ID_catalogue"]
        assert 1 <= len(links) <= 3
        assert len(set(links)) == len(links)
        assert all(link in categories for link in links)
    for variant in rows["product_formats"].values():
        assert variant["ID_products"] in products


def test_tree_has_several_levels() -> None:
    """A mid-sized catalog uses more than one level of categories."""
    categories = as_dicts(load_synthetic(20_000))["catalogue"]
    roots = [c for c in categories.values() if c["ID_PARENT"] == 0]
    assert 1 <= len(roots) < len(categories)


def test_average_variant_row_size() -> None:
    """A variant row averages 400-600 bytes of JSON."""
    source = load_synthetic(5000, seed=11)
    sizes = [len(wire_bytes(r)) for r in source.rows() if r[0] == "product_formats"]
    assert 400 <= sum(sizes) / len(sizes) <= 600


def test_rows_are_lazy() -> None:
    """rows() is a generator, and the first rows of 5,000,000 come at once."""
    started = time.perf_counter()
    source = load_synthetic(5_000_000)
    assert inspect.isgenerator(source.rows())
    first = list(itertools.islice(source.rows(), 10))
    assert [item_id for _, item_id, _ in first] == list(range(1, 11))
    assert time.perf_counter() - started < 2.0


def test_multilingual_columns() -> None:
    """Each table has a name and a description column per language, tagged so."""
    languages = ("en", "de", "it")
    source = load_synthetic(50, languages=languages)
    assert source.schema["languages"] == list(languages)
    assert source.schema["default_language"] == "en"
    for table in TABLES:
        info = source.data_schema_info[table]
        columns = column_names(source.data_schema[table])
        tagged = [c for c in columns[2:] if "language_code" in info[c]]
        assert len(tagged) == 2 * len(languages)
        for column in tagged:
            entry = info[column]
            assert column == f"{entry['basename']}_{entry['language_code']}"
        basenames = {info[c]["basename"] for c in tagged}
        assert len(basenames) == 2


def test_column_types_and_values() -> None:
    """Each table has list, numeric, boolean, datetime and image columns, so filled."""
    source = load_synthetic(2000, seed=4)
    rows = as_dicts(source)
    for table in TABLES:
        info = source.data_schema_info[table]
        types = Counter(
            info[c]["type"] for c in column_names(source.data_schema[table])[1:]
        )
        assert {"list", "numeric", "boolean", "datetime", "image"} <= set(types)
        for row in rows[table].values():
            for column, value in row.items():
                check_value(info[column], value)


def check_value(entry: dict[str, Any], value: object) -> None:
    """One value has the shape its column type announces."""
    kind = entry["type"]
    if kind == "list" and "table_key" not in entry:
        assert isinstance(value, list)
        assert all(isinstance(tag, str) for tag in value)
    elif kind == "numeric":
        assert isinstance(value, int | float)
    elif kind == "boolean":
        assert value in (0, 1)
    elif kind == "datetime":
        assert isinstance(value, str)
        time.strptime(value, "%Y-%m-%d %H:%M:%S")
    elif kind in ("string", "big_string"):
        assert isinstance(value, str)
        assert value
    elif kind == "image":
        assert isinstance(value, list)
        assert all(len(media) == 2 + len(entry["sizes"]) for media in value)


def test_media_tuples() -> None:
    """Images carry ORG and THM URLs, and some but not all products have a file."""
    source = load_synthetic(4000, seed=9)
    assert source.data_schema["products"][-1] == {
        "product_manual": ["STATUS", "ID", "FILE"]
    }
    assert source.data_schema["product_formats"][-1] == {
        "format_image": ["STATUS", "ID", "ORG", "THM"]
    }
    rows = as_dicts(source)
    manuals = [p["product_manual"] for p in rows["products"].values()]
    assert any(manuals) and not all(manuals)
    assert all(len(m) <= 1 and all(len(t) == 3 for t in m) for m in manuals)
    file_ids: list[int] = []
    for table in TABLES:
        for row in rows[table].values():
            for column, value in row.items():
                if column.endswith(("_image", "_manual")):
                    assert all(
                        t[0] == "M" and t[2].startswith("https://") for t in value
                    )
                    file_ids.extend(t[1] for t in value)
    assert len(file_ids) == len(set(file_ids))


def test_bad_arguments() -> None:
    """Negative sizes and empty or repeated languages are refused."""
    with pytest.raises(ValueError):
        load_synthetic(-1)
    with pytest.raises(ValueError):
        load_synthetic(10, languages=())
    with pytest.raises(ValueError):
        load_synthetic(10, languages=("en", "en"))
