"""The Luma catalog's schema header: ``schema`` and ``data_schema_info``."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

TABLES = ("catalogue", "products", "product_formats")

_SIZES = {
    "ORG": {"width": 0, "height": 0},
    "IMD": {"width": 600, "height": 600},
    "THM": {"width": 150, "height": 150},
}


@dataclass(frozen=True)
class Attribute:
    """One attribute definition: its column type and display title."""

    type: str
    title: str


def schema_header() -> dict[str, Any]:
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
        "sanitized_table_names": {table: table for table in TABLES},
        "language_table_names": {table: {"en": titles[table]} for table in TABLES},
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


def catalogue_info() -> dict[str, dict[str, Any]]:
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


def products_info(
    codes: list[str], attributes: dict[str, Attribute]
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


def formats_info(
    codes: list[str], attributes: dict[str, Attribute]
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
    codes: list[str], attributes: dict[str, Attribute]
) -> dict[str, dict[str, Any]]:
    """data_schema_info entries of the attribute columns."""
    return {
        code: _column(attributes[code].type, attributes[code].title) for code in codes
    }


def data_schema_of(info: dict[str, dict[str, Any]]) -> list[Any]:
    """``STATUS`` then the info's columns, image columns as sub-label dicts."""
    layout: list[Any] = ["STATUS"]
    for column, entry in info.items():
        if entry["type"] == "image":
            layout.append({column: ["STATUS", "ID", *entry["sizes"]]})
        else:
            layout.append(column)
    return layout
