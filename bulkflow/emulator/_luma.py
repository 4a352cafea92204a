"""Load the Magento Luma sample catalog from its CSV fixtures as a `CatalogSource`.

The fixtures are the public Magento 2 sample data (OSL 3.0 / AFL 3.0), kept in
``fixtures/magento-luma/``. How rows become the three tables (``catalogue``:
32 categories, ``products``: 147 configurable parents and 44 stand-alone
products, ``product_formats``: 1,847 variants), their columns, IDs,
references, conversions and media URLs is written once, in
``fixtures/magento-luma/MAPPING.md``; the functions below follow it step by
step. Every file is read with the ``csv`` module because fields hold
newlines, HTML and quoted commas.

Over 400 lines: one CSV quirk after another, each with its rule.
"""

from __future__ import annotations

import copy
import csv
import itertools
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bulkflow.emulator._luma_schema import (
    TABLES,
    Attribute,
    catalogue_info,
    data_schema_of,
    formats_info,
    products_info,
    schema_header,
)
from bulkflow.emulator._source import CatalogSource, SourceRow

__all__ = ["load_luma"]

_DATASET = "magento-luma"
_ENV_VAR = "BULKFLOW_FIXTURES"

_CATALOG_CATEGORIES = "catalog_categories.csv"
_CONFIGURABLE_CATEGORIES = "configurable_categories.csv"
_CONFIGURABLE_PRODUCTS = "configurable_products.csv"
_ATTRIBUTE_FILES = ("catalog_attributes.csv", "configurable_attributes.csv")
_SIMPLE_FILES = (
    "simple_products_gear_bags.csv",
    "simple_products_gear_fitness_equipment.csv",
    "simple_products_gear_fitness_equipment_ball.csv",
    "simple_products_gear_fitness_equipment_strap.csv",
    "simple_products_gear_watches.csv",
)
_REQUIRED_FILES = (
    _CATALOG_CATEGORIES,
    _CONFIGURABLE_CATEGORIES,
    _CONFIGURABLE_PRODUCTS,
    *_ATTRIBUTE_FILES,
    *_SIMPLE_FILES,
)

#: Magento's store root: named in product category paths, absent from the CSVs.
_STORE_ROOT = "Default Category"
#: Where simple products' ambiguous category names are looked up first.
_PREFERRED_ROOT = "Gear"
_BOOKKEEPING_KEYS = frozenset({"has_options", "required_options"})

_MEDIA_HOST = "https://media.luma.example/catalog/product"
_SIZE_PREFIXES = (("ORG", ""), ("IMD", "/cache/600x600"), ("THM", "/cache/150x150"))

_INT_TEXT = re.compile(r"-?\d+")
# A comma only separates pairs when a `key=` follows, so a comma inside a
# value would not split it.
_PAIR_SEPARATOR = re.compile(r",(?=[A-Za-z0-9_]+=)")
_FLAGS = {"1": 1, "Yes": 1, "0": 0, "No": 0, "": None}


@dataclass(frozen=True)
class _Category:
    """A deduplicated category with its full path (ancestor names + own name)."""

    id: int
    path: tuple[str, ...]
    row: dict[str, str]


@dataclass
class _Lookup:
    """What product rows are resolved against, and where drops are recorded."""

    categories: list[_Category]
    by_path: dict[tuple[str, ...], int]
    attribute_codes: frozenset[str]
    dropped: list[str] = field(default_factory=list)


@dataclass
class _Item:
    """A product or variant before it is laid out as a row."""

    ref: str
    name: str
    price: int | float | None
    qty: int | float | None
    attributes: dict[str, Any]
    images: list[str]
    description: str = ""
    special_price: int | float | None = None
    links: list[int] = field(default_factory=list)


def load_luma(fixtures_dir: Path | None = None) -> CatalogSource:
    """Read the Luma CSVs in ``fixtures_dir``.

    Without ``fixtures_dir``, the CSVs are looked up in
    ``$BULKFLOW_FIXTURES/magento-luma`` if that variable is set, else in the
    checkout's ``fixtures/magento-luma``.

    Raises:
        FileNotFoundError: when a CSV is missing from that directory.
        ValueError: when the CSVs break an assumption of the mapping.
    """
    directory = _luma_dir(fixtures_dir)
    attributes = _load_attribute_defs(directory)
    categories = _load_categories(directory)
    by_path = {category.path: category.id for category in categories}
    lookup = _Lookup(categories, by_path, frozenset(attributes))
    products, variants, parents = _load_products(directory, lookup)
    formats = _link_variants(variants, parents)
    return _build_source(lookup, products, formats, attributes)


def _luma_dir(fixtures_dir: Path | None) -> Path:
    """Pick the dataset directory: argument, then BULKFLOW_FIXTURES, then checkout."""
    if fixtures_dir is not None:
        directory = fixtures_dir
    elif os.environ.get(_ENV_VAR):
        directory = Path(os.environ[_ENV_VAR]) / _DATASET
    else:
        directory = Path(__file__).resolve().parents[2] / "fixtures" / _DATASET
    missing = [name for name in _REQUIRED_FILES if not (directory / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Luma fixtures not found in {directory} (missing {', '.join(missing)});"
            f" run from a bulkflow checkout or set {_ENV_VAR} to a directory"
            f" that contains {_DATASET}/"
        )
    return directory


def _read_csv(path: Path) -> list[dict[str, str]]:
    """All rows of one CSV file as dicts (utf-8-sig tolerates a leading BOM)."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def _number(text: str) -> int | float | None:
    """An integer text as int, another number as float, empty as None."""
    text = text.strip()
    if not text:
        return None
    return int(text) if _INT_TEXT.fullmatch(text) else float(text)


def _flag(text: str) -> int | None:
    """A Magento yes/no value as the protocol's 0/1 boolean."""
    try:
        return _FLAGS[text.strip()]
    except KeyError:
        raise ValueError(f"not a boolean value: {text!r}") from None


def _split(text: str, separator: str) -> list[str]:
    """Split a multi-value field, dropping the empty items stray separators leave."""
    return [part.strip() for part in text.split(separator) if part.strip()]


def _load_attribute_defs(directory: Path) -> dict[str, Attribute]:
    """Attribute code → type and title, from both attribute definition files."""
    kinds = {"multiselect": "list", "boolean": "boolean"}
    defs: dict[str, Attribute] = {}
    for name in _ATTRIBUTE_FILES:
        for row in _read_csv(directory / name):
            title = row["frontend_label"].splitlines()[0].strip()
            kind = kinds.get(row["frontend_input"], "string")
            defs.setdefault(row["attribute_code"], Attribute(kind, title))
    return defs


def _attribute_value(
    attribute: Attribute, values: list[str]
) -> list[str] | str | int | None:
    """Convert the raw items of one attribute to its column's type."""
    if not values:
        return None
    if attribute.type == "list":
        return values
    if attribute.type == "boolean":
        return _flag(values[0])
    if len(values) > 1:
        raise ValueError(f"single-valued attribute with several values: {values}")
    return values[0]


# -- categories -------------------------------------------------------------


def _load_categories(directory: Path) -> list[_Category]:
    """Both category files, deduplicated by full path, with IDs in file order."""
    seen: set[tuple[str, ...]] = set()
    categories: list[_Category] = []
    for name in (_CATALOG_CATEGORIES, _CONFIGURABLE_CATEGORIES):
        for row in _read_csv(directory / name):
            path = (*_split(row["path"], "/"), row["name"].strip())
            if path in seen:
                continue
            seen.add(path)
            categories.append(_Category(len(categories) + 1, path, row))
    refs = [category.row["url_key"] for category in categories]
    if len(set(refs)) != len(refs):
        raise ValueError("category url_key values are not unique")
    return categories


def _parent_id(category: _Category, by_path: dict[tuple[str, ...], int]) -> int:
    """The ID of the category's parent, 0 for a root."""
    parent = category.path[:-1]
    if not parent:
        return 0
    try:
        return by_path[parent]
    except KeyError:
        raise ValueError(f"category {'/'.join(category.path)} has no parent") from None


def _resolve_path(text: str, lookup: _Lookup) -> int | None:
    """A ``Default Category/A/B`` path as a category ID; the bare root is dropped."""
    parts = _split(text, "/")
    if parts[:1] != [_STORE_ROOT]:
        raise ValueError(f"category path outside the store root: {text!r}")
    if len(parts) == 1:
        lookup.dropped.append(text)
        return None
    try:
        return lookup.by_path[tuple(parts[1:])]
    except KeyError:
        raise ValueError(f"unknown category path: {text!r}") from None


def _resolve_name(name: str, lookup: _Lookup) -> int | None:
    """A bare category name as an ID (Gear first, then lowest ID), or dropped."""
    matches = [c for c in lookup.categories if c.path[-1] == name]
    if not matches:
        lookup.dropped.append(name)
        return None
    matches.sort(
        key=lambda category: (category.path[0] != _PREFERRED_ROOT, category.id)
    )
    return matches[0].id


def _unique(ids: list[int | None]) -> list[int]:
    """Category IDs without the dropped ones and repeats, first occurrence first."""
    return list(dict.fromkeys(i for i in ids if i is not None))


# -- products and variants --------------------------------------------------


def _load_products(
    directory: Path, lookup: _Lookup
) -> tuple[list[_Item], list[_Item], dict[str, int]]:
    """Products (configurable then simple), variants, and variant sku → parent ID."""
    products: list[_Item] = []
    variants: list[_Item] = []
    parents: dict[str, int] = {}
    for row in _read_csv(directory / _CONFIGURABLE_PRODUCTS):
        if row["product_type"] == "configurable":
            products.append(_configurable(row, lookup))
            links = _variation_parents(row, len(products))
            if links.keys() & parents.keys():
                raise ValueError(f"{row['sku']} lists a variant of another product")
            parents.update(links)
        elif row["product_type"] == "simple":
            variants.append(_variant(row))
        else:
            raise ValueError(f"unexpected product_type {row['product_type']!r}")
    for name in _SIMPLE_FILES:
        for row in _read_csv(directory / name):
            products.append(_simple(row, lookup))
    return products, variants, parents


def _configurable(row: dict[str, str], lookup: _Lookup) -> _Item:
    """A configurable parent of configurable_products.csv."""
    paths = _split(row["categories"], ",")
    return _Item(
        ref=row["sku"],
        name=row["name"],
        description=row["description"],
        price=_number(row["price"]),
        special_price=_number(row["special_price"]),
        qty=_number(row["qty"]),
        attributes=_additional_attributes(row["additional_attributes"]),
        images=_images(row),
        links=_unique([_resolve_path(path, lookup) for path in paths]),
    )


def _variant(row: dict[str, str]) -> _Item:
    """A simple variant row of configurable_products.csv."""
    return _Item(
        ref=row["sku"],
        name=row["name"],
        price=_number(row["price"]),
        qty=_number(row["qty"]),
        attributes=_additional_attributes(row["additional_attributes"]),
        images=_images(row),
    )


def _simple(row: dict[str, str], lookup: _Lookup) -> _Item:
    """A stand-alone product of a simple_products_*.csv file."""
    names = _split(row["category"], "\n")
    # Only columns named like an attribute code are attributes; the others
    # (attribute_set, visibility, url_key) are Magento import settings.
    attributes = {
        key: _split(value, "\n")
        for key, value in row.items()
        if key in lookup.attribute_codes
    }
    return _Item(
        ref=row["sku"],
        name=row["name"],
        description=row["description"],
        price=_number(row["price"]),
        special_price=_number(row.get("special_price", "")),
        qty=_number(row["qty"]),
        attributes=attributes,
        images=[],
        links=_unique([_resolve_name(name, lookup) for name in names]),
    )


def _additional_attributes(text: str) -> dict[str, list[str]]:
    """``key=a|b,key2=c`` as raw value lists, without Magento bookkeeping keys."""
    pairs: dict[str, list[str]] = {}
    for pair in _PAIR_SEPARATOR.split(text) if text else []:
        key, _, value = pair.partition("=")
        if key not in _BOOKKEEPING_KEYS:
            pairs[key] = _split(value, "|")
    return pairs


def _images(row: dict[str, str]) -> list[str]:
    """Image paths: base image first, then additional images, without repeats."""
    paths = [row["base_image"], *row["additional_images"].split(",")]
    return list(dict.fromkeys(path.strip() for path in paths if path.strip()))


def _variation_parents(row: dict[str, str], parent_id: int) -> dict[str, int]:
    """Variant sku → parent ID for every entry of ``configurable_variations``."""
    links: dict[str, int] = {}
    for entry in _split(row["configurable_variations"], "|"):
        fields = dict(pair.partition("=")[::2] for pair in entry.split(","))
        links[fields["sku"]] = parent_id
    return links


def _link_variants(variants: list[_Item], parents: dict[str, int]) -> list[_Item]:
    """Give each variant its parent ID; a variant no parent lists is an error."""
    for variant in variants:
        if variant.ref not in parents:
            raise ValueError(f"variant {variant.ref} has no configurable parent")
        variant.links = [parents[variant.ref]]
    return variants


# -- schema and rows --------------------------------------------------------


def _build_source(
    lookup: _Lookup,
    products: list[_Item],
    formats: list[_Item],
    attributes: dict[str, Attribute],
) -> CatalogSource:
    """Lay the parsed catalog out as data_schema, data_schema_info and rows."""
    product_attrs = _type_attributes(products, attributes)
    format_attrs = _type_attributes(formats, attributes)
    info = {
        "catalogue": catalogue_info(),
        "products": products_info(product_attrs, attributes),
        "product_formats": formats_info(format_attrs, attributes),
    }
    data_schema = {table: data_schema_of(info[table]) for table in TABLES}
    rows = _all_rows(lookup, products, formats, product_attrs, format_attrs)
    return CatalogSource(
        name=_DATASET,
        tables=TABLES,
        schema=schema_header(),
        data_schema_info=info,
        data_schema=data_schema,
        rows=lambda: _replay(rows),
        notes=_notes(lookup.dropped),
    )


def _type_attributes(items: list[_Item], attributes: dict[str, Attribute]) -> list[str]:
    """Convert the items' raw attribute values; return the used codes, sorted."""
    for item in items:
        unknown = [code for code in item.attributes if code not in attributes]
        if unknown:
            raise ValueError(f"{item.ref}: attributes without a definition {unknown}")
        item.attributes = {
            code: _attribute_value(attributes[code], raw)
            for code, raw in item.attributes.items()
        }
    used = {code for item in items for code, value in item.attributes.items()}
    return sorted(used)


def _all_rows(
    lookup: _Lookup,
    products: list[_Item],
    formats: list[_Item],
    product_attrs: list[str],
    format_attrs: list[str],
) -> list[SourceRow]:
    """Every row of the catalog in serving order; file IDs count in that order."""
    file_ids = itertools.count(1)
    rows: list[SourceRow] = [
        ("catalogue", category.id, _category_values(category, lookup.by_path))
        for category in lookup.categories
    ]
    for number, item in enumerate(products, start=1):
        values = _product_values(item, product_attrs, file_ids)
        rows.append(("products", number, values))
    for number, item in enumerate(formats, start=1):
        values = _format_values(item, format_attrs, file_ids)
        rows.append(("product_formats", number, values))
    return rows


def _category_values(
    category: _Category, by_path: dict[tuple[str, ...], int]
) -> list[Any]:
    """A category's values after STATUS and ID."""
    row = category.row
    return [
        _parent_id(category, by_path),
        row["url_key"],
        row["name"],
        row["url_key"],
        _flag(row["active"]),
        _flag(row["include_in_menu"]),
        _number(row["position"]),
    ]


def _product_values(
    item: _Item, codes: list[str], file_ids: Iterator[int]
) -> list[Any]:
    """A product's values after STATUS and ID."""
    return [
        item.links,
        item.ref,
        item.name,
        item.description,
        item.price,
        item.special_price,
        item.qty,
        *_attribute_values(item, codes),
        _media(item.images, file_ids),
    ]


def _format_values(item: _Item, codes: list[str], file_ids: Iterator[int]) -> list[Any]:
    """A variant's values after STATUS and ID."""
    return [
        item.links[0],
        item.ref,
        item.name,
        item.price,
        item.qty,
        *_attribute_values(item, codes),
        _media(item.images, file_ids),
    ]


def _attribute_values(item: _Item, codes: list[str]) -> list[Any]:
    """The item's typed attribute values in column order, None where it has none."""
    return [item.attributes.get(code) for code in codes]


def _media(paths: list[str], file_ids: Iterator[int]) -> list[list[Any]]:
    """One ``["M", file_id, ORG, IMD, THM]`` tuple per image path."""
    return [
        [
            "M",
            next(file_ids),
            *(f"{_MEDIA_HOST}{prefix}{path}" for _, prefix in _SIZE_PREFIXES),
        ]
        for path in paths
    ]


def _replay(rows: list[SourceRow]) -> Iterator[SourceRow]:
    """Yield copies, so a consumer that edits a row cannot alter the next run."""
    for table, item_id, values in rows:
        yield table, item_id, copy.deepcopy(values)


def _notes(dropped: list[str]) -> dict[str, str]:
    """Provenance and the category references the mapping had to drop."""
    root = sum(1 for reference in dropped if reference == _STORE_ROOT)
    others = sorted(set(dropped) - {_STORE_ROOT})
    return {
        "source": "magento/magento2-sample-data, licensed OSL-3.0 and AFL-3.0",
        "dropped_category_references": (
            f"{len(dropped)}: {root} to the store root {_STORE_ROOT!r},"
            f" {len(dropped) - root} to names that are no category"
            f" ({', '.join(map(repr, others)) or 'none'})"
        ),
    }
