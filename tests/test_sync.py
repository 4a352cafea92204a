"""Exact incremental sync: scopes, cascades, refreshes, several connectors, resume."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest

from bulkflow import (
    ExportConnector,
    RunReport,
    SinkError,
    SQLiteSink,
    StateError,
    export,
)
from bulkflow.emulator import (
    DEMO_CODE,
    DEMO_SECRET,
    CatalogStore,
    EmulatorConfig,
    open_emulator,
)
from bulkflow.emulator._churn import churn, reconfigure, set_hidden
from bulkflow.export._parser import WHOLE_PAGE_BYTES
from bulkflow.sinks import Checkpoint
from bulkflow.testing import DifferentialPlan, replica_tables, run_differential

pytestmark = pytest.mark.anyio

CHANNEL = "CN_CHANNEL"


async def sync(
    url: str, db: Path, *, code: str = DEMO_CODE, page_size: int = 500, **params: str
) -> RunReport:
    """One export run of ``code`` into ``db``."""
    sink = SQLiteSink(db)
    connector = ExportConnector(
        url=url,
        code=code,
        secret=DEMO_SECRET,
        page_size=page_size,
        params={"group_category_id": "1", **params},
    )
    try:
        return await export(connector, sink)
    finally:
        sink.close()


def ids(db: Path, table: str) -> set[int]:
    """The IDs of a replica table."""
    connection = sqlite3.connect(db)
    try:
        return {row[0] for row in connection.execute(f'SELECT "ID" FROM "{table}"')}
    finally:
        connection.close()


def descendants(
    store: CatalogStore, category: int
) -> tuple[set[int], set[int], set[int]]:
    """Categories below ``category`` (itself included), then products, variants.

    Computed from the store's items with plain loops: a second method, beside
    the emulator's scope code.
    """
    categories = {category}
    tree = {id_: parents for id_, (parents, _, _) in store.tree("catalogue").items()}
    changed = True
    while changed:
        changed = False
        for id_, parents in tree.items():
            if id_ not in categories and parents and parents[0] in categories:
                categories.add(id_)
                changed = True
    visible_elsewhere = set(tree) - categories
    products = {
        id_
        for id_, (parents, _, _) in store.tree("products").items()
        if parents and not set(parents) & visible_elsewhere
    }
    variants = {
        id_
        for id_, (parents, _, _) in store.tree("product_formats").items()
        if set(parents) & products
    }
    return categories, products, variants


async def test_hiding_a_category_deletes_everything_below_it(
    luma_store: CatalogStore, luma_url: str, tmp_path: Path
) -> None:
    """Hiding "Men" removes its sub-categories, products only there, and variants."""
    db = tmp_path / "r.sqlite"
    first = await sync(luma_url, db)
    assert first.cursor is not None
    men = 7  # catalog_categories has 6 rows; "Men" opens configurable_categories
    categories, products, variants = descendants(luma_store, men)
    set_hidden(luma_store, "catalogue", men, True, at=first.cursor + 1)

    second = await sync(luma_url, db)

    assert second.action == "update"
    assert len(categories) == 9 and products and variants
    assert ids(db, "catalogue") == set(range(1, 33)) - categories
    assert not ids(db, "products") & products
    assert not ids(db, "product_formats") & variants
    assert second.deletes["catalogue"] == len(categories)
    assert second.deletes["products"] == len(products)


async def test_error_5_turns_into_a_refresh_with_a_warning(
    luma_url: str, tmp_path: Path
) -> None:
    """A cursor in the future is error 5: the run is a refresh and says so."""
    db = tmp_path / "r.sqlite"
    await sync(luma_url, db)
    sink = SQLiteSink(db)
    sink.save_checkpoint(Checkpoint(DEMO_CODE, cursor=4_000_000_000))
    sink.close()

    report = await sync(luma_url, db)

    assert report.action == "refresh"
    assert any("API error 5" in warning for warning in report.warnings)
    assert len(ids(db, "products")) == 191


async def test_refresh_removes_rows_the_connector_no_longer_delivers(
    luma_store: CatalogStore, luma_url: str, tmp_path: Path
) -> None:
    """Rows whose deletion was never sent disappear after the next refresh."""
    db = tmp_path / "r.sqlite"
    first = await sync(luma_url, db)
    # Deleted "before the cursor": no update will ever carry these D rows.
    luma_store.delete("product_formats", 11, at=1)
    luma_store.delete("products", 191, at=1)
    assert (await sync(luma_url, db)).action == "update"
    assert 11 in ids(db, "product_formats")
    reconfigure(luma_store, DEMO_CODE)

    third = await sync(luma_url, db)

    assert first.action == third.action == "refresh"
    assert 11 not in ids(db, "product_formats")
    assert 191 not in ids(db, "products")
    assert len(ids(db, "product_formats")) == 1846


async def test_force_update_only_keeps_a_reconfigured_connector_incremental(
    luma_store: CatalogStore, luma_url: str, tmp_path: Path
) -> None:
    """force_update_only=1 stops a configuration change from forcing a refresh."""
    db = tmp_path / "r.sqlite"
    await sync(luma_url, db)
    reconfigure(luma_store, DEMO_CODE)

    report = await sync(luma_url, db, force_update_only="1")

    assert report.action == "update"
    assert report.upserts == {}


async def test_two_connectors_keep_an_item_until_neither_delivers_it(
    luma_store: CatalogStore, luma_url: str, tmp_path: Path
) -> None:
    """An item leaves the replica only when no connector delivers it any more."""
    gear = 1
    luma_store.put_connector(
        CHANNEL, DEMO_SECRET, kind="export", options={"categories": [gear]}
    )
    db = tmp_path / "r.sqlite"
    await sync(luma_url, db)
    first = await sync(luma_url, db, code=CHANNEL)
    assert first.cursor is not None
    bag = next(
        id_
        for id_, (parents, _, _) in luma_store.tree("products").items()
        if 2 in parents
    )
    # Out of the channel (categories now outside Gear) but still in the catalog.
    values = dict(luma_store.iter_items("products", after_id=bag - 1, limit=1))[bag]
    values[0] = [7]
    luma_store.upsert("products", bag, values, at=first.cursor + 1)

    channel_run = await sync(luma_url, db, code=CHANNEL)
    still_there = bag in ids(db, "products")
    luma_store.delete("products", bag, at=first.cursor + 1)
    await sync(luma_url, db)

    assert channel_run.deletes.get("products") == 1
    assert still_there
    assert bag not in ids(db, "products")


async def test_parents_category_tree_and_same_parent_variants_add_rows(
    luma_store: CatalogStore, luma_url: str, tmp_path: Path
) -> None:
    """The flags repeat a changed variant's siblings and its categories' ancestry."""
    plain_db, flagged_db = tmp_path / "plain.sqlite", tmp_path / "flagged.sqlite"
    await sync(luma_url, plain_db)
    first = await sync(luma_url, flagged_db)
    assert first.cursor is not None
    product, product_values = next(luma_store.iter_items("products", after_id=9))
    variant, variant_values = next(luma_store.iter_items("product_formats"))
    luma_store.upsert("products", product, product_values, at=first.cursor + 1)
    luma_store.upsert("product_formats", variant, variant_values, at=first.cursor + 1)
    # The second method: walk the trees by hand.
    formats = luma_store.tree("product_formats")
    siblings = {
        i for i, (parents, _, _) in formats.items() if parents == [variant_values[0]]
    }
    categories = luma_store.tree("catalogue")
    tree_rows: set[int] = set()
    for category in product_values[0]:
        while category:
            tree_rows.add(category)
            parents = categories[category][0]
            category = parents[0] if parents else 0

    plain = await sync(luma_url, plain_db)
    flagged = await sync(
        luma_url, flagged_db, parents_category_tree="1", same_parent_variants="1"
    )

    assert plain.upserts == {"products": 1, "product_formats": 1}
    assert len(siblings) > 1 and len(tree_rows) > len(product_values[0])
    assert flagged.upserts == {
        "catalogue": len(tree_rows),
        "products": 1,
        "product_formats": len(siblings),
    }


async def test_a_refused_token_restarts_the_run_and_ends_exact(
    luma_store: CatalogStore, luma_url: str, tmp_path: Path
) -> None:
    """A stored next_page that the server refuses leads to a clean new run."""
    db = tmp_path / "r.sqlite"
    sink = SQLiteSink(db)
    sink.save_checkpoint(
        Checkpoint(
            DEMO_CODE,
            run_time=1,
            action="refresh",
            next_url=luma_url + "?code=" + DEMO_CODE + "&page_token=forged",
            pages_done=3,
        )
    )
    sink.close()

    report = await sync(luma_url, db)

    assert report.resumed and report.restarted
    assert report.action == "refresh"
    assert any("cannot continue" in warning for warning in report.warnings)
    assert len(ids(db, "product_formats")) == 1847


async def test_an_expired_token_restarts_the_run(
    luma_store: CatalogStore, tmp_path: Path
) -> None:
    """Error 13 on a stored next_page (token past its lifetime) restarts the run."""
    db = tmp_path / "r.sqlite"

    class StopAfterTwoPages(SQLiteSink):
        pages = 0

        def commit_page(self, *args: Any, **kwargs: Any) -> Any:
            self.pages += 1
            if self.pages > 2:
                raise SinkError("stop here (simulated crash)")
            return super().commit_page(*args, **kwargs)

    async with open_emulator(
        luma_store, config=EmulatorConfig(round_pages=False)
    ) as url:
        stopping = StopAfterTwoPages(db)
        connector = ExportConnector(
            url=url, code=DEMO_CODE, secret=DEMO_SECRET, page_size=100
        )
        with pytest.raises(SinkError, match="simulated crash"):
            await export(connector, stopping)
        stopping.close()
    expired = EmulatorConfig(round_pages=False, token_ttl=-1)
    async with open_emulator(luma_store, config=expired) as url:
        # Same host and port are not guaranteed: point the stored URL here.
        sink = SQLiteSink(db)
        stored = sink.load_checkpoint(DEMO_CODE)
        assert stored.next_url is not None and stored.pages_done == 2
        token = stored.next_url.split("page_token=", 1)[1]
        moved = url + "?code=" + DEMO_CODE + "&page_token=" + token
        moved_state = {**stored.__dict__, "next_url": moved, "origin": None}
        sink.save_checkpoint(Checkpoint(**moved_state))
        sink.close()

        report = await sync(url, db, page_size=5000)

    assert report.resumed and report.restarted
    assert any("API error 13" in warning for warning in report.warnings)
    assert len(ids(db, "product_formats")) == 1847


def test_churn_changes_the_fractions_asked_for(luma_store: CatalogStore) -> None:
    """Fractions are of the live items; a seed makes a round repeatable."""
    live = sum(
        len(luma_store.tree(t)) for t in ("catalogue", "products", "product_formats")
    )

    result = churn(luma_store, seed=7, update=0.1, add=0.05, hide=0.01, delete=0.02)

    assert result.updated == round(live * 0.1)
    assert result.added == round((191 + 1847) * 0.05)
    assert result.hidden + result.shown == round(live * 0.01)
    assert result.deleted == round((191 + 1847) * 0.02)


@pytest.mark.parametrize(
    "whole_page_limit", [None, WHOLE_PAGE_BYTES], ids=["streamed", "whole"]
)
def test_differential_sync_with_kills_ends_exact(
    tmp_path: Path, whole_page_limit: int | None
) -> None:
    """Seeded churn, incremental runs and SIGKILLs end equal to a fresh export.

    With bulkflow's default (every page streams) and with these small pages
    read whole.
    """
    plan = DifferentialPlan(
        catalog="synthetic:600",
        seed=21,
        rounds=6,
        page_size=5,
        kill_probability=0.6,
        whole_page_limit=whole_page_limit,
    )

    result = run_differential(tmp_path, plan)

    assert result.rows_compared > 200, "the comparison must not be vacuous"
    assert result.kills > 0
    assert result.lost == result.extra == result.differing == 0, result.summary()
    tables = replica_tables(tmp_path / "replica.sqlite")
    assert set(tables) == {"catalogue", "products", "product_formats"}


@pytest.mark.parametrize(("lag", "carried"), [(2, 1), (0, 0)])
async def test_a_change_committed_after_a_run_started_reaches_the_next_run(
    luma_source: Any, tmp_path: Path, lag: int, carried: int
) -> None:
    """A change stamped before a run's time but committed after it is not lost.

    The change's transaction starts (and takes its time stamp), a run starts
    in a later second and cannot see it, then the change commits: the next
    update carries it thanks to the emulator's lag, and (the hazard the lag
    is there for) would not without it.
    """
    import time as clock

    store = CatalogStore.open(tmp_path / "emulator")
    store.load(luma_source)
    store.put_connector(DEMO_CODE, DEMO_SECRET, kind="export", options={})
    writer = CatalogStore.open(tmp_path / "emulator")
    db = tmp_path / "r.sqlite"
    config = EmulatorConfig(lag=lag)
    async with open_emulator(store, config=config) as url:
        await sync(url, db)
        with writer.transaction():
            stamp = int(clock.time())
            writer.delete("product_formats", 3, at=stamp)
            # Into the next second: the run's time is then past the stamp.
            await anyio.sleep(stamp + 1 - clock.time())
            during = await sync(url, db)
        after = await sync(url, db)
    writer.close()
    store.close()

    assert during.deletes == {}
    assert after.deletes.get("product_formats", 0) == carried
    assert (3 in ids(db, "product_formats")) == (not carried)


async def test_a_client_lag_asks_again_for_the_last_seconds(
    luma_store: CatalogStore, tmp_path: Path
) -> None:
    """With lag=L, the update asks from cursor - L: recent changes come again."""
    config = EmulatorConfig(round_pages=False, lag=0)
    db = tmp_path / "r.sqlite"
    async with open_emulator(luma_store, config=config) as url:
        first = await sync(url, db)
        assert first.cursor is not None
        luma_store.delete("product_formats", 8, at=first.cursor - 5)
        plain = await sync(url, db)
        sink = SQLiteSink(db)
        lagging = ExportConnector(
            url=url, code=DEMO_CODE, secret=DEMO_SECRET, page_size=500, lag=10
        )
        try:
            caught_up = await export(lagging, sink)
        finally:
            sink.close()

    assert plain.deletes == {}
    assert caught_up.deletes == {"product_formats": 1}


async def test_state_from_another_service_is_refused(
    luma_url: str, tmp_path: Path
) -> None:
    """A replica synced from one host does not send its cursor to another."""
    db = tmp_path / "r.sqlite"
    await sync(luma_url, db)
    sink = SQLiteSink(db)
    stored = sink.load_checkpoint(DEMO_CODE)
    sink.save_checkpoint(Checkpoint(**{**stored.__dict__, "origin": "https://x:443"}))
    sink.close()

    with pytest.raises(StateError, match=r"came from https://x:443.*state --reset"):
        await sync(luma_url, db)


async def test_refresh_counts_and_keeps_rows_it_never_delivered(
    luma_store: CatalogStore, luma_url: str, tmp_path: Path
) -> None:
    """A refresh's removals are reported; rows bulkflow did not write stay."""
    db = tmp_path / "r.sqlite"
    await sync(luma_url, db)
    foreign = sqlite3.connect(db)
    foreign.execute('INSERT INTO products ("ID", "REF") VALUES (999999, \'MINE\')')
    foreign.commit()
    foreign.close()
    luma_store.delete("products", 190, at=1)  # no D row will ever say so
    reconfigure(luma_store, DEMO_CODE)

    report = await sync(luma_url, db)

    assert report.action == "refresh"
    assert report.deletes == {"products": 1}
    assert ids(db, "products") == (set(range(1, 192)) - {190}) | {999999}
