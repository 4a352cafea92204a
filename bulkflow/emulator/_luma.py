"""Load the Magento Luma sample catalog from its CSV fixtures as a `CatalogSource`.

The fixtures are the public Magento 2 sample data (OSL 3.0 / AFL 3.0), kept in
``fixtures/magento-luma/``; ``MAPPING.md`` there repeats this mapping. Every
file is read with the ``csv`` module because fields hold newlines, HTML and
quoted commas. Values are kept as written (names keep trailing spaces and HTML
entities); only types change.

Conversions used throughout:

* numbers: an integer text becomes an ``int``, any other number a ``float``,
  an empty field ``None``;
* booleans: ``1``/``Yes`` → ``1``, ``0``/``No`` → ``0``, empty → ``None``;
* attributes are typed by their definition in ``catalog_attributes.csv`` and
  ``configurable_attributes.csv`` (``frontend_input``): ``multiselect`` →
  ``list`` (a JSON list of strings, empty items dropped, ``[]`` never stored:
  no value is ``None``), ``boolean`` → ``boolean``, anything else → ``string``;
  the column title is the first line of ``frontend_label``.

``catalogue`` (32 rows): ``catalog_categories.csv`` then
``configurable_categories.csv``, deduplicated by full path (``path`` + ``/`` +
``name``; the first occurrence wins, so "Collections" and "New Luma Yoga
Collection" come from the catalog file). IDs 1..32 in that order. Columns:
``ID_PARENT`` (the category whose full path is the row's ``path``; 0 for
roots), ``REF`` (``url_key``, checked unique), ``category_name_en``,
``category_url_key``, ``category_active`` (``active``), ``category_in_menu``
(``include_in_menu``), ``category_position`` (``position``, mostly empty).

``products`` (191 rows): the 147 ``configurable`` rows of
``configurable_products.csv`` (IDs 1..147, file order), then the 44 rows of the
five ``simple_products_*.csv`` files in sorted filename order (IDs 148..191).
Columns: ``ID_catalogue`` (list of category IDs), ``REF`` (``sku``),
``product_name_en``, ``product_description_en`` (HTML as is, ``big_string``),
``price``, ``special_price``, ``qty``, then one column per attribute code used
by any product, sorted by code (missing → ``None``), then ``product_image``.

* Configurable rows: ``categories`` is a comma-separated list of paths
  ``Default Category/A/B``; "Default Category" is Magento's store root, not a
  category of the CSVs, so the bare root is dropped and ``A/B`` is resolved by
  full path (an unknown path is an error). Attributes come from
  ``additional_attributes`` (``key=value`` pairs joined by commas, multi-values
  joined by ``|``), minus the bookkeeping keys ``has_options`` and
  ``required_options``. Images: ``base_image`` then ``additional_images``
  (comma-separated), deduplicated.
* Simple rows: ``category`` is a newline-separated list of category NAMES; a
  name is resolved to the category of that name (under Gear when several
  share it, then the lowest ID); a name that is no category (the one case is
  "Erin Recommends New") is dropped. Attributes are the columns whose name is
  an attribute code (multi-values newline-separated); ``attribute_set``,
  ``visibility`` and ``url_key`` are not attributes and are left out. These
  products have no images (``[]``).
* Category IDs of a product are deduplicated, first occurrence first. The
  number of dropped references is in ``CatalogSource.notes``.

``product_formats`` (1,847 rows): the ``simple`` rows of
``configurable_products.csv``, IDs 1..1847 in file order. Columns:
``ID_products`` (the configurable whose ``configurable_variations`` —
``sku=X,size=..,color=..|sku=Y,...`` — lists the variant; exactly one must),
``REF`` (``sku``), ``format_name_en``, ``price``, ``qty``, the attribute
columns of the variants sorted by code (``color``, ``size``), then
``format_image`` (same image rule as configurable products).

Media: every image is one tuple ``["M", file_id, ORG, IMD, THM]`` with
``ORG = https://media.luma.example/catalog/product{path}`` and ``IMD``/``THM``
inserting ``/cache/600x600`` / ``/cache/150x150`` before ``{path}``;
``file_id`` counts 1, 2, ... over product images then variant images in row
order.
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

from bulkflow.emulator._source import CatalogSource, SourceRow

__all__ = ["load_luma"]

_DATASET = "magento-luma"
_ENV_VAR = "BULKFLOW_FIXTURES"
_TABLES = ("catalogue", "products", "product_formats")

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
_SIZES = {
    "ORG": {"width": 0, "height": 0},
    "IMD": {"width": 600, "height": 600},
    "THM": {"width": 150, "height": 150},
}

_INT_TEXT = re.compile(r"-?\d+")
# A comma only separates pairs when a `key=` follows, so a comma inside a
# value would not split it.
_PAIR_SEPARATOR = re.compile(r",(?=[A-Za-z0-9_]+=)")
_FLAGS = {"1": 1, "Yes": 1, "0": 0, "No": 0, "": None}


@dataclass(frozen=True)
class _Attribute:
    """One attribute definition: its column type and display title."""

    type: str
    title: str


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


def _load_attribute_defs(directory: Path) -> dict[str, _Attribute]:
    """Attribute code → type and title, from both attribute definition files."""
    kinds = {"multiselect": "list", "boolean": "boolean"}
    defs: dict[str, _Attribute] = {}
    for name in _ATTRIBUTE_FILES:
        for row in _read_csv(directory / name):
            title = row["frontend_label"].splitlines()[0].strip()
            kind = kinds.get(row["frontend_input"], "string")
            defs.setdefault(row["attribute_code"], _Attribute(kind, title))
    return defs


def _attribute_value(
    attribute: _Attribute, values: list[str]
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
    attributes: dict[str, _Attribute],
) -> CatalogSource:
    """Lay the parsed catalog out as data_schema, data_schema_info and rows."""
    product_attrs = _type_attributes(products, attributes)
    format_attrs = _type_attributes(formats, attributes)
    info = {
        "catalogue": _catalogue_info(),
        "products": _products_info(product_attrs, attributes),
        "product_formats": _formats_info(format_attrs, attributes),
    }
    data_schema = {table: _data_schema(info[table]) for table in _TABLES}
    rows = _all_rows(lookup, products, formats, product_attrs, format_attrs)
    return CatalogSource(
        name=_DATASET,
        tables=_TABLES,
        schema=_schema(),
        data_schema_info=info,
        data_schema=data_schema,
        rows=lambda: _replay(rows),
        notes=_notes(lookup.dropped),
    )


def _type_attributes(
    items: list[_Item], attributes: dict[str, _Attribute]
) -> list[str]:
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


def _schema() -> dict[str, Any]:
    """The ``schema`` block (§2.3); the server adds ``connector_ID``."""
    titles = {
        "catalogue": "Categories",
        "products": "Products",
        "product_formats": "Variants",
    }
    return {
        "connector_type": "CN_CUSTOM",
        "company_ID": 1001,
        "company_name": "Luma (Magento sample data)",
        "default_language": "en",
        "languages": ["en"],
        "offline_mode": 0,
        "sanitized_table_names": {table: table for table in _TABLES},
        "language_table_names": {table: {"en": titles[table]} for table in _TABLES},
        "headings": {},
        "custom_parameters": {},
    }


def _column(kind: str, title: str, basename: str | None = None) -> dict[str, Any]:
    """One column's data_schema_info entry; a basename makes it an English column."""
    entry: dict[str, Any] = {"type": kind, "title": title}
    if basename is not None:
        entry.update(basename=basename, language_code="en")
    return entry


def _image(title: str) -> dict[str, Any]:
    """The data_schema_info entry of an image column with the three sizes."""
    return {"type": "image", "title": title, "sizes": copy.deepcopy(_SIZES)}


def _catalogue_info() -> dict[str, dict[str, Any]]:
    """Column properties of ``catalogue``, in data_schema order."""
    return {
        "ID": {"type": "key"},
        "ID_PARENT": _column("key", "Parent category"),
        "REF": _column("string", "Reference"),
        "category_name_en": _column("string", "Name", "category_name"),
        "category_url_key": _column("string", "URL key"),
        "category_active": _column("boolean", "Active"),
        "category_in_menu": _column("boolean", "Include in menu"),
        "category_position": _column("numeric", "Position"),
    }


def _products_info(
    codes: list[str], attributes: dict[str, _Attribute]
) -> dict[str, dict[str, Any]]:
    """Column properties of ``products``, in data_schema order."""
    info: dict[str, dict[str, Any]] = {
        "ID": {"type": "key"},
        "ID_catalogue": {**_column("list", "Categories"), "table_key": "catalogue"},
        "REF": _column("string", "SKU"),
        "product_name_en": _column("string", "Name", "product_name"),
        "product_description_en": _column(
            "big_string", "Description", "product_description"
        ),
        "price": _column("numeric", "Price"),
        "special_price": _column("numeric", "Special price"),
        "qty": _column("numeric", "Quantity"),
    }
    info.update(_attribute_info(codes, attributes))
    info["product_image"] = _image("Images")
    return info


def _formats_info(
    codes: list[str], attributes: dict[str, _Attribute]
) -> dict[str, dict[str, Any]]:
    """Column properties of ``product_formats``, in data_schema order."""
    info: dict[str, dict[str, Any]] = {
        "ID": {"type": "key"},
        "ID_products": {**_column("key", "Product"), "table_key": "products"},
        "REF": _column("string", "SKU"),
        "format_name_en": _column("string", "Name", "format_name"),
        "price": _column("numeric", "Price"),
        "qty": _column("numeric", "Quantity"),
    }
    info.update(_attribute_info(codes, attributes))
    info["format_image"] = _image("Images")
    return info


def _attribute_info(
    codes: list[str], attributes: dict[str, _Attribute]
) -> dict[str, dict[str, Any]]:
    """data_schema_info entries of the attribute columns."""
    return {
        code: _column(attributes[code].type, attributes[code].title) for code in codes
    }


def _data_schema(info: dict[str, dict[str, Any]]) -> list[Any]:
    """``STATUS`` then the info's columns, image columns as sub-label dicts."""
    layout: list[Any] = ["STATUS"]
    for column, entry in info.items():
        if entry["type"] == "image":
            layout.append({column: ["STATUS", "ID", *entry["sizes"]]})
        else:
            layout.append(column)
    return layout


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
