"""The results of a benchmark: combined, checked, laid out as JSON, table and plot."""

from __future__ import annotations

import os
import platform
import sqlite3
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from rich.console import Console

    from bulkflow._bench._run import Plan

#: What the performance work aims at: (figure, comparison, bound).
TARGETS = (
    ("bulkflow_vs_naive", ">=", 2.0),
    ("bulkflow_vs_min_ceiling", ">=", 0.6),
    ("peak_rss_mib", "<=", 150.0),
    ("rss_largest_vs_smallest_page", "<=", 1.2),
)

#: The clients as the table and the plot name them: (label, key in a sweep entry).
CLIENTS = (
    ("bulkflow export", "bulkflow"),
    ("naive baseline", "naive"),
    ("dlt → DuckDB", "dlt_duckdb"),
    ("dlt → Parquet", "dlt_parquet"),
)

#: The dlt baselines' keys, in ``baselines`` and in each sweep entry.
DLT_KEYS = ("dlt_duckdb", "dlt_parquet")

#: The rungs of the ceiling ladder as the table names them: (label, key).
RUNGS = (
    ("body read", "body_rows_per_s"),
    ("ijson parse", "parse_rows_per_s"),
    ("orjson parse", "orjson_rows_per_s"),
    ("SQLite sink", "sink_rows_per_s"),
)


def _rate(result: dict[str, Any], key: str = "rows_per_s") -> float | None:
    value = result.get(key)
    return float(value) if value else None


def ratio(top: float | None, bottom: float | None) -> float | None:
    """``top / bottom`` to three places, or ``None`` when either is missing."""
    return round(top / bottom, 3) if top and bottom else None


def ratios(entry: dict[str, Any]) -> dict[str, Any]:
    """Compare bulkflow with the naive baseline and the ceilings at one page size."""
    bulkflow = _rate(entry["bulkflow"])
    naive = _rate(entry["naive"])
    parse = _rate(entry["ceilings"], "parse_rows_per_s")
    sink = _rate(entry["ceilings"], "sink_rows_per_s")
    lowest = min((r for r in (parse, sink) if r), default=None)
    figures = {
        "bulkflow_vs_naive": ratio(bulkflow, naive),
        "bulkflow_vs_min_ceiling": ratio(bulkflow, lowest),
        "min_ceiling": "parse" if lowest and lowest == parse else "sink",
        "bulkflow_vs_parse_ceiling": ratio(bulkflow, parse),
        "bulkflow_vs_sink_ceiling": ratio(bulkflow, sink),
        "naive_vs_min_ceiling": ratio(naive, lowest),
    }
    for key in DLT_KEYS:
        if key in entry:
            figures[f"bulkflow_vs_{key}"] = ratio(bulkflow, _rate(entry[key]))
    return figures


def _rss_growth(sweep: list[dict[str, Any]]) -> float | None:
    """bulkflow's peak RSS at the largest page size over that at the smallest."""
    if len(sweep) < 2:
        return None
    by_size = sorted(sweep, key=lambda entry: int(entry["page_size"]))
    small = by_size[0]["bulkflow"].get("peak_rss_mib")
    large = by_size[-1]["bulkflow"].get("peak_rss_mib")
    return ratio(large, small)


def targets(figures: dict[str, Any]) -> dict[str, Any]:
    """Check each target against ``figures``; a missing figure is not judged."""
    checked: dict[str, Any] = {}
    for name, comparison, bound in TARGETS:
        value = figures.get(name)
        met = None
        if value is not None:
            met = value >= bound if comparison == ">=" else value <= bound
        checked[name] = {"want": f"{comparison} {bound:g}", "got": value, "met": met}
    return checked


def build_report(
    plan: Plan, raw: dict[str, Any], dlt_skipped: str | None
) -> dict[str, Any]:
    """Lay out the results: the headline page size on top, every page size below.

    ``dlt_skipped`` says why the dlt baselines did not run; each of them is
    then ``{"skipped": reason}`` in ``baselines``.
    """
    sweep = raw["sweep"]
    for entry in sweep:
        entry["ratios"] = ratios(entry)
    head = next(e for e in sweep if e["page_size"] == plan.headline)
    all_ratios = {**head["ratios"], "rss_largest_vs_smallest_page": _rss_growth(sweep)}
    figures = {**all_ratios, "peak_rss_mib": head["bulkflow"].get("peak_rss_mib")}
    skipped = {"skipped": dlt_skipped or "not run"}
    dlt = {key: head.get(key, skipped) for key in DLT_KEYS}

    return {
        "scenario": {
            "rows": plan.rows,
            "page_size": plan.headline,
            "page_sizes": list(plan.page_sizes),
            "sink": "sqlite",
            "connectors": plan.connectors,
            "seed": plan.seed,
            "repeat": plan.repeat,
        },
        "machine": {**machine(), "load_average_start": raw["load_average_start"]},
        "server": raw["server"],
        "bulkflow": head["bulkflow"],
        "baselines": {"naive": head["naive"], **dlt},
        "ceilings": head["ceilings"],
        "ratios": all_ratios,
        "targets": targets(figures),
        "sweep": sweep,
        "failures": raw["failures"],
    }


def machine() -> dict[str, Any]:
    """The machine, interpreter and library versions the numbers belong to."""
    from bulkflow._bench._ceilings import ijson_backend

    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_mib": _memory_mib(),
        "load_average_end": [round(load, 2) for load in os.getloadavg()],
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "ijson_backend": getattr(ijson_backend(), "backend", "python"),
        "sqlite": sqlite3.sqlite_version,
        "versions": {name: _version(name) for name in _PACKAGES},
    }


_PACKAGES = (
    "bulkflow",
    "aiohttp",
    "anyio",
    "ijson",
    "orjson",
    "dlt",
    "duckdb",
    "pyarrow",
)


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_mib() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def count_rows(db: Path) -> int:
    """Rows of every table in ``db`` but bulkflow's and SQLite's own."""
    connection = sqlite3.connect(db)
    try:
        found = connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        names = [str(row[0]) for row in found]
        total = 0
        for name in names:
            if not name.startswith(("_bulkflow", "sqlite_")):
                quoted = '"' + name.replace('"', '""') + '"'
                total += connection.execute(
                    f"SELECT count(*) FROM {quoted}"
                ).fetchone()[0]
        return int(total)
    finally:
        connection.close()


def combine(results: list[dict[str, Any]], *, expected: int) -> dict[str, Any]:
    """One figure for side-by-side clients: rows over the slowest one's seconds.

    Peak RSS is the largest of one process; ``peak_rss_sum_mib`` adds the
    processes' peaks, an upper bound of what they held at once.
    """
    if len(results) == 1:
        return {**results[0], "rows_expected": expected}
    peaks = [float(result["peak_rss_mib"]) for result in results]
    combined: dict[str, Any] = {
        "peak_rss_mib": max(peaks),
        "peak_rss_sum_mib": round(sum(peaks), 1),
        "rows_in_db": sum(int(result["rows_in_db"]) for result in results),
        "rows_expected": expected * len(results),
        "command": results[0]["command"],
        "clients": results,
    }

    errors = [str(result["error"]) for result in results if "error" in result]
    if errors:
        combined["error"] = errors[0]
        return combined
    rows = sum(int(result["rows"]) for result in results)
    seconds = max(float(result["seconds"]) for result in results)
    combined.update(rows=rows, seconds=seconds)
    if all("bytes" in result for result in results):
        combined["bytes"] = sum(int(result["bytes"]) for result in results)
    combined["rows_per_s"] = round(rows / seconds, 1) if seconds else 0.0
    return combined


def write_json(report: dict[str, Any], path: Path) -> None:
    """Write the report as indented JSON."""
    options = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
    path.write_bytes(orjson.dumps(report, option=options) + b"\n")


def number_text(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def results_table(report: dict[str, Any]) -> Table:
    """One line per measurement and page size: rows/s, MB/s, peak RSS, share.

    The last column is the measurement's rows/s over the lower of the parse
    and sink ceilings at the same page size.
    """
    scenario = report["scenario"]
    skipped = {report["baselines"][key].get("skipped") for key in DLT_KEYS}
    table = Table(
        title=f"bench export: {scenario['rows']:,} rows into SQLite, "
        f"{scenario['connectors']} connector(s)",
        caption=" / ".join(escape(f"dlt baselines {why}") for why in skipped if why)
        or None,
    )

    table.add_column("page", justify="right")
    table.add_column("measure", no_wrap=True)
    for name in ("rows/s", "MB/s", "RSS MiB", "÷ ceiling"):
        table.add_column(name, justify="right", no_wrap=True)
    for entry in report["sweep"]:
        _add_entry(table, entry)
        table.add_section()
    return table


def _add_entry(table: Table, entry: dict[str, Any]) -> None:
    size = f"{entry['page_size']:,}"
    ceilings = entry["ceilings"]
    parse = _rate(ceilings, "parse_rows_per_s")
    lowest = min(
        (r for r in (parse, _rate(ceilings, "sink_rows_per_s")) if r), default=None
    )
    for label, key in RUNGS:
        rate = _rate(ceilings, key)
        mb = ceilings.get("body_mb_per_s") if key == "body_rows_per_s" else None
        share = number_text(ratio(rate, lowest), 2)
        table.add_row(
            size, f"ceiling: {label}", number_text(rate), number_text(mb, 1), "", share
        )
        size = ""

    for label, key in CLIENTS:
        result = entry.get(key)
        if result is None:
            continue
        if "error" in result:
            table.add_row("", label, "[red]failed[/red]", "", "", "")
            continue
        rate = _rate(result)
        rss = number_text(result.get("peak_rss_mib"), 1)
        share = number_text(ratio(rate, lowest), 2)
        table.add_row(
            "",
            f"[bold]{label}[/bold]",
            number_text(rate),
            _mb_per_s(result),
            rss,
            share,
        )


def _mb_per_s(result: dict[str, Any]) -> str:
    seconds = result.get("seconds")
    if not result.get("bytes") or not seconds:
        return ""
    return number_text(float(result["bytes"]) / float(seconds) / 1e6, 1)


def targets_table(report: dict[str, Any]) -> Table:
    """The targets, what was measured, and whether it met them."""
    table = Table(title=f"targets at page size {report['scenario']['page_size']:,}")
    for name in ("figure", "want", "got", "met"):
        table.add_column(name)
    for name, check in report["targets"].items():
        got = check["got"]
        met = {True: "[green]yes[/green]", False: "[red]no[/red]"}.get(
            check["met"], "–"
        )
        table.add_row(
            name, check["want"], number_text(got, 2) if got is not None else "–", met
        )
    return table


def print_report(report: dict[str, Any], console: Console) -> None:
    """Print both tables and any failure."""
    console.print(results_table(report))
    console.print(targets_table(report))
    for failure in report["failures"]:
        console.print(
            f"[red]failed:[/red] {escape(failure)}", markup=True, highlight=False
        )


def write_plot(report: dict[str, Any], path: Path) -> str | None:
    """Plot throughput and peak RSS against page size; return why not, if not."""
    try:
        import matplotlib
    except ImportError:
        return "matplotlib is not installed; no plot was drawn"
    matplotlib.use("Agg")
    from matplotlib import pyplot

    sweep = sorted(report["sweep"], key=lambda entry: int(entry["page_size"]))
    sizes = [int(entry["page_size"]) for entry in sweep]
    figure, (speed, memory) = pyplot.subplots(1, 2, figsize=(12, 4.5))
    for label, pick in _speed_lines(sweep):
        values = [pick(entry) for entry in sweep]
        speed.plot(sizes, values, marker="o", label=label, **_style(label))
    speed.set(xscale="log", xlabel="page size (rows)", ylabel="rows/s", ylim=(0, None))
    speed.set_title("throughput")
    speed.legend(fontsize="small")
    for label, key in _measured(sweep):
        values = [entry[key].get("peak_rss_mib") for entry in sweep]
        memory.plot(sizes, values, marker="o", label=label, **_style(label))
    memory.set(
        xscale="log", xlabel="page size (rows)", ylabel="peak RSS (MiB)", ylim=(0, None)
    )
    memory.set_title("peak memory of the client process")
    memory.legend(fontsize="small")
    figure.suptitle(f"bench export, {report['scenario']['rows']:,} rows into SQLite")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return None


def _measured(sweep: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The clients measured at every page size of ``sweep``: (label, key)."""
    return [(label, key) for label, key in CLIENTS if all(key in e for e in sweep)]


def _speed_lines(sweep: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    lines: list[tuple[str, Any]] = [
        (label, lambda e, k=key: e[k].get("rows_per_s"))
        for label, key in _measured(sweep)
    ]
    for label, key in RUNGS[1:]:
        lines.append((f"ceiling: {label}", lambda e, k=key: e["ceilings"].get(k)))
    return lines


def _style(label: str) -> dict[str, Any]:
    if label.startswith("ceiling"):
        return {"linestyle": "--", "linewidth": 1}
    return {"linewidth": 2.5}
