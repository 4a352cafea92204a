"""Changing the emulator's catalog between and during runs: ``bulkflow churn``.

Each operation picks a fraction of the live items at random (seeded, so a
sequence of churns can be replayed) and stamps what it changes with the
current time, so the next ``update`` run carries it. Hiding or deleting an
item cascades: its descendants (sub-categories, the products in them, their
variants) are touched too, because their scope changed with it.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from bulkflow.emulator._scope import Layout
from bulkflow.emulator._store import CatalogStore


@dataclass(frozen=True)
class ChurnResult:
    """How many items each operation changed (cascades not counted)."""

    updated: int = 0
    deleted: int = 0
    hidden: int = 0
    shown: int = 0
    added: int = 0

    def __str__(self) -> str:
        return (
            f"{self.updated} updated, {self.deleted} deleted, {self.hidden} hidden, "
            f"{self.shown} shown again, {self.added} added"
        )


def churn(
    store: CatalogStore,
    *,
    seed: int,
    update: float = 0.0,
    delete: float = 0.0,
    hide: float = 0.0,
    add: float = 0.0,
    now: int | None = None,
) -> ChurnResult:
    """Apply one round of changes, each a fraction of the live items, atomically.

    ``hide`` flips visibility: a hidden item picked again is shown again (and
    comes back as an ``M`` row). ``add`` and ``delete`` work on products and
    variants (their fraction is of those); categories leave scope by being
    hidden.
    """
    rng = random.Random(seed)
    layout = Layout.of(store)
    with store.transaction():
        # Stamped once the write lock is held, so waiting for it does not
        # widen the gap between the stamp and the commit.
        at = int(time.time()) if now is None else now
        trees = {table: store.tree(table) for table in layout.tables}
        live = [
            (table, id_)
            for table in layout.tables
            for id_, (_, _, gone) in sorted(trees[table].items())
            if not gone
        ]
        # Items are added and deleted among products and variants only, so
        # the category tree keeps its size over hundreds of rounds (a copy
        # of a random item would make categories grow without end).
        leaves = [(t, i) for t, i in live if layout.joins.get(t) != t]
        result = ChurnResult(
            updated=_update(store, rng, _pick(rng, live, update), at),
            added=_add(store, rng, _pick(rng, leaves, add), at),
        )
        hidden, shown = _hide(store, layout, trees, _pick(rng, live, hide), at)
        deleted = _delete(store, layout, trees, _pick(rng, leaves, delete), at)
    return ChurnResult(result.updated, deleted, hidden, shown, result.added)


def set_hidden(
    store: CatalogStore, table: str, id_: int, hidden: bool, *, at: int
) -> None:
    """Hide one item (or show it again) and touch everything below it."""
    layout = Layout.of(store)
    trees = {name: store.tree(name) for name in layout.tables}
    with store.transaction():
        store.set_hidden(table, id_, hidden, at=at)
        _touch_descendants(store, layout, trees, table, {id_}, at)


def show_all(store: CatalogStore, *, now: int | None = None) -> int:
    """Show every hidden item again, touching what is below it; return how many.

    Long churn hides categories (and with them all below), so that a catalog
    may end nearly empty; showing everything brings it back in one update.
    """
    layout = Layout.of(store)
    with store.transaction():
        at = int(time.time()) if now is None else now
        trees = {table: store.tree(table) for table in layout.tables}
        shown = 0
        for table in layout.tables:
            for id_, (_, hidden, _) in sorted(trees[table].items()):
                if hidden:
                    store.set_hidden(table, id_, False, at=at)
                    _touch_descendants(store, layout, trees, table, {id_}, at)
                    shown += 1
    return shown


def reconfigure(store: CatalogStore, code: str) -> None:
    """Change a connector's configuration (its next update becomes a refresh).

    Raises:
        KeyError: when there is no such connector.
    """
    connector = store.connector(code)
    if connector is None:
        raise KeyError(code)
    options = dict(connector.options)
    options["revision"] = int(options.get("revision", 0)) + 1
    store.put_connector(code, connector.secret, kind=connector.kind, options=options)


def _pick(rng: random.Random, items: list[Any], fraction: float) -> list[Any]:
    count = min(len(items), round(len(items) * max(0.0, fraction)))
    if fraction > 0 and items and count == 0:
        count = 1
    return rng.sample(items, count)


def _update(
    store: CatalogStore, rng: random.Random, picked: list[tuple[str, int]], at: int
) -> int:
    """Change one text value of each picked item."""
    for table, id_ in picked:
        values = _values(store, table, id_)
        position = _text_position(store, table)
        if position is not None:
            stem = str(values[position] or "").split(" ~", 1)[0]
            values[position] = f"{stem} ~{rng.randrange(10**6)}"
        store.upsert(table, id_, values, at=at)
    return len(picked)


def _add(
    store: CatalogStore, rng: random.Random, picked: list[tuple[str, int]], at: int
) -> int:
    """Add one new item per picked one, a copy with a new ID and REF."""
    ref_positions = _positions(store, "REF")
    for table, id_ in picked:
        values = _values(store, table, id_)
        new_id = store.max_id(table) + 1
        position = ref_positions.get(table)
        if position is not None:
            values[position] = f"{values[position]}-N{new_id}"
        store.upsert(table, new_id, values, at=at)
    return len(picked)


def _hide(
    store: CatalogStore,
    layout: Layout,
    trees: dict[str, dict[int, tuple[list[int], bool, bool]]],
    picked: list[tuple[str, int]],
    at: int,
) -> tuple[int, int]:
    hidden = shown = 0
    for table, id_ in picked:
        now_hidden = not trees[table][id_][1]
        store.set_hidden(table, id_, now_hidden, at=at)
        hidden, shown = hidden + now_hidden, shown + (not now_hidden)
        _touch_descendants(store, layout, trees, table, {id_}, at)
    return hidden, shown


def _delete(
    store: CatalogStore,
    layout: Layout,
    trees: dict[str, dict[int, tuple[list[int], bool, bool]]],
    picked: list[tuple[str, int]],
    at: int,
) -> int:
    for table, id_ in picked:
        store.delete(table, id_, at=at)
        _touch_descendants(store, layout, trees, table, {id_}, at)
    return len(picked)


def _touch_descendants(
    store: CatalogStore,
    layout: Layout,
    trees: dict[str, dict[int, tuple[list[int], bool, bool]]],
    table: str,
    ids: set[int],
    at: int,
) -> None:
    """Mark every item below ``ids`` as changed: their scope may have moved."""
    if layout.joins.get(table) == table:
        ids = _subtree(trees[table], ids)
        store.touch(table, ids, at=at)
    for child, target in layout.joins.items():
        if target != table or child == table:
            continue
        below = {
            id_
            for id_, (parents, _, _) in trees[child].items()
            if ids.intersection(parents)
        }
        if below:
            store.touch(child, below, at=at)
            _touch_descendants(store, layout, trees, child, below, at)


def _subtree(tree: dict[int, tuple[list[int], bool, bool]], ids: set[int]) -> set[int]:
    result = set(ids)
    grew = True
    while grew:
        grew = False
        for id_, (parents, _, _) in tree.items():
            if id_ not in result and parents and parents[0] in result:
                result.add(id_)
                grew = True
    return result


def _values(store: CatalogStore, table: str, id_: int) -> list[Any]:
    for found_id, values in store.iter_items(table, after_id=id_ - 1, limit=1):
        if found_id == id_:
            return values
    raise KeyError((table, id_))


def _positions(store: CatalogStore, column: str) -> dict[str, int]:
    """Per table, the value position of ``column`` (after STATUS and ID)."""
    data_schema: dict[str, list[Any]] = store.get_meta("data_schema") or {}
    return {
        table: entries[2:].index(column)
        for table, entries in data_schema.items()
        if column in entries[2:]
    }


def _text_position(store: CatalogStore, table: str) -> int | None:
    """The first plain text column of ``table`` other than REF: the one churn edits."""
    entries: list[Any] = (store.get_meta("data_schema") or {}).get(table, [])
    info: dict[str, Any] = (store.get_meta("data_schema_info") or {}).get(table, {})
    for position, entry in enumerate(entries[2:]):
        if not isinstance(entry, str) or entry == "REF" or entry.startswith("ID_"):
            continue
        if (info.get(entry) or {}).get("type", "string") == "string":
            return position
    return None
