"""Specification tests for the Luma loader, checked against the CSVs directly."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bulkflow.emulator._luma import load_luma
from bulkflow.emulator._source import CatalogSource

LUMA = Path(__file__).resolve().parents[1] / "fixtures" / "magento-luma"
SIMPLE_FILES = sorted(p.name for p in LUMA.glob("simple_products_*.csv"))
MEDIA = "https://media.luma.example/catalog/product"

Rows = dict[str, dict[int, dict[str, Any]]]


def read(name: str) -> list[dict[str, str]]:
    """Every row of one fixture CSV as a dict."""
    with (LUMA / name).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def column_names(layout: list[Any]) -> list[str]:
    """The column names of a data_schema list, media dicts by their key."""
    return [entry if isinstance(entry, str) else next(iter(entry)) for entry in layout]


@pytest.fixture(scope="module")
def source() -> CatalogSource:
    """The catalog as the emulator would load it."""
    return load_luma()


@pytest.fixture(scope="module")
def rows(source: CatalogSource) -> Rows:
    """Rows by table and ID, as dicts keyed by column name."""
    tables: Rows = {table: {} for table in source.tables}
    for table, item_id, values in source.rows():
        names = column_names(source.data_schema[table])[2:]
        tables[table][item_id] = dict(zip(names, values, strict=True))
    return tables


def configurable_rows() -> Iterator[dict[str, str]]:
    """The configurable parents of configurable_products.csv, in file order."""
    for row in read("configurable_products.csv"):
        if row["product_type"] == "configurable":
            yield row


def variant_rows() -> Iterator[dict[str, str]]:
    """The simple variants of configurable_products.csv, in file order."""
    for row in read("configurable_products.csv"):
        if row["product_type"] == "simple":
            yield row


def simple_rows() -> Iterator[dict[str, str]]:
    """The stand-alone products, files in sorted name order."""
    for name in SIMPLE_FILES:
        yield from read(name)


def category_path(rows: Rows, category_id: int) -> tuple[str, ...]:
    """A category's full name path, walking ID_PARENT up to the root."""
    names: list[str] = []
    while category_id:
        category = rows["catalogue"][category_id]
        names.insert(0, category["category_name_en"])
        category_id = category["ID_PARENT"]
    return tuple(names)


def by_ref(rows: Rows, table: str) -> dict[str, dict[str, Any]]:
    """A table's rows by REF."""
    return {row["REF"]: row for row in rows[table].values()}


def test_counts_and_ids(rows: Rows) -> None:
    """The tables hold 32, 191 and 1,847 rows with IDs 1..N."""
    expected = {"catalogue": 32, "products": 191, "product_formats": 1847}
    for table, count in expected.items():
        assert sorted(rows[table]) == list(range(1, count + 1))


def test_source_lists_the_three_tables(source: CatalogSource) -> None:
    """The tables are served categories first, then products, then variants."""
    assert source.tables == ("catalogue", "products", "product_formats")
    assert set(source.data_schema) == set(source.tables)
    assert set(source.data_schema_info) == set(source.tables)


def test_every_row_matches_its_schema(source: CatalogSource) -> None:
    """Each row has one value per data_schema column after STATUS and ID."""
    for table, _, values in source.rows():
        assert len(values) == len(source.data_schema[table]) - 2


def test_categories_follow_the_csvs(rows: Rows) -> None:
    """Categories are both files deduplicated by path, with parents by path."""
    first: dict[tuple[str, str], str] = {}
    for name in ("catalog_categories.csv", "configurable_categories.csv"):
        for row in read(name):
            first.setdefault((row["path"], row["name"]), row["url_key"])
    assert len(first) == 32
    for item_id, ((path, name), url_key) in enumerate(first.items(), start=1):
        category = rows["catalogue"][item_id]
        assert (category["category_name_en"], category["REF"]) == (name, url_key)
        parent_path = tuple(path.split("/")) if path else ()
        assert category_path(rows, category["ID_PARENT"]) == parent_path


def test_category_flags_and_position(rows: Rows) -> None:
    """Active and menu flags are 0/1, and position is a number or null."""
    categories = by_ref(rows, "catalogue")
    assert categories["gear"]["category_position"] == 4
    assert categories["collections"]["category_active"] == 0
    assert categories["women-sale"]["category_in_menu"] == 0
    assert categories["bags"]["category_position"] is None
    assert categories["tees-all"]["category_url_key"] == "tees-all"


def test_product_order_names_and_prices(rows: Rows) -> None:
    """Products are the configurables then the simple files, with names and prices."""
    expected = [*configurable_rows(), *simple_rows()]
    assert len(expected) == 191
    for item_id, row in enumerate(expected, start=1):
        product = rows["products"][item_id]
        assert product["REF"] == row["sku"]
        assert product["product_name_en"] == row["name"]
        assert product["product_description_en"] == row["description"]
        assert product["price"] == float(row["price"])
        assert product["qty"] == float(row["qty"])


def test_number_types(rows: Rows) -> None:
    """Integer texts become ints, decimal texts floats, empty fields null."""
    products = by_ref(rows, "products")
    assert products["MH01"]["price"] == 52
    assert isinstance(products["MH01"]["price"], int)
    assert products["MH01"]["special_price"] is None
    decimals = [row for row in configurable_rows() if "." in row["price"]]
    assert decimals, "the fixture has decimal prices"
    price = products[decimals[0]["sku"]]["price"]
    assert isinstance(price, float)
    assert price == float(decimals[0]["price"])
    special = [row for row in simple_rows() if row.get("special_price")]
    assert products[special[0]["sku"]]["special_price"] == int(
        special[0]["special_price"]
    )


def test_variant_parents(rows: Rows) -> None:
    """Each variant points at the configurable whose variations list its sku."""
    parent_of: dict[str, str] = {}
    for row in configurable_rows():
        for entry in row["configurable_variations"].split("|"):
            sku = entry.split(",")[0].removeprefix("sku=")
            parent_of[sku] = row["sku"]
    products = rows["products"]
    variants = list(variant_rows())
    assert len(variants) == 1847
    for item_id, row in enumerate(variants, start=1):
        variant = rows["product_formats"][item_id]
        assert variant["REF"] == row["sku"]
        assert variant["format_name_en"] == row["name"]
        assert variant["price"] == float(row["price"])
        assert products[variant["ID_products"]]["REF"] == parent_of[row["sku"]]


def test_variant_size_and_color(rows: Rows) -> None:
    """Size and color come from the variant's additional_attributes."""
    variants = by_ref(rows, "product_formats")
    for row in variant_rows():
        pairs = dict(p.split("=") for p in row["additional_attributes"].split(","))
        variant = variants[row["sku"]]
        assert (variant["size"], variant["color"]) == (pairs["size"], pairs["color"])


def test_configurable_categories_by_path(rows: Rows) -> None:
    """A configurable's categories are its paths below Default Category."""
    products = by_ref(rows, "products")
    for row in configurable_rows():
        expected = {
            tuple(path.split("/")[1:])
            for path in row["categories"].split(",")
            if path != "Default Category"
        }
        ids = products[row["sku"]]["ID_catalogue"]
        assert len(ids) == len(set(ids))
        assert {category_path(rows, i) for i in ids} == expected


def test_named_product_categories(rows: Rows) -> None:
    """Spot checks of category paths for one configurable and two simple products."""
    products = by_ref(rows, "products")

    def paths(sku: str) -> set[tuple[str, ...]]:
        return {category_path(rows, i) for i in products[sku]["ID_catalogue"]}

    assert paths("MH01") == {
        ("Men", "Tops", "Hoodies & Sweatshirts"),
        ("Collections", "Eco Friendly"),
    }
    assert paths("24-MB01") == {("Gear",), ("Gear", "Bags")}
    # 24-UG05 also names "Erin Recommends New", which is no category.
    assert paths("24-UG05") == {
        ("Gear",),
        ("Gear", "Fitness Equipment"),
        ("Promotions",),
        ("Collections",),
        ("Collections", "New Luma Yoga Collection"),
        ("Collections", "Erin Recommends"),
    }


def test_simple_categories_by_name(rows: Rows) -> None:
    """A simple product's categories are its listed names that are categories."""
    known = {row["name"] for row in read("configurable_categories.csv")}
    known |= {row["name"] for row in read("catalog_categories.csv")}
    products = by_ref(rows, "products")
    dropped = 0
    for row in simple_rows():
        names = {name for name in row["category"].split("\n") if name}
        dropped += len(names - known)
        ids = products[row["sku"]]["ID_catalogue"]
        assert {category_path(rows, i)[-1] for i in ids} == names & known
    assert dropped == 1


def test_dropped_references_are_noted(source: CatalogSource) -> None:
    """The notes count the 89 store-root and 1 unknown-name references dropped."""
    root_only = sum(
        "Default Category" in row["categories"].split(",")
        for row in configurable_rows()
    )
    assert root_only == 89
    note = source.notes["dropped_category_references"]
    assert note.startswith("90:")
    assert "Erin Recommends New" in note


def test_attribute_columns(source: CatalogSource, rows: Rows) -> None:
    """Attribute columns are the sorted used codes, typed by their definitions."""
    names = column_names(source.data_schema["products"])
    attributes = names[names.index("qty") + 1 : -1]
    assert attributes == sorted(attributes)
    assert "has_options" not in attributes
    assert "attribute_set" not in attributes
    products = by_ref(rows, "products")
    mh01 = next(r for r in configurable_rows() if r["sku"] == "MH01")
    pairs = dict(p.split("=") for p in mh01["additional_attributes"].split(","))
    assert products["MH01"]["climate"] == pairs["climate"].split("|")
    assert products["MH01"]["eco_collection"] == int(pairs["eco_collection"] == "Yes")
    assert products["MH01"]["features_bags"] is None
    assert products["24-MB01"]["material"] == ["Nylon", "Polyester"]
    info = source.data_schema_info["products"]
    assert info["climate"]["type"] == "list"
    assert info["sale"]["type"] == "boolean"
    assert info["pattern"]["type"] == "list"


def test_list_values_are_string_lists(source: CatalogSource, rows: Rows) -> None:
    """Every list attribute value is null or a non-empty list of non-empty strings."""
    info = source.data_schema_info["products"]
    lists = [c for c, e in info.items() if e["type"] == "list" and c != "ID_catalogue"]
    for product in rows["products"].values():
        for column in lists:
            value = product[column]
            assert value is None or (value and all(v.strip() == v for v in value))


def test_product_images(rows: Rows) -> None:
    """A product's images are the base image then the additional ones, in 3 sizes."""
    products = by_ref(rows, "products")
    for row in configurable_rows():
        paths = [row["base_image"], *row["additional_images"].split(",")]
        expected = list(dict.fromkeys(p for p in paths if p))
        media = products[row["sku"]]["product_image"]
        assert [m[2] for m in media] == [MEDIA + p for p in expected]
        assert [m[3] for m in media] == [f"{MEDIA}/cache/600x600{p}" for p in expected]
        assert [m[4] for m in media] == [f"{MEDIA}/cache/150x150{p}" for p in expected]
    for row in simple_rows():
        assert products[row["sku"]]["product_image"] == []


def test_media_ids_are_distinct_integers(source: CatalogSource) -> None:
    """Media tuples are [status, int id, 3 URLs] with no id used twice."""
    seen: set[int] = set()
    for table, _, values in source.rows():
        if table == "catalogue":
            continue
        for media in values[-1]:
            assert media[0] == "M"
            assert isinstance(media[1], int)
            assert len(media) == 5
            seen.add(media[1])
    total = sum(len(v[-1]) for t, _, v in source.rows() if t != "catalogue")
    assert len(seen) == total


def test_references_resolve(rows: Rows) -> None:
    """Every ID_PARENT, ID_catalogue and ID_products value names an existing row."""
    for category in rows["catalogue"].values():
        assert category["ID_PARENT"] == 0 or category["ID_PARENT"] in rows["catalogue"]
    for product in rows["products"].values():
        assert product["ID_catalogue"]
        assert all(i in rows["catalogue"] for i in product["ID_catalogue"])
    for variant in rows["product_formats"].values():
        assert variant["ID_products"] in rows["products"]


def test_schema_info_covers_every_column(source: CatalogSource) -> None:
    """Every column after STATUS and ID has a type and a title."""
    for table, layout in source.data_schema.items():
        info = source.data_schema_info[table]
        assert layout[:2] == ["STATUS", "ID"]
        assert info["ID"] == {"type": "key"}
        for column in column_names(layout)[2:]:
            assert {"type", "title"} <= set(info[column])


def test_multilingual_columns(source: CatalogSource) -> None:
    """Every *_en column has basename and language_code that rebuild its name."""
    multilingual = 0
    for table, layout in source.data_schema.items():
        for column in column_names(layout):
            if not column.endswith("_en"):
                continue
            entry = source.data_schema_info[table][column]
            assert entry["language_code"] == "en"
            assert f"{entry['basename']}_en" == column
            multilingual += 1
    assert multilingual == 4


def test_join_and_media_descriptors(source: CatalogSource) -> None:
    """Join columns name their table and images declare ORG, IMD and THM."""
    info = source.data_schema_info
    assert info["products"]["ID_catalogue"]["type"] == "list"
    assert info["products"]["ID_catalogue"]["table_key"] == "catalogue"
    assert info["product_formats"]["ID_products"]["type"] == "key"
    assert info["product_formats"]["ID_products"]["table_key"] == "products"
    labels = ["STATUS", "ID", "ORG", "IMD", "THM"]
    assert source.data_schema["products"][-1] == {"product_image": labels}
    assert source.data_schema["product_formats"][-1] == {"format_image": labels}
    sizes = info["products"]["product_image"]["sizes"]
    assert sizes["ORG"] == {"width": 0, "height": 0}
    assert sizes["THM"] == {"width": 150, "height": 150}


def test_schema_block(source: CatalogSource) -> None:
    """The schema names the company, one language and all three tables."""
    schema = source.schema
    assert schema["connector_type"] == "CN_CUSTOM"
    assert schema["languages"] == ["en"]
    assert schema["default_language"] == "en"
    assert set(schema["sanitized_table_names"]) == set(source.tables)
    assert set(schema["language_table_names"]) == set(source.tables)
    assert "connector_ID" not in schema


def test_rows_can_be_read_twice(source: CatalogSource) -> None:
    """Two passes over rows() give equal rows."""
    assert list(source.rows()) == list(source.rows())


def test_missing_directory_is_explained(tmp_path: Path) -> None:
    """A directory without the CSVs raises FileNotFoundError naming it."""
    with pytest.raises(FileNotFoundError) as caught:
        load_luma(tmp_path)
    assert str(tmp_path) in str(caught.value)
    assert "BULKFLOW_FIXTURES" in str(caught.value)


def test_env_var_points_at_fixtures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BULKFLOW_FIXTURES names a directory holding magento-luma/."""
    monkeypatch.setenv("BULKFLOW_FIXTURES", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="magento-luma"):
        load_luma()
    shutil.copytree(LUMA, tmp_path / "magento-luma")
    assert sum(1 for _ in load_luma().rows()) == 32 + 191 + 1847
