"""Benchmark a recipe's node locally: ``vkcompose bench`` (see ``docs/benchmarking.md``).

A fresh in-memory embedded API server, the recipe's node(s) with a timed pipeline, N realistic
pods created, run, optionally churned and deleted over real HTTP; figures for throughput,
latency percentiles, time per middleware, API requests per pod, the API server's own ceiling,
CPU and memory, as tables, JSON (:data:`~vkcompose.bench.schema.SCHEMA`) or a plot.
"""

from vkcompose.bench.command import bench_blocking
from vkcompose.bench.report import document, ratios
from vkcompose.bench.run import BenchOptions, RecipeResult, Stopper, run_benchmark, run_round
from vkcompose.bench.schema import SCHEMA, validate

__all__ = [
    "SCHEMA",
    "BenchOptions",
    "RecipeResult",
    "Stopper",
    "bench_blocking",
    "document",
    "ratios",
    "run_benchmark",
    "run_round",
    "validate",
]
