"""``--plot FILE.png``: latency CDFs and the per-middleware stacked bar (matplotlib, Agg).

Left: the cumulative distribution of create→Running and delete→gone latencies of each recipe
(log-scaled time axis). Right: for each recipe and op kind, one bar stacked by pipeline layer,
the height being that layer's self time per pod in µs — where a pod's pipeline time goes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vkcompose.bench.run import RecipeResult

__all__ = ["write_plot"]


def _short(recipe: str) -> str:
    """A recipe's display name: a built-in name, or a file's stem."""
    return Path(recipe).stem if recipe.endswith(".py") else recipe


def write_plot(doc: dict[str, Any], results: Sequence[RecipeResult], path: Path) -> None:
    """Write the figure of ``doc`` (raw latencies from ``results``) to ``path`` as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (cdf, bars) = plt.subplots(1, 2, figsize=(13, 5.2), layout="constrained")
    styles = ["-", "--"]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    palette = [matplotlib.colormaps["tab20"](i) for i in range(20)]
    for i, result in enumerate(results):
        for j, (label, values) in enumerate(
            (("create→Running", result.create_to_running), ("delete→gone", result.delete_to_gone))
        ):
            if not values:
                continue
            ordered = sorted(v * 1e3 for v in values)
            fractions = [(k + 1) / len(ordered) for k in range(len(ordered))]
            cdf.step(
                ordered,
                fractions,
                where="post",
                linestyle=styles[j],
                color=colors[i % len(colors)],
                label=f"{_short(result.recipe)}: {label}",
            )
    cdf.set_xscale("log")
    cdf.set_xlabel("latency (ms, log scale)")
    cdf.set_ylabel("fraction of pods")
    cdf.set_ylim(0, 1.02)
    cdf.grid(True, which="both", alpha=0.3)
    cdf.legend(loc="lower right", fontsize="small")
    cdf.set_title("latency CDF")

    labels: list[str] = []
    stacks: dict[str, list[float]] = {}
    layers_in_order: list[str] = []
    for fig in doc["results"]:
        pods = max(1, fig["pods"]["created"])
        kinds = sorted({op["kind"] for op in fig["pipeline"]["ops"]})
        for layer in fig["pipeline"]["layers"]:
            if layer["layer"] not in layers_in_order:
                layers_in_order.append(layer["layer"])
        for kind in kinds:
            column = len(labels)
            labels.append(f"{_short(fig['recipe'])}\n{kind}" if len(doc["results"]) > 1 else kind)
            for op in fig["pipeline"]["ops"]:
                if op["kind"] == kind:
                    stack = stacks.setdefault(op["layer"], [])
                    stack.extend([0.0] * (column + 1 - len(stack)))
                    stack[column] += op["self_seconds"] / pods * 1e6
    bottoms = [0.0] * len(labels)
    for index, layer in enumerate(layers_in_order):
        heights = stacks.get(layer, [])
        heights = heights + [0.0] * (len(labels) - len(heights))
        bars.bar(
            range(len(labels)),
            heights,
            bottom=bottoms,
            label=layer,
            color=palette[index % len(palette)],
        )
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    bars.set_xticks(range(len(labels)), labels, fontsize="small", rotation=45, ha="right")
    bars.set_ylabel("self time per pod (µs)")
    bars.set_title("pipeline time per pod, by op and layer")
    bars.legend(fontsize="small")
    bars.grid(True, axis="y", alpha=0.3)
    settings = doc["settings"]
    figure.suptitle(
        f"vkcompose bench — {settings['pods']:,} pods, concurrency {settings['concurrency']}, "
        f"{settings['nodes']} node(s)"
    )
    figure.savefig(path, dpi=110)
    plt.close(figure)
