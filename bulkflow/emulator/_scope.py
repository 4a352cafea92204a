"""Which items a connector delivers, and which extra rows its flags ask for.

A connector's scope is its catalog minus hidden and deleted items, cut down
to the category subtrees its ``categories`` option names (a "channel"). Status
cascades down the hierarchy (``saleslayer-1.18.md`` §3.4): a category is in
scope when it and all its ancestors are; an item joined to a parent table
(a product to its categories, a variant to its product) when it is not hidden
and at least one of its parents is in scope.

An ``update`` then answers every item changed since ``last_update``: ``M`` when
it is in scope now, ``D`` when it is not (deleted, hidden, or moved out of
the channel). That rule needs no memory of what a connector was sent before,
and sends a deletion for an item the client never had only in the harmless
case of an item created and removed between two runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bulkflow.emulator._store import CatalogStore

Tree = dict[int, tuple[list[int], bool, bool]]


@dataclass(frozen=True)
class Layout:
    """How the catalog's tables hang together, from ``data_schema``.

    ``joins`` maps a table to the table its first ``ID_*`` column points at
    (itself for ``ID_PARENT``); a table without one is absent.
    """

    tables: tuple[str, ...]
    joins: dict[str, str]

    @classmethod
    def of(cls, store: CatalogStore) -> Layout:
        """Read the layout from the store's meta data."""
        tables = tuple(store.get_meta("tables") or ())
        data_schema = store.get_meta("data_schema") or {}
        info = store.get_meta("data_schema_info") or {}
        joins: dict[str, str] = {}
        for table in tables:
            for entry in data_schema.get(table, [])[2:]:
                if isinstance(entry, str) and entry.startswith("ID_"):
                    joins[table] = _target(table, entry, info.get(table, {}))
                    break
        return cls(tables, joins)


def _target(table: str, column: str, info: dict[str, Any]) -> str:
    if column == "ID_PARENT":
        return table
    return str((info.get(column) or {}).get("table_key") or column[len("ID_") :])


@dataclass
class Scope:
    """The ids in scope per table, and the extra ids an update must repeat."""

    visible: dict[str, set[int]] = field(default_factory=dict)
    extra: dict[str, set[int]] = field(default_factory=dict)

    def count(self) -> int:
        """How many items are in scope, all tables together."""
        return sum(len(ids) for ids in self.visible.values())


def compute_scope(
    store: CatalogStore, layout: Layout, options: dict[str, Any]
) -> tuple[Scope, dict[str, Tree]]:
    """Work out which items ``options`` (a connector's) put in scope."""
    roots = {int(id_) for id_ in options.get("categories") or ()}
    scope = Scope()
    trees: dict[str, Tree] = {}
    for table in layout.tables:
        tree = trees[table] = store.tree(table)
        target = layout.joins.get(table)
        if target == table:
            scope.visible[table] = _visible_tree(tree, roots)
        elif target is not None:
            parents_in_scope = scope.visible.get(target, set())
            # An item with no parent is in scope only when its parent table
            # is an unrestricted tree (a product without categories, no
            # channel set); a variant without a product never is.
            restricted = bool(roots) or layout.joins.get(target) != target
            scope.visible[table] = {
                id_
                for id_, (parents, hidden, gone) in tree.items()
                if not hidden
                and not gone
                and (
                    any(parent in parents_in_scope for parent in parents)
                    or (not parents and not restricted)
                )
            }
        else:
            scope.visible[table] = {
                id_
                for id_, (_, hidden, gone) in tree.items()
                if not hidden and not gone
            }
    return scope, trees


def _visible_tree(tree: Tree, roots: set[int]) -> set[int]:
    """Ids of a self-referencing table that are shown and inside the channel.

    Shown: neither the item nor any ancestor is hidden or deleted. Inside the
    channel: no ``roots`` are set, or the item is one of them or below one.
    """
    shown: dict[int, bool] = {}

    def is_shown(id_: int) -> bool:
        chain: list[int] = []
        result = True
        while id_ not in shown:
            parents, hidden, gone = tree.get(id_, ([], True, True))
            if hidden or gone or len(chain) > 64:
                result = False
                break
            chain.append(id_)
            parent = parents[0] if parents else 0
            if not parent or parent not in tree:
                break
            id_ = parent
        else:
            result = shown[id_]
        for member in chain:
            shown[member] = result
        return result

    return {id_ for id_ in tree if is_shown(id_) and _under(id_, roots, tree)}


def _under(id_: int, roots: set[int], tree: Tree) -> bool:
    """True when no ``roots`` are set, or ``id_`` is one of them or below one."""
    if not roots:
        return True
    steps = 0
    while id_ and steps < 64:
        if id_ in roots:
            return True
        parents = tree.get(id_, ([], False, False))[0]
        id_ = parents[0] if parents else 0
        steps += 1
    return False


def add_extras(
    scope: Scope,
    layout: Layout,
    trees: dict[str, Tree],
    changed: dict[str, set[int]],
    *,
    parents_tree: bool,
    sibling_variants: bool,
) -> None:
    """Add the rows ``parents_category_tree`` and ``same_parent_variants`` ask for.

    ``parents_category_tree=1``: the categories of changed items below them
    and the ancestors of every category that changed, directly or through
    them. ``same_parent_variants=1``: every variant of a parent one of whose
    variants changed. Extra rows go out as ``M`` rows when in scope.
    """
    tree_tables = [t for t in layout.tables if layout.joins.get(t) == t]
    if parents_tree and tree_tables:
        categories = tree_tables[0]
        touched = set(changed.get(categories, set()))
        for table, target in layout.joins.items():
            if target == categories and table != categories:
                for id_ in changed.get(table, set()):
                    touched.update(trees[table].get(id_, ([], False, False))[0])
        scope.extra[categories] = _with_ancestors(touched, trees[categories])
    if sibling_variants:
        for table, target in layout.joins.items():
            if target == table or layout.joins.get(target) in (None, target):
                # Variants hang below a table that itself hangs below
                # another (products below categories); products are not
                # "variants" of a category.
                continue
            parents = {
                parent
                for id_ in changed.get(table, set())
                for parent in trees[table].get(id_, ([], False, False))[0]
            }
            scope.extra[table] = {
                id_
                for id_, (own, _, _) in trees[table].items()
                if parents.intersection(own)
            }


def _with_ancestors(ids: Iterable[int], tree: Tree) -> set[int]:
    result: set[int] = set()
    for id_ in ids:
        steps = 0
        while id_ and id_ not in result and steps < 64:
            result.add(id_)
            parents = tree.get(id_, ([], False, False))[0]
            id_ = parents[0] if parents else 0
            steps += 1
    return result
