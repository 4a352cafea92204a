"""Naming catalogs on the command line: ``luma``, ``synthetic:N`` and ``empty``."""

from __future__ import annotations

from bulkflow._exceptions import UsageError
from bulkflow.emulator._source import CatalogSource

#: The export connector a new emulator gets when none is named. The secret is
#: public on purpose: it guards a local emulator, not data.
DEMO_CODE = "CN_BULKFLOW_DEMO"
DEMO_SECRET = "bulkflow-demo-secret"


def catalog_source(spec: str, *, seed: int = 0) -> CatalogSource:
    """Return the catalog named by ``spec``.

    Raises:
        UsageError: for an unknown name or a bad ``synthetic:N`` size.
    """
    name, _, size = spec.partition(":")
    if name == "luma" and not size:
        from bulkflow.emulator._luma import load_luma

        try:
            return load_luma()
        except FileNotFoundError as exc:
            raise UsageError(str(exc)) from None
    if name == "synthetic":
        try:
            count = int(size.replace("_", ""))
        except ValueError:
            count = -1
        if count < 0:
            raise UsageError(
                f"--catalog {spec!r}: synthetic needs a size, e.g. synthetic:10000"
            )
        from bulkflow.emulator._synthetic import load_synthetic

        return load_synthetic(count, seed=seed)
    if name == "empty" and not size:
        return empty_catalog()
    raise UsageError(
        f"--catalog {spec!r} is not a catalog; use luma, synthetic:N or empty"
    )


def empty_catalog() -> CatalogSource:
    """A catalog with the three standard tables and no items, for imports."""
    from bulkflow.emulator._luma import load_luma

    luma = load_luma()
    return CatalogSource(
        name="empty",
        tables=luma.tables,
        schema=luma.schema,
        data_schema_info=luma.data_schema_info,
        data_schema=luma.data_schema,
        rows=lambda: iter(()),
    )
