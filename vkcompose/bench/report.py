"""Benchmark figures: the JSON document (:func:`document`) and its rich rendering.

The document is the single source of every figure: the tables, ``--json`` and the plot all
read it. Its layout is :data:`vkcompose.bench.schema.SCHEMA` (documented in
``docs/benchmarking.md``). Times are seconds, sizes bytes, unless a key says otherwise.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.table import Table

from vkcompose._version import __version__
from vkcompose.bench.requests import LOAD, NODE
from vkcompose.bench.run import BenchOptions, RecipeResult
from vkcompose.bench.stats import summarize
from vkcompose.middlewares.timing import BACKEND

__all__ = ["FORMAT", "RATIO_KEYS", "document", "ratios", "recipe_figures", "render"]

FORMAT = "vkcompose-bench/1"
"""Value of the document's ``format`` key (bumped on incompatible changes)."""

JSON = dict[str, Any]


def _rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def _requests(result: RecipeResult, client: str, pods: int) -> JSON:
    by_verb = {
        verb: count for (who, verb), count in sorted(result.requests.items()) if who == client
    }
    total = sum(by_verb.values())
    return {
        "total": total,
        "per_pod": total / pods if pods else 0.0,
        "by_verb": {
            verb: {"count": count, "per_pod": count / pods if pods else 0.0}
            for verb, count in by_verb.items()
        },
    }


def _pipeline(result: RecipeResult, pods: int) -> JSON:
    per_layer: dict[str, list[float]] = {}
    ops: list[JSON] = []
    for (layer, kind), (calls, total, self_time) in result.timings.items():
        entry = per_layer.setdefault(layer, [0, 0.0])
        entry[0] += calls
        entry[1] += self_time
        ops.append(
            {
                "layer": layer,
                "kind": kind,
                "calls": int(calls),
                "total_seconds": total,
                "self_seconds": self_time,
                "mean_self_us": self_time / calls * 1e6 if calls else 0.0,
            }
        )
    whole = sum(self_time for _, self_time in per_layer.values())
    rank = {layer: i for i, layer in enumerate(result.layer_order)}
    layers = [
        {
            "layer": layer,
            "calls": int(calls),
            "self_seconds": self_time,
            "share": self_time / whole if whole > 0 else 0.0,
            "self_us_per_pod": self_time / pods * 1e6 if pods else 0.0,
        }
        for layer, (calls, self_time) in sorted(
            per_layer.items(), key=lambda item: rank.get(item[0], len(rank))
        )
    ]
    ops.sort(key=lambda op: (rank.get(str(op["layer"]), len(rank)), str(op["kind"])))
    backend_ops = [
        {
            "kind": op["kind"],
            "calls": op["calls"],
            "seconds": op["self_seconds"],
            "mean_us": op["mean_self_us"],
        }
        for op in ops
        if op["layer"] == BACKEND
    ]
    return {
        "seconds_per_pod": whole / pods if pods else 0.0,
        "layers": layers,
        "ops": ops,
        "backend_ops": backend_ops,
    }


def recipe_figures(result: RecipeResult) -> JSON:
    """The figures of one recipe (one entry of the document's ``results``)."""
    pods = result.created
    create_rate = _rate(result.running, result.running_seconds)
    deleted = sum(1 for _ in result.delete_to_gone)
    ceiling_rate = _rate(result.ceiling_patches, result.ceiling_seconds)
    cpu = result.cpu_user + result.cpu_system
    return {
        "recipe": result.recipe,
        "rounds": result.rounds,
        "binding": result.binding,
        "nodes": len(result.node_names),
        "interrupted": result.interrupted,
        "incomplete": list(result.incomplete),
        "pods": {
            "created": result.created,
            "running": result.running,
            "deletes_sent": result.deletes_sent,
            "gone": result.gone,
            "churned": result.churned,
            "failed": result.failed,
        },
        "failures": list(result.failures),
        "throughput": {
            "create_to_running_pods_per_s": create_rate,
            "delete_to_gone_pods_per_s": _rate(deleted, result.delete_seconds),
            "running_seconds": result.running_seconds,
            "delete_seconds": result.delete_seconds,
            "churn_seconds": result.churn_seconds,
        },
        "latency_seconds": {
            "create_to_running": summarize(result.create_to_running).to_json(),
            "delete_to_gone": summarize(result.delete_to_gone).to_json(),
        },
        "pipeline": _pipeline(result, pods),
        "api_requests": {
            "node": _requests(result, NODE, pods),
            "load": _requests(result, LOAD, pods),
        },
        "ceiling": {
            "status_patches": result.ceiling_patches,
            "seconds": result.ceiling_seconds,
            "patches_per_s": ceiling_rate,
            "throughput_ratio": create_rate / ceiling_rate if ceiling_rate > 0 else 0.0,
        },
        "process": {
            "wall_seconds": result.wall_seconds,
            "cpu_user_seconds": result.cpu_user,
            "cpu_system_seconds": result.cpu_system,
            "cpu_seconds": cpu,
            "cpu_ms_per_pod": cpu / pods * 1e3 if pods else 0.0,
            "rss_start_bytes": result.rss_start,
            "rss_peak_bytes": result.rss_peak,
            "rss_end_bytes": result.rss_end,
            "rss_growth_per_pod_bytes": (
                result.rss_growth / result.rss_growth_pods if result.rss_growth_pods else 0.0
            ),
        },
    }


RATIO_KEYS: dict[str, tuple[str, ...]] = {
    "create_to_running_pods_per_s": ("throughput", "create_to_running_pods_per_s"),
    "delete_to_gone_pods_per_s": ("throughput", "delete_to_gone_pods_per_s"),
    "create_to_running_p50": ("latency_seconds", "create_to_running", "p50"),
    "create_to_running_p99": ("latency_seconds", "create_to_running", "p99"),
    "delete_to_gone_p50": ("latency_seconds", "delete_to_gone", "p50"),
    "delete_to_gone_p99": ("latency_seconds", "delete_to_gone", "p99"),
    "pipeline_seconds_per_pod": ("pipeline", "seconds_per_pod"),
    "node_requests_per_pod": ("api_requests", "node", "per_pod"),
    "cpu_ms_per_pod": ("process", "cpu_ms_per_pod"),
    "ceiling_patches_per_s": ("ceiling", "patches_per_s"),
}
"""Figures compared by ``--compare`` (B/A), and where they are in a recipe's figures."""


def _dig(figures: JSON, path: tuple[str, ...]) -> float:
    value: Any = figures
    for key in path:
        value = value[key]
    return float(value)


def ratios(a: JSON, b: JSON) -> dict[str, float | None]:
    """B/A for each of :data:`RATIO_KEYS` (``None`` where A is zero)."""
    out: dict[str, float | None] = {}
    for name, path in RATIO_KEYS.items():
        base = _dig(a, path)
        out[name] = _dig(b, path) / base if base else None
    return out


def document(results: list[RecipeResult], options: BenchOptions) -> JSON:
    """The whole machine-readable report (``--json``)."""
    figures = [recipe_figures(r) for r in results]
    return {
        "format": FORMAT,
        "vkcompose_version": __version__,
        "settings": {
            "pods": options.pods,
            "concurrency": options.concurrency,
            "nodes": options.nodes,
            "churn": options.churn,
            "churn_fraction": options.churn_fraction,
            "rounds": options.rounds,
            "pod_template": options.template_name,
        },
        "interrupted": any(r.interrupted for r in results),
        "results": figures,
        "ratios": ratios(figures[0], figures[1]) if len(figures) == 2 else None,
    }


# -- rendering ---------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f}"


def _latency(summary: JSON) -> str:
    return " / ".join(_ms(summary[k]) for k in ("p50", "p90", "p99", "max"))


def _figure_rows(fig: JSON) -> list[tuple[str, str]]:
    lat = fig["latency_seconds"]
    proc = fig["process"]
    ceiling = fig["ceiling"]
    pods = fig["pods"]
    return [
        ("pods Running / created", f"{pods['running']:,} / {pods['created']:,}"),
        ("pods gone / deleted", f"{pods['gone']:,} / {pods['deletes_sent']:,}"),
        (
            "throughput create→Running (pods/s)",
            f"{fig['throughput']['create_to_running_pods_per_s']:,.1f}",
        ),
        (
            "throughput delete→gone (pods/s)",
            f"{fig['throughput']['delete_to_gone_pods_per_s']:,.1f}",
        ),
        ("create→Running p50/p90/p99/max (ms)", _latency(lat["create_to_running"])),
        ("delete→gone p50/p90/p99/max (ms)", _latency(lat["delete_to_gone"])),
        ("pipeline time per pod (µs)", f"{fig['pipeline']['seconds_per_pod'] * 1e6:,.1f}"),
        ("node API requests per pod", f"{fig['api_requests']['node']['per_pod']:.2f}"),
        ("API ceiling (status patches/s)", f"{ceiling['patches_per_s']:,.1f}"),
        ("throughput / ceiling", f"{ceiling['throughput_ratio']:.0%}"),
        (
            "CPU time (s) / per pod (ms)",
            f"{proc['cpu_seconds']:.2f} / {proc['cpu_ms_per_pod']:.2f}",
        ),
        ("RSS peak (MiB)", f"{proc['rss_peak_bytes'] / 2**20:,.0f}"),
        ("RSS growth per Running pod (KiB)", f"{proc['rss_growth_per_pod_bytes'] / 1024:,.1f}"),
    ]


_RATIO_ROWS = {
    "throughput create→Running (pods/s)": "create_to_running_pods_per_s",
    "throughput delete→gone (pods/s)": "delete_to_gone_pods_per_s",
    "create→Running p50/p90/p99/max (ms)": "create_to_running_p50",
    "delete→gone p50/p90/p99/max (ms)": "delete_to_gone_p50",
    "pipeline time per pod (µs)": "pipeline_seconds_per_pod",
    "node API requests per pod": "node_requests_per_pod",
    "API ceiling (status patches/s)": "ceiling_patches_per_s",
    "CPU time (s) / per pod (ms)": "cpu_ms_per_pod",
}


def _ratio_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _summary_table(doc: JSON) -> Table:
    results = doc["results"]
    s = doc["settings"]
    title = (
        f"vkcompose bench: {s['pods']:,} pods x {s['rounds']} round(s), concurrency "
        f"{s['concurrency']}, {s['nodes']} node(s)" + (", churn" if s["churn"] else "")
    )
    table = Table(title=title, title_justify="left")
    table.add_column("figure")
    for fig in results:
        table.add_column(f"{fig['recipe']} ({fig['binding']})", justify="right")
    ratio = doc.get("ratios")
    if ratio:
        table.add_column("B/A", justify="right")
    rows = [_figure_rows(fig) for fig in results]
    for i, (label, _) in enumerate(rows[0]):
        cells = [row[i][1] for row in rows]
        if ratio:
            key = _RATIO_ROWS.get(label)
            text = _ratio_text(ratio[key]) if key else ""
            if key in ("create_to_running_p50", "delete_to_gone_p50"):
                p99 = key.replace("p50", "p99")
                text = f"p50 {_ratio_text(ratio[key])}, p99 {_ratio_text(ratio[p99])}"
            cells.append(text)
        table.add_row(label, *cells)
    return table


def _pipeline_table(fig: JSON) -> Table:
    table = Table(title=f"{fig['recipe']}: time per middleware (self time)", title_justify="left")
    for column, justify in (
        ("layer", "left"),
        ("calls", "right"),
        ("self total (ms)", "right"),
        ("µs per pod", "right"),
        ("share", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for layer in fig["pipeline"]["layers"]:
        table.add_row(
            layer["layer"],
            f"{layer['calls']:,}",
            _ms(layer["self_seconds"]),
            f"{layer['self_us_per_pod']:,.1f}",
            f"{layer['share']:.1%}",
        )
    return table


def _ops_table(fig: JSON) -> Table:
    table = Table(title=f"{fig['recipe']}: backend ops", title_justify="left")
    for column in ("op", "calls", "mean (µs)", "total (ms)"):
        table.add_column(column, justify="left" if column == "op" else "right")
    for op in fig["pipeline"]["backend_ops"]:
        table.add_row(op["kind"], f"{op['calls']:,}", f"{op['mean_us']:,.1f}", _ms(op["seconds"]))
    return table


def _requests_table(fig: JSON) -> Table:
    table = Table(title=f"{fig['recipe']}: API requests per pod", title_justify="left")
    for column in ("request", "node", "load generator"):
        table.add_column(column, justify="left" if column == "request" else "right")
    node = fig["api_requests"]["node"]["by_verb"]
    load = fig["api_requests"]["load"]["by_verb"]
    for verb in sorted(set(node) | set(load)):
        table.add_row(
            verb,
            f"{node[verb]['per_pod']:.3f}" if verb in node else "",
            f"{load[verb]['per_pod']:.3f}" if verb in load else "",
        )
    table.add_row(
        "total",
        f"{fig['api_requests']['node']['per_pod']:.3f}",
        f"{fig['api_requests']['load']['per_pod']:.3f}",
        style="bold",
    )
    return table


def render(doc: JSON, console: Console) -> None:
    """Print the document as rich tables."""
    parts: list[Any] = [_summary_table(doc)]
    for fig in doc["results"]:
        parts += [_pipeline_table(fig), _ops_table(fig), _requests_table(fig)]
        for line in fig["incomplete"]:
            parts.append(f"[yellow]{fig['recipe']}: incomplete: {line}[/yellow]")
        for line in fig["failures"]:
            parts.append(f"[red]{fig['recipe']}: failed pod {line}[/red]")
    if doc["interrupted"]:
        parts.append("[yellow]interrupted: figures cover what was measured so far[/yellow]")
    console.print(Group(*parts))
