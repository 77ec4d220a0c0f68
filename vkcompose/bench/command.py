"""``vkcompose bench``: run the benchmark, show progress, print tables or JSON, plot.

The CLI parses options and calls :func:`bench_blocking`; everything else is here.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import anyio
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichBar

from vkcompose.bench.pods import default_template, load_template
from vkcompose.bench.report import document, render
from vkcompose.bench.run import BenchOptions, RecipeResult, Stopper, run_benchmark
from vkcompose.recipes import load_recipe

__all__ = [
    "EXIT_INCOMPLETE",
    "EXIT_INTERRUPTED",
    "LineProgress",
    "RichProgress",
    "bench_blocking",
]

EXIT_INCOMPLETE = 1
"""Exit status when pods failed or a wait timed out (figures are still printed)."""
EXIT_INTERRUPTED = 130
"""Exit status after Ctrl-C (figures measured so far are printed)."""


class RichProgress:
    """A rich progress bar, one line per phase."""

    def __init__(self, bar: RichBar) -> None:
        self.bar = bar
        self._task: TaskID | None = None

    def phase(self, label: str, total: int) -> None:
        """Start a new line."""
        self._task = self.bar.add_task(label, total=max(total, 1))

    def advance_to(self, completed: int) -> None:
        """Move the current line."""
        if self._task is not None:
            self.bar.update(self._task, completed=completed)


class LineProgress:
    """Progress as plain lines, one per phase (stderr is not a terminal: logs, CI)."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def phase(self, label: str, total: int) -> None:
        """Print the phase."""
        self.console.print(f"{label} ({total:,})", highlight=False)

    def advance_to(self, completed: int) -> None:
        """Nothing to show."""


def _options(
    *,
    pods: int,
    concurrency: int,
    nodes: int,
    churn: bool,
    rounds: int,
    template: Path | None,
    timeout_seconds: float,
) -> BenchOptions:
    return BenchOptions(
        pods=pods,
        concurrency=concurrency,
        nodes=nodes,
        churn=churn,
        rounds=rounds,
        template=load_template(template) if template else default_template(),
        template_name=str(template) if template else "default",
        timeout_seconds=timeout_seconds,
    )


def bench_blocking(
    recipes: Sequence[str],
    *,
    pods: int = 1000,
    concurrency: int = 16,
    nodes: int = 1,
    churn: bool = False,
    rounds: int = 1,
    template: Path | None = None,
    timeout_seconds: float = 600.0,
    json_output: bool = False,
    plot: Path | None = None,
    stdout: TextIO | None = None,
) -> int:
    """Benchmark ``recipes`` (one, or two to compare, interleaved); return the exit status."""
    for ref in recipes:
        load_recipe(ref)  # fail fast on a bad name or path
    options = _options(
        pods=pods,
        concurrency=concurrency,
        nodes=nodes,
        churn=churn,
        rounds=rounds,
        template=template,
        timeout_seconds=timeout_seconds,
    )
    out = stdout or sys.stdout
    err = Console(stderr=True)
    stopper = Stopper()
    results: list[RecipeResult] = []

    async def main() -> None:
        async with anyio.create_task_group() as tg:

            async def on_signals() -> None:
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for _ in signals:
                        if stopper.interrupted:
                            tg.cancel_scope.cancel()
                            return
                        if not json_output:
                            err.print("interrupted: stopping, cleaning up (Ctrl-C again to quit)")
                        stopper.interrupt()

            tg.start_soon(on_signals)
            if json_output or not err.is_terminal:
                progress = None if json_output else LineProgress(err)
                await run_benchmark(
                    recipes, options, progress=progress, stopper=stopper, results=results
                )
            else:
                columns = (
                    TextColumn("{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                )
                with RichBar(*columns, console=err, transient=False) as bar:
                    await run_benchmark(
                        recipes,
                        options,
                        progress=RichProgress(bar),
                        stopper=stopper,
                        results=results,
                    )
            tg.cancel_scope.cancel()

    anyio.run(main, backend="asyncio")
    results = [r for r in results if r.rounds or r.created]
    if not results:
        return EXIT_INTERRUPTED
    doc = document(results, options)
    if json_output:
        out.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
        out.flush()
    else:
        render(doc, Console(file=out))
    if plot is not None:
        from vkcompose.bench.plot import write_plot

        write_plot(doc, results, plot)
        if not json_output:
            err.print(f"plot written to {plot}")
    if doc["interrupted"]:
        return EXIT_INTERRUPTED
    if any(r.incomplete or r.failed for r in results):
        return EXIT_INCOMPLETE
    return 0
