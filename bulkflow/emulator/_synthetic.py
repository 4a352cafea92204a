"""Generate a deterministic synthetic catalog of ``n`` items as a `CatalogSource`.

The same ``(n, seed, languages)`` gives byte-identical rows on every run and
machine: every random choice comes from one ``random.Random(seed)`` consumed in
row order, and nothing depends on hashing, the clock or the platform. Rows are
generated lazily, so ``n`` may be in the millions.

Shape, for ``n >= 1`` (``n == 0`` gives three empty tables):

* ``catalogue``: ``max(1, n // 50)`` categories in a tree at most 4 levels
  deep; the first ``max(1, isqrt(categories) // 2)`` are roots, every later one
  hangs under a random earlier category (its grandparent when that one is
  already at level 4).
* ``products``: ``min(n - categories, max(1, n // 4))`` products, each in 1 to 3
  distinct categories (``ID_catalogue`` list).
* ``product_formats``: the rest, so the three tables hold exactly ``n`` items;
  variants are spread evenly and in order over the products (``ID_products``).

Every table has, after its key columns and ``REF``, a multilingual name and
description per language (``<basename>_<lang>``; text drawn from a fixed
parallel vocabulary, so the languages read as translations of each other;
a language without a vocabulary reuses the English one), a ``list`` of tags
(with ``tag_translations``), numeric, boolean and datetime (``YYYY-MM-DD
HH:MM:SS``, UTC) columns, and an image column with ``ORG`` and ``THM`` tuples;
products also have a ``file`` column with one ``FILE`` slot in about a third
of the rows. File IDs count 1, 2, ... over all media in row order. A variant
row is about 400-600 bytes of JSON with the default three languages.

Over 400 lines: the word lists that make generated text read like a catalog.
"""

from __future__ import annotations

import itertools
import math
import random
import time
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from bulkflow.emulator._source import CatalogSource, SourceRow

__all__ = ["load_synthetic"]

_TABLES = ("catalogue", "products", "product_formats")
_PREFIXES = {
    "catalogue": "section",
    "products": "product",
    "product_formats": "format",
}
_REF_PREFIXES = {"catalogue": "SEC", "products": "PRD", "product_formats": "FMT"}
_MAX_DEPTH = 4

_MEDIA_HOST = "https://media.synthetic.example"
_IMAGE_SIZES = {"ORG": {"width": 0, "height": 0}, "THM": {"width": 150, "height": 150}}
#: First update time given to generated items (2017-07-14) and the span after it.
_EPOCH = 1_500_000_000
_SPAN = 200_000_000

# Parallel vocabularies: word i means the same in every language, so one draw
# of indices renders as a name or description in each language.
_WORDS: dict[str, tuple[str, ...]] = {
    "en": (
        "trail", "jacket", "light", "warm", "water", "bottle", "classic", "shirt",
        "running", "shoe", "mountain", "bag", "soft", "cotton", "wool", "blue",
        "green", "red", "black", "white", "comfort", "travel", "urban", "sport",
        "fit", "strong", "fresh", "daily", "outdoor", "fabric", "pocket", "zip",
        "hood", "breathable", "durable", "quick", "dry", "layer", "winter",
        "summer", "design", "style", "premium", "natural", "ride", "yoga",
        "backpack", "belt",
    ),
    "es": (
        "sendero", "chaqueta", "ligero", "cálido", "agua", "botella", "clásico",
        "camisa", "carrera", "zapato", "montaña", "bolsa", "suave", "algodón",
        "lana", "azul", "verde", "rojo", "negro", "blanco", "comodidad", "viaje",
        "urbano", "deporte", "ajuste", "fuerte", "fresco", "diario", "exterior",
        "tejido", "bolsillo", "cremallera", "capucha", "transpirable",
        "duradero", "rápido", "seco", "capa", "invierno", "verano", "diseño",
        "estilo", "prémium", "natural", "paseo", "yoga", "mochila", "cinturón",
    ),
    "fr": (
        "sentier", "veste", "léger", "chaud", "eau", "bouteille", "classique",
        "chemise", "course", "chaussure", "montagne", "sac", "doux", "coton",
        "laine", "bleu", "vert", "rouge", "noir", "blanc", "confort", "voyage",
        "urbain", "sport", "coupe", "solide", "frais", "quotidien", "extérieur",
        "tissu", "poche", "fermeture", "capuche", "respirant", "durable",
        "rapide", "sec", "couche", "hiver", "été", "conception", "style",
        "premium", "naturel", "balade", "yoga", "sac à dos", "ceinture",
    ),
    "de": (
        "Pfad", "Jacke", "leicht", "warm", "Wasser", "Flasche", "klassisch",
        "Hemd", "Laufen", "Schuh", "Berg", "Tasche", "weich", "Baumwolle",
        "Wolle", "blau", "grün", "rot", "schwarz", "weiß", "Komfort", "Reise",
        "urban", "Sport", "Passform", "stark", "frisch", "täglich", "draußen",
        "Stoff", "Fach", "Reißverschluss", "Kapuze", "atmungsaktiv",
        "langlebig", "schnell", "trocken", "Schicht", "Winter", "Sommer",
        "Design", "Stil", "Premium", "natürlich", "Fahrt", "Yoga", "Rucksack",
        "Gürtel",
    ),
}  # fmt: skip
_TAGS = ("new", "sale", "eco", "bestseller", "limited", "outlet", "gift", "exclusive")
_TAG_WORDS: dict[str, tuple[str, ...]] = {
    "es": ("nuevo", "oferta", "eco", "superventas", "limitado", "outlet", "regalo",
           "exclusivo"),
    "fr": ("nouveau", "soldes", "éco", "meilleure vente", "limité", "déstockage",
           "cadeau", "exclusif"),
    "de": ("neu", "Angebot", "öko", "Bestseller", "limitiert", "Outlet", "Geschenk",
           "exklusiv"),
}  # fmt: skip
_TABLE_TITLES: dict[str, tuple[str, str, str]] = {
    "en": ("Categories", "Products", "Variants"),
    "es": ("Categorías", "Productos", "Variantes"),
    "fr": ("Catégories", "Produits", "Variantes"),
    "de": ("Kategorien", "Produkte", "Varianten"),
}
#: Words per name and per description, by table (min, max).
_NAME_WORDS = (2, 3)
_DESCRIPTION_WORDS = {
    "catalogue": (6, 14),
    "products": (18, 40),
    # Sized so a variant row averages about 500 bytes with three languages.
    "product_formats": (6, 13),
}


@dataclass(frozen=True)
class _Plan:
    """How many items each table gets, and what drives their values."""

    seed: int
    languages: tuple[str, ...]
    categories: int
    products: int
    formats: int


@dataclass
class _State:
    """What one pass over the rows carries from row to row."""

    rng: random.Random
    file_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    # Index 0 stands for "no parent" so category IDs index these directly.
    parents: array[int] = field(default_factory=lambda: array("l", [0]))
    depths: bytearray = field(default_factory=lambda: bytearray(1))


def load_synthetic(
    n: int, *, seed: int = 0, languages: tuple[str, ...] = ("en", "es", "fr")
) -> CatalogSource:
    """Describe a synthetic catalog of exactly ``n`` items; rows come lazily."""
    plan = _plan(n, seed, languages)
    info = {table: _table_info(table, languages) for table in _TABLES}
    return CatalogSource(
        name=f"synthetic:{n}:seed={seed}",
        tables=_TABLES,
        schema=_schema(languages),
        data_schema_info=info,
        data_schema={table: _data_schema(info[table]) for table in _TABLES},
        rows=lambda: _rows(plan),
        notes={
            "items": f"{plan.categories} categories, {plan.products} products,"
            f" {plan.formats} variants (seed {seed})",
        },
    )


def _plan(n: int, seed: int, languages: tuple[str, ...]) -> _Plan:
    """Check the arguments and split ``n`` over the three tables."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not languages or len(set(languages)) != len(languages):
        raise ValueError(f"languages must be non-empty and distinct: {languages}")
    if n == 0:
        return _Plan(seed, languages, 0, 0, 0)
    categories = max(1, n // 50)
    products = min(n - categories, max(1, n // 4))
    return _Plan(seed, languages, categories, products, n - categories - products)


# -- schema -----------------------------------------------------------------


def _schema(languages: tuple[str, ...]) -> dict[str, Any]:
    """The ``schema`` block (§2.3); the server adds ``connector_ID``."""
    titles = {
        language: dict(
            zip(_TABLES, _TABLE_TITLES.get(language, _TABLE_TITLES["en"]), strict=True)
        )
        for language in languages
    }
    return {
        "connector_type": "CN_CUSTOM",
        "company_ID": 1002,
        "company_name": "Synthetic catalog",
        "default_language": languages[0],
        "languages": list(languages),
        "offline_mode": 0,
        "sanitized_table_names": {table: table for table in _TABLES},
        "language_table_names": {
            table: {language: titles[language][table] for language in languages}
            for table in _TABLES
        },
        "headings": {},
        "custom_parameters": {},
    }


def _table_info(table: str, languages: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Column properties of one table, in data_schema order."""
    prefix = _PREFIXES[table]
    info: dict[str, dict[str, Any]] = {"ID": {"type": "key"}}
    info.update(_key_info(table))
    info["REF"] = {"type": "string", "title": "Reference"}
    for basename, title in (("name", "Name"), ("description", "Description")):
        for language in languages:
            info[f"{prefix}_{basename}_{language}"] = {
                "type": "string" if basename == "name" else "big_string",
                "title": title,
                "basename": f"{prefix}_{basename}",
                "language_code": language,
            }
    info[f"{prefix}_tags"] = _tags_info(languages)
    info.update(_scalar_info(table))
    info[f"{prefix}_image"] = {"type": "image", "title": "Images", "sizes": _sizes()}
    if table == "products":
        info["product_manual"] = {"type": "file", "title": "Manual"}
    return info


def _key_info(table: str) -> dict[str, dict[str, Any]]:
    """The parent or join column of a table."""
    if table == "catalogue":
        return {"ID_PARENT": {"type": "key", "title": "Parent category"}}
    if table == "products":
        return {
            "ID_catalogue": {
                "type": "list",
                "title": "Categories",
                "table_key": "catalogue",
            }
        }
    return {"ID_products": {"type": "key", "title": "Product", "table_key": "products"}}


def _tags_info(languages: tuple[str, ...]) -> dict[str, Any]:
    """The tag list column, with translations for the languages that have them."""
    translations = {
        language: dict(zip(_TAGS, _TAG_WORDS[language], strict=True))
        for language in languages
        if language in _TAG_WORDS
    }
    return {"type": "list", "title": "Tags", "tag_translations": translations}


def _scalar_info(table: str) -> dict[str, dict[str, Any]]:
    """The numeric, boolean and datetime columns of a table."""
    prefix = _PREFIXES[table]
    if table == "catalogue":
        numbers = {f"{prefix}_position": {"type": "numeric", "title": "Position"}}
    else:
        numbers = {
            f"{prefix}_price": {"type": "numeric", "title": "Price"},
            f"{prefix}_stock": {"type": "numeric", "title": "Stock"},
        }
    return {
        **numbers,
        f"{prefix}_active": {"type": "boolean", "title": "Active"},
        f"{prefix}_updated": {"type": "datetime", "title": "Last update"},
    }


def _sizes() -> dict[str, dict[str, int]]:
    """A fresh copy of the image sizes, so no two tables share one dict."""
    return {code: dict(size) for code, size in _IMAGE_SIZES.items()}


def _data_schema(info: dict[str, dict[str, Any]]) -> list[Any]:
    """``STATUS`` then the info's columns, media columns as sub-label dicts."""
    layout: list[Any] = ["STATUS"]
    for column, entry in info.items():
        if entry["type"] == "image":
            layout.append({column: ["STATUS", "ID", *entry["sizes"]]})
        elif entry["type"] == "file":
            layout.append({column: ["STATUS", "ID", "FILE"]})
        else:
            layout.append(column)
    return layout


# -- rows -------------------------------------------------------------------


def _rows(plan: _Plan) -> Iterator[SourceRow]:
    """Yield every row in serving order from a fresh random stream."""
    state = _State(random.Random(plan.seed))
    roots = max(1, math.isqrt(plan.categories) // 2)
    for item_id in range(1, plan.categories + 1):
        parent = 0 if item_id <= roots else _category_parent(state, item_id)
        yield "catalogue", item_id, _category(state, plan, item_id, parent)
    for item_id in range(1, plan.products + 1):
        yield "products", item_id, _product(state, plan, item_id)
    for item_id in range(1, plan.formats + 1):
        # Consecutive variants share a parent, as exports list them grouped.
        parent = 1 + (item_id - 1) * plan.products // plan.formats
        yield "product_formats", item_id, _format(state, plan, item_id, parent)


def _category_parent(state: _State, item_id: int) -> int:
    """A random earlier category, moved up one level if it is at the depth limit."""
    parent = state.rng.randrange(1, item_id)
    if state.depths[parent] >= _MAX_DEPTH:
        parent = state.parents[parent]
    return parent


def _category(state: _State, plan: _Plan, item_id: int, parent: int) -> list[Any]:
    """A category's values after STATUS and ID."""
    state.parents.append(parent)
    state.depths.append(state.depths[parent] + 1)
    rng = state.rng
    return [
        parent,
        f"{_REF_PREFIXES['catalogue']}-{item_id:06d}",
        *_texts(rng, plan.languages, item_id, _DESCRIPTION_WORDS["catalogue"]),
        _tags(rng),
        rng.randrange(1, 100),
        int(rng.random() < 0.95),
        _datetime(rng),
        _images(state, rng.randint(0, 1)),
    ]


def _product(state: _State, plan: _Plan, item_id: int) -> list[Any]:
    """A product's values after STATUS and ID."""
    rng = state.rng
    count = min(plan.categories, rng.randint(1, 3))
    categories = sorted(rng.sample(range(1, plan.categories + 1), count))
    return [
        categories,
        f"{_REF_PREFIXES['products']}-{item_id:07d}",
        *_texts(rng, plan.languages, item_id, _DESCRIPTION_WORDS["products"]),
        _tags(rng),
        *_price_and_stock(rng),
        int(rng.random() < 0.9),
        _datetime(rng),
        _images(state, rng.randint(1, 3)),
        _files(state, rng.random() < 0.3),
    ]


def _format(state: _State, plan: _Plan, item_id: int, parent: int) -> list[Any]:
    """A variant's values after STATUS and ID."""
    rng = state.rng
    return [
        parent,
        f"{_REF_PREFIXES['product_formats']}-{item_id:08d}",
        *_texts(rng, plan.languages, item_id, _DESCRIPTION_WORDS["product_formats"]),
        _tags(rng),
        *_price_and_stock(rng),
        int(rng.random() < 0.9),
        _datetime(rng),
        _images(state, rng.choice((0, 1, 1, 1, 2))),
    ]


def _texts(
    rng: random.Random,
    languages: tuple[str, ...],
    item_id: int,
    description_words: tuple[int, int],
) -> list[str]:
    """Names for every language, then descriptions for every language."""
    name = _draw(rng, _NAME_WORDS)
    description = _draw(rng, description_words)
    names = [f"{_render(language, name)} {item_id}" for language in languages]
    descriptions = [f"{_render(language, description)}." for language in languages]
    return [*names, *descriptions]


def _draw(rng: random.Random, bounds: tuple[int, int]) -> list[int]:
    """Word indices for one text, between ``bounds`` words long."""
    size = len(_WORDS["en"])
    return [rng.randrange(size) for _ in range(rng.randint(*bounds))]


def _render(language: str, indices: list[int]) -> str:
    """The words in one language, first letter capitalised."""
    words = _WORDS.get(language, _WORDS["en"])
    text = " ".join(words[index] for index in indices)
    return text[:1].upper() + text[1:]


def _tags(rng: random.Random) -> list[str]:
    """Zero to three distinct tags, in vocabulary order."""
    return sorted(rng.sample(_TAGS, rng.randint(0, 3)), key=_TAGS.index)


def _price_and_stock(rng: random.Random) -> tuple[float, int]:
    """A price with cents and a stock count."""
    return rng.randrange(199, 50_000) / 100, rng.randrange(0, 500)


def _datetime(rng: random.Random) -> str:
    """A UTC datetime string; ``gmtime`` keeps it independent of the local zone."""
    stamp = _EPOCH + rng.randrange(_SPAN)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(stamp))


def _images(state: _State, count: int) -> list[list[Any]]:
    """``count`` image tuples ``["M", file_id, ORG, THM]``."""
    tuples: list[list[Any]] = []
    for file_id in itertools.islice(state.file_ids, count):
        org = f"{_MEDIA_HOST}/img/{file_id}.jpg"
        tuples.append(["M", file_id, org, f"{_MEDIA_HOST}/img/thm/{file_id}.jpg"])
    return tuples


def _files(state: _State, present: bool) -> list[list[Any]]:
    """No file, or one ``["M", file_id, FILE]`` tuple."""
    if not present:
        return []
    file_id = next(state.file_ids)
    return [["M", file_id, f"{_MEDIA_HOST}/files/{file_id}.pdf"]]
