"""Per-layer dispatch cost of the pipeline: N no-op middlewares vs a direct backend call.

Run:  python benchmarks/pipeline_overhead.py [--rounds 201] [--batch 2000] [--clock cpu|wall]
      [--json]

Every configuration is timed in interleaved rounds of small batches — machine noise hits all
of them alike, and a batch hit by preemption is an outlier the median ignores — and the median
per-op time is reported. "µs/layer" is (t(N) - t(0)) / N, what one more middleware costs per
op; the least-squares slope over N = 0, 1, 5, 10, 20 is checked against the 1 µs target. The
last row times the 5-layer pipeline instrumented with the benchmark timing hook
(:mod:`vkcompose.middlewares.timing`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from vkcompose.middlewares.timing import TimingRecorder, instrument
from vkcompose.ops import ListPods, Op
from vkcompose.pipeline import Handler, compose

LAYERS = (0, 1, 5, 10, 20)
TARGET_US_PER_LAYER = 1.0
TIMED = "N=5 timed"

Call = Callable[[Op], Awaitable[Any]]


class NoopBackend:
    """The cheapest possible backend."""

    async def list_pods(self) -> None:
        return None


class Passthrough:
    """The cheapest possible middleware."""

    async def __call__(self, op: Op, call_next: Handler, /) -> Any:
        return await call_next(op)


CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.thread_time, "wall": time.perf_counter}
"""``cpu`` (default) counts only this thread's CPU time, so other processes competing for the
cores do not inflate the figures; ``wall`` is elapsed time."""


async def _time_batch(call: Call, op: Op, batch: int, clock: Callable[[], float]) -> float:
    start = clock()
    for _ in range(batch):
        await call(op)
    return (clock() - start) / batch * 1e6


async def measure(
    rounds: int, batch: int, clock: Callable[[], float] = time.thread_time
) -> dict[str, list[float]]:
    """µs per op of every configuration, one sample per round."""
    backend = NoopBackend()

    def direct(op: Op) -> Awaitable[None]:
        return backend.list_pods()

    calls: dict[str, Call] = {"direct": direct}
    for n in LAYERS:
        calls[f"N={n}"] = compose(*(Passthrough() for _ in range(n)), backend=backend)
    five = compose(*(Passthrough() for _ in range(5)), backend=backend)
    calls[TIMED] = instrument(five, TimingRecorder())
    op = ListPods()
    for call in calls.values():  # warm-up
        await _time_batch(call, op, batch, clock)
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            samples[name].append(await _time_batch(call, op, batch, clock))
    return samples


def _layers(name: str) -> int | None:
    if name == TIMED:
        return 5
    return int(name[2:]) if name.startswith("N=") else None


def summarize(samples: dict[str, list[float]]) -> list[dict[str, Any]]:
    """One row per configuration: median µs/op, overhead, per-layer cost and IQR."""
    medians = {name: statistics.median(values) for name, values in samples.items()}
    base, direct = medians["N=0"], medians["direct"]
    rows = []
    for name, median in medians.items():
        layers = _layers(name)
        quartiles = statistics.quantiles(samples[name], n=4) if len(samples[name]) >= 2 else None
        rows.append(
            {
                "config": name,
                "layers": layers,
                "us_per_op": round(median, 3),
                "overhead_vs_direct_us": round(median - direct, 3),
                "us_per_layer": round((median - base) / layers, 3) if layers else None,
                "iqr_us": round(quartiles[2] - quartiles[0], 3) if quartiles else None,
            }
        )
    return rows


def slope(rows: list[dict[str, Any]]) -> float:
    """Least-squares µs per layer over the plain ``N=…`` rows."""
    plain = {f"N={n}" for n in LAYERS}
    points = [(float(r["layers"]), float(r["us_per_op"])) for r in rows if r["config"] in plain]
    mean_x = statistics.fmean(x for x, _ in points)
    mean_y = statistics.fmean(y for _, y in points)
    num = sum((x - mean_x) * (y - mean_y) for x, y in points)
    den = sum((x - mean_x) ** 2 for x, _ in points)
    return num / den


def main(argv: list[str] | None = None) -> int:
    """Measure, print a table (or JSON); exit 1 when over the per-layer target."""
    parser = argparse.ArgumentParser(description="pipeline per-layer dispatch cost")
    parser.add_argument("--rounds", type=int, default=201)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    samples = asyncio.run(measure(args.rounds, args.batch, CLOCKS[args.clock]))
    rows = summarize(samples)
    per_layer = slope(rows)
    within = per_layer <= TARGET_US_PER_LAYER
    if args.json:
        result = {"clock": args.clock, "rows": rows, "us_per_layer_fit": round(per_layer, 3)}
        print(json.dumps(result, indent=2))
        return 0 if within else 1
    title = (
        f"pipeline dispatch cost, {args.clock} time "
        f"(median of {args.rounds} batches of {args.batch} ops)"
    )
    table = Table(title=title)
    for column in ("config", "µs/op", "overhead vs direct µs", "µs/layer", "IQR µs"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(
            r["config"],
            f"{r['us_per_op']:.3f}",
            f"{r['overhead_vs_direct_us']:.3f}",
            "-" if r["us_per_layer"] is None else f"{r['us_per_layer']:.3f}",
            "-" if r["iqr_us"] is None else f"{r['iqr_us']:.3f}",
        )
    console = Console()
    console.print(table)
    verdict = "within target" if within else "OVER TARGET"
    console.print(
        f"least-squares cost per layer: {per_layer:.3f} µs/op "
        f"(target ≤ {TARGET_US_PER_LAYER} µs): {verdict}"
    )
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
