"""The ``vkcompose`` command line.

vkcompose up                      # embedded API server + the default recipe, live table
vkcompose run RECIPE              # run a recipe's node(s) against any cluster
vkcompose apiserver               # only the embedded API server
vkcompose bench RECIPE            # benchmark a recipe's node locally
vkcompose recipes                 # list built-in recipes
vkcompose version
"""

from __future__ import annotations

import functools
import logging
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from vkcompose._version import __version__
from vkcompose.recipes import RecipeError, RecipeSettings, build_node, builtin_recipes

F = TypeVar("F", bound=Callable[..., Any])

console = Console(stderr=True)
DEFAULT_RECIPE = "process"


class UsageProblem(click.ClickException):
    """A problem the user can fix; printed without a traceback."""


def friendly(function: F) -> F:
    """Turn recipe and other expected errors into clean messages (tracebacks with --debug)."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = bool((click.get_current_context().find_root().obj or {}).get("debug"))
        try:
            return function(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            console.print("interrupted")
            sys.exit(130)
        except RecipeError as error:
            if debug:
                traceback.print_exc()
            raise UsageProblem(str(error)) from error
        except Exception as error:
            if debug:
                traceback.print_exc()
                sys.exit(1)
            raise UsageProblem(f"{error} (run with --debug for the traceback)") from error

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Composable virtual kubelets: run Kubernetes pods on anything."""
    ctx.obj = {"debug": debug}
    configure_logging(debug)


def configure_logging(debug: bool, level: int = logging.WARNING) -> None:
    """Log to stderr at ``level`` (DEBUG with ``--debug``). kubernetes_asyncio's REST logger
    prints whole response bodies — Secrets included — at DEBUG, so it never goes below INFO.

    Commands that run nodes (``run``, ``up``) raise the level to INFO; others stay quiet.
    """
    logging.basicConfig(
        level=logging.DEBUG if debug else level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    logging.getLogger("kubernetes_asyncio.client.rest").setLevel(logging.INFO)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def _verbose() -> None:
    """INFO logs for long-running commands (unless ``--debug`` already asked for more)."""
    if not (click.get_current_context().find_root().obj or {}).get("debug"):
        logging.getLogger().setLevel(logging.INFO)


@main.command()
def version() -> None:
    """Print the vkcompose version."""
    click.echo(f"vkcompose {__version__}")


@main.command()
@friendly
def recipes() -> None:
    """List the built-in recipes."""
    table = Table(title="built-in recipes")
    table.add_column("name")
    table.add_column("what it runs")
    for name, summary in sorted(builtin_recipes().items()):
        table.add_row(name, summary)
    Console().print(table)


def _settings(
    node_name: str | None, replicas: int | None, state_dir: Path, kubelet_port: int | None
) -> RecipeSettings:
    return RecipeSettings(
        node_name=node_name, replicas=replicas, state_dir=state_dir, kubelet_port=kubelet_port
    )


@main.command()
@click.argument("recipe")
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Cluster to join (default: $KUBECONFIG, ~/.kube/config, or in-cluster).",
)
@click.option("--node-name", help="Override the recipe's node name.")
@click.option("--replicas", type=click.IntRange(min=1), help="Run a fleet of this many nodes.")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".vkcompose"),
    show_default=True,
    help="Where backends keep state.",
)
@click.option("--kubelet-port", type=click.IntRange(0, 65535), help="Kubelet API port.")
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="Serve Prometheus metrics of the pipeline on 127.0.0.1:PORT.",
)
@friendly
def run(
    recipe: str,
    kubeconfig: Path | None,
    node_name: str | None,
    replicas: int | None,
    state_dir: Path,
    kubelet_port: int | None,
    metrics_port: int | None,
) -> None:
    """Run RECIPE (a built-in name or a path to a .py file) as virtual node(s) in a cluster."""
    _verbose()
    node = build_node(recipe, _settings(node_name, replicas, state_dir, kubelet_port))
    from vkcompose import serve  # the runtime wiring lives one layer down

    serve.run_node_blocking(node, kubeconfig=kubeconfig, console=console, metrics_port=metrics_port)


@main.command()
@click.option(
    "--recipe", "recipe_ref", default=None, help=f"Recipe to run (default: {DEFAULT_RECIPE})."
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".vkcompose"),
    show_default=True,
    help="API server data (SQLite), kubeconfig and backend state.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    help="API server port (default: any free port).",
)
@click.option("--no-tui", is_flag=True, help="Plain log lines instead of a live table.")
@click.option("--replicas", type=click.IntRange(min=1), help="Run a fleet of this many nodes.")
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="Serve Prometheus metrics of the pipeline on 127.0.0.1:PORT.",
)
@friendly
def up(
    recipe_ref: str | None,
    data_dir: Path,
    port: int,
    no_tui: bool,
    replicas: int | None,
    metrics_port: int | None,
) -> None:
    """Start the embedded API server and a recipe's node(s) against it: a local cluster."""
    _verbose()
    node = build_node(
        recipe_ref or DEFAULT_RECIPE,
        _settings(None, replicas, data_dir / "state", None),
    )
    from vkcompose import serve

    serve.up_blocking(
        node,
        data_dir=data_dir,
        port=port,
        tui=not no_tui,
        console=console,
        metrics_port=metrics_port,
    )


@main.command()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".vkcompose"),
    show_default=True,
)
@click.option(
    "--storage", type=click.Choice(["sqlite", "memory"]), default="sqlite", show_default=True
)
@click.option("--port", type=click.IntRange(0, 65535), default=0)
@friendly
def apiserver(data_dir: Path, storage: str, port: int) -> None:
    """Run only the embedded Kubernetes API server (prints the kubeconfig path)."""
    from vkcompose import serve

    serve.apiserver_blocking(data_dir=data_dir, storage=storage, port=port, console=console)


@main.command()
@click.argument("recipe")
@click.option("--pods", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option(
    "--concurrency", type=click.IntRange(min=1), default=16, show_default=True,
    help="Concurrent pod creates/deletes.",
)  # fmt: skip
@click.option(
    "--nodes", type=click.IntRange(min=1), default=1, show_default=True,
    help="Virtual nodes (replicas); with more than one, pods go through the scheduler.",
)  # fmt: skip
@click.option("--churn", is_flag=True, help="Also delete and recreate a quarter of the pods.")
@click.option("--json", "json_output", is_flag=True, help="Print JSON (no progress bar).")
@click.option(
    "--plot", type=click.Path(dir_okay=False, path_type=Path), help="Write a PNG plot here."
)
@click.option(
    "--pod-template",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A Pod manifest (YAML/JSON) to create instead of the default pod.",
)
@click.option("--compare", "compare", metavar="RECIPE_B", help="Compare with RECIPE_B (B/A).")
@click.option(
    "--rounds", type=click.IntRange(min=1), default=None,
    help="Rounds per recipe, interleaved [default: 1, or 2 with --compare].",
)  # fmt: skip
@click.option(
    "--timeout", "timeout_seconds", type=click.FloatRange(min=1), default=600.0,
    show_default=True, help="Give up a wait after this many seconds.",
)  # fmt: skip
@friendly
def bench(
    recipe: str,
    pods: int,
    concurrency: int,
    nodes: int,
    churn: bool,
    json_output: bool,
    plot: Path | None,
    pod_template: Path | None,
    compare: str | None,
    rounds: int | None,
    timeout_seconds: float,
) -> None:
    """Benchmark RECIPE's node(s) on a fresh in-memory API server (see docs/benchmarking.md)."""
    from vkcompose.bench import bench_blocking
    from vkcompose.bench.pods import TemplateError

    recipes = [recipe, compare] if compare else [recipe]
    try:
        status = bench_blocking(
            recipes,
            pods=pods,
            concurrency=concurrency,
            nodes=nodes,
            churn=churn,
            rounds=rounds or (2 if compare else 1),
            template=pod_template,
            timeout_seconds=timeout_seconds,
            json_output=json_output,
            plot=plot,
        )
    except TemplateError as error:
        raise UsageProblem(str(error)) from error
    sys.exit(status)


if __name__ == "__main__":
    main()
