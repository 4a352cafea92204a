"""The items ``bench import`` sends: a synthetic catalog written as import JSONL.

One line per item, ``{"table": t, "item": {...}}``, the form ``bulkflow
import --from FILE.jsonl`` reads, with the fields of the emulator's import
connector (the Luma tables): 1 % categories (each below an earlier one),
then a third of the rest products (each in a category), then variants (each
of a product), parents always before the items that name them. About 190
bytes of JSON per item; the same ``count`` and ``seed`` give the same file.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson

TABLES = ("catalogue", "products", "product_formats")

_COLORS = ("Black", "Blue", "Gray", "Green", "Orange", "Purple", "Red", "White")
_SIZES = ("XS", "S", "M", "L", "XL")
_WORDS = ("light", "warm", "soft", "water-resistant", "breathable", "stretch")


def table_sizes(count: int) -> dict[str, int]:
    """How many items of each table a file of ``count`` items holds."""
    categories = max(1, count // 100) if count else 0
    products = (count - categories) // 3
    return {
        "catalogue": categories,
        "products": products,
        "product_formats": count - categories - products,
    }


def synthetic_records(count: int, seed: int = 0) -> list[dict[str, Any]]:
    """The ``count`` records of the file, in order."""
    rng = random.Random(seed)
    sizes = table_sizes(count)
    categories, products = sizes["catalogue"], sizes["products"]
    records: list[dict[str, Any]] = []
    for index in range(categories):
        item: dict[str, Any] = {
            "REF": f"CAT-{index}",
            "category_name_en": f"Category {index}",
            "category_url_key": f"category-{index}",
            "category_active": True,
            "category_position": index,
        }
        if index:
            item["REF_PARENT"] = f"CAT-{rng.randrange(index)}"
        records.append({"table": "catalogue", "item": item})

    for index in range(products):
        words = " ".join(rng.choices(_WORDS, k=6))
        item = {
            "REF": f"P-{index}",
            "product_name_en": f"Product {index}",
            "product_description_en": f"A {words} product.",
            "price": round(rng.uniform(5, 200), 2),
            "qty": rng.randrange(500),
            "color": rng.choice(_COLORS),
            "new": rng.random() < 0.2,
            "REF_catalogue": [f"CAT-{rng.randrange(categories)}"],
        }
        records.append({"table": "products", "item": item})

    for index in range(sizes["product_formats"]):
        parent = rng.randrange(products) if products else 0
        item = {
            "REF": f"V-{index}",
            "REF_products": f"P-{parent}",
            "format_name_en": f"Product {parent} variant {index}",
            "price": round(rng.uniform(5, 200), 2),
            "qty": rng.randrange(100),
            "size": rng.choice(_SIZES),
            "color": rng.choice(_COLORS),
        }
        records.append({"table": "product_formats", "item": item})
    return records


def write_items(path: Path, count: int, seed: int = 0) -> dict[str, int]:
    """Write the file; return its items per table."""
    records = synthetic_records(count, seed)
    path.write_bytes(b"".join(orjson.dumps(record) + b"\n" for record in records))
    return {table: n for table, n in table_sizes(count).items() if n}
