"""The results of ``bench import``: laid out as JSON, terminal tables and a plot."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from bulkflow._bench._report import machine, number_text, ratio

if TYPE_CHECKING:
    from rich.console import Console

    from bulkflow._bench._import_run import ImportPlan


def _rate(result: dict[str, Any], key: str = "items_per_s") -> float | None:
    value = result.get(key)
    return float(value) if value else None


def import_ratios(entry: dict[str, Any]) -> dict[str, Any]:
    """Compare bulkflow with the naive client and the ceilings at one batch size."""
    bulkflow, naive = _rate(entry["bulkflow"]), _rate(entry["naive"])
    post = _rate(entry["ceilings"], "post_items_per_s")
    encode = _rate(entry["ceilings"], "encode_items_per_s")
    server = entry["bulkflow"].get("server") or {}
    return {
        "bulkflow_vs_naive": ratio(bulkflow, naive),
        "bulkflow_vs_post_ceiling": ratio(bulkflow, post),
        "bulkflow_vs_encode_ceiling": ratio(bulkflow, encode),
        "naive_vs_post_ceiling": ratio(naive, post),
        "server_busy_during_bulkflow": server.get("busy"),
    }


def build_import_report(plan: ImportPlan, raw: dict[str, Any]) -> dict[str, Any]:
    """Lay out the results: the headline batch size on top, every scenario below."""
    sweep = raw["sweep"]
    for entry in sweep:
        entry["ratios"] = import_ratios(entry)
    head = next(e for e in sweep if e["batch_size"] == plan.headline)
    return {
        "scenario": {
            "items": plan.items,
            "batch_size": plan.headline,
            "batch_sizes": list(plan.batch_sizes),
            "rates": list(plan.rates),
            "rate_batch_size": plan.rate_batch_size,
            "concurrency": plan.concurrency,
            "server": plan.server_mode,
            "source": "synthetic",
            "seed": plan.seed,
            "repeat": plan.repeat,
        },
        "machine": {**machine(), "load_average_start": raw["load_average_start"]},
        "items_file": {
            "items": plan.items,
            "bytes": raw["items_file_bytes"],
            "per_table": raw["items_per_table"],
        },
        "bulkflow": head["bulkflow"],
        "baselines": {"naive": head["naive"]},
        "ceilings": head["ceilings"],
        "ratios": head["ratios"],
        "rates": raw["rates"],
        "sweep": sweep,
        "notes": raw["notes"],
        "failures": raw["failures"],
    }


def throughput_table(report: dict[str, Any]) -> Table:
    """One line per measurement and batch size: items/s, RSS, shares."""
    scenario, source = report["scenario"], report["items_file"]
    table = Table(
        title=f"bench import: {scenario['items']:,} items "
        f"({source['bytes'] / 1e6:,.1f} MB of JSONL), no rate limit, "
        f"{scenario['server']} server",
        caption="÷ POST: items/s over the POST round-trip ceiling. server CPU: "
        "the server's CPU seconds over the client's seconds",
    )
    table.add_column("batch", justify="right")
    table.add_column("measure", no_wrap=True)
    for name in ("items/s", "RSS MiB", "÷ POST", "server CPU"):
        table.add_column(name, justify="right")
    for entry in report["sweep"]:
        _add_throughput(table, entry)
        table.add_section()
    return table


def _add_throughput(table: Table, entry: dict[str, Any]) -> None:
    size = f"{entry['batch_size']:,}"
    ceilings = entry["ceilings"]
    post = _rate(ceilings, "post_items_per_s")
    if "error" in ceilings:
        table.add_row(size, "ceilings", "[red]failed[/red]", "", "", "")
    else:
        encode = _rate(ceilings, "encode_items_per_s")
        share = number_text(ratio(encode, post), 2)
        table.add_row(size, "ceiling: encode", number_text(encode), "", share, "")
        size = ""
        busy = _busy(ceilings)
        table.add_row("", "ceiling: POST", number_text(post), "", "1.00", busy)
    for label, key in (("bulkflow import", "bulkflow"), ("naive baseline", "naive")):
        result = entry[key]
        if "error" in result:
            table.add_row(size, label, "[red]failed[/red]", "", "", "")
            continue
        rate = _rate(result)
        table.add_row(
            size,
            f"[bold]{label}[/bold]",
            number_text(rate),
            number_text(result.get("peak_rss_mib"), 1),
            number_text(ratio(rate, post), 2),
            _busy(result),
        )
        size = ""


def _busy(result: dict[str, Any]) -> str:
    busy = (result.get("server") or {}).get("busy")
    return "" if busy is None else f"{busy:.0%}"


def rates_table(report: dict[str, Any]) -> Table:
    """One line per budget and client: pace, worst window and refusals."""
    size = report["scenario"]["rate_batch_size"]
    table = Table(
        title=f"rate budgets, {size:,} items per call, as the server counted calls",
        caption="÷ budget: the pace of the calls let in over the budget. max/1s: "
        "the most calls in any sliding second, refused ones included",
    )
    table.add_column("budget", justify="right")
    table.add_column("measure", no_wrap=True)
    for name in ("items/s", "÷ budget", "max/1s", "refused", "slowdowns"):
        table.add_column(name, justify="right")
    for entry in report["rates"]:
        budget = f"{entry['rate']:g}/s"
        for label, key in (
            ("bulkflow import", "bulkflow"),
            ("naive baseline", "naive"),
        ):
            table.add_row(budget, *_rate_cells(label, entry[key], entry["rate"]))
            budget = ""
        table.add_section()
    return table


def _rate_cells(label: str, result: dict[str, Any], budget: float) -> list[str]:
    if "error" in result:
        return [label, "[red]failed[/red]", "", "", "", ""]
    worst = result.get("max_calls_in_any_1s")
    over = isinstance(worst, int) and worst > budget
    return [
        f"[bold]{label}[/bold]" if label.startswith("bulkflow") else label,
        number_text(_rate(result)),
        number_text(result.get("achieved_vs_budget"), 2),
        f"[red]{worst}[/red]" if over else str(worst),
        str(result.get("refused", "")),
        str(result.get("slowdowns", "–")),
    ]


def print_import_report(report: dict[str, Any], console: Console) -> None:
    """Print the tables and any failure."""
    console.print(throughput_table(report))
    if report["rates"]:
        console.print(rates_table(report))
    for note in report["notes"]:
        console.print(f"[yellow]note:[/yellow] {note}", markup=True, highlight=False)
    for failure in report["failures"]:
        console.print(f"[red]failed:[/red] {failure}", markup=True, highlight=False)


def write_import_plot(report: dict[str, Any], path: Path) -> str | None:
    """Plot items/s and peak RSS against batch size, and the rate windows.

    Returns why no plot was drawn, or ``None``.
    """
    try:
        import matplotlib
    except ImportError:
        return "matplotlib is not installed; no plot was drawn"
    matplotlib.use("Agg")
    from matplotlib import pyplot

    panels = 3 if report["rates"] else 2
    figure, axes = pyplot.subplots(1, panels, figsize=(6 * panels, 4.5))
    _plot_throughput(axes[0], axes[1], report)
    if report["rates"]:
        _plot_rates(axes[2], report)
    figure.suptitle(
        f"bench import, {report['scenario']['items']:,} items, "
        f"{report['scenario']['server']} server"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return None


def _plot_throughput(speed: Any, memory: Any, report: dict[str, Any]) -> None:
    sweep = sorted(report["sweep"], key=lambda entry: int(entry["batch_size"]))
    sizes = [int(entry["batch_size"]) for entry in sweep]
    lines = (
        ("bulkflow import", "bulkflow", "items_per_s"),
        ("naive baseline", "naive", "items_per_s"),
        ("ceiling: read + encode", "ceilings", "encode_items_per_s"),
        ("ceiling: POST round trip", "ceilings", "post_items_per_s"),
    )
    for label, kind, key in lines:
        values = [entry[kind].get(key) for entry in sweep]
        speed.plot(sizes, values, marker="o", label=label, **_style(label))
    speed.set(xscale="log", xlabel="batch size (items)", ylabel="items/s")
    speed.set(yscale="log")
    speed.set_title("throughput, no rate limit")
    speed.legend(fontsize="small")
    for label, kind in (("bulkflow import", "bulkflow"), ("naive baseline", "naive")):
        values = [entry[kind].get("peak_rss_mib") for entry in sweep]
        memory.plot(sizes, values, marker="o", label=label, **_style(label))
    memory.set(xscale="log", xlabel="batch size (items)", ylabel="peak RSS (MiB)")
    memory.set(ylim=(0, None))
    memory.set_title("peak memory of the client process")
    memory.legend(fontsize="small")


def _plot_rates(axis: Any, report: dict[str, Any]) -> None:
    entries = report["rates"]
    places = list(range(len(entries)))
    for offset, kind in ((-0.2, "bulkflow"), (0.2, "naive")):
        values = [entry[kind].get("max_calls_in_any_1s") or 0 for entry in entries]
        axis.bar([p + offset for p in places], values, width=0.4, label=kind)
    for place, entry in zip(places, entries, strict=True):
        rate = entry["rate"]
        axis.hlines(rate, place - 0.45, place + 0.45, colors="black", linestyles="--")
    axis.set_xticks(places, [f"{entry['rate']:g}/s" for entry in entries])
    axis.set(xlabel="budget (dashed)", ylabel="most calls in any 1 s (server)")
    axis.set_title("calls per sliding second")
    axis.legend(fontsize="small")


def _style(label: str) -> dict[str, Any]:
    if label.startswith("ceiling"):
        return {"linestyle": "--", "linewidth": 1}
    return {"linewidth": 2.5}
