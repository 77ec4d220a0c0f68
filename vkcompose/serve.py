"""Blocking entry points behind ``vkcompose run``, ``up`` and ``apiserver``.

They wire the embedded API server, the node runtime and the live view together; the CLI only
parses arguments and calls them.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from vkcompose.node.settings import VirtualNode


class NotAvailable(RuntimeError):
    """A part of the runtime this command needs is not part of this installation."""


def run_node_blocking(node: VirtualNode, *, kubeconfig: Path | None, console: Console) -> None:
    """Run ``node`` against the cluster of ``kubeconfig`` until Ctrl-C."""
    raise NotAvailable("the virtual node runtime is coming in the next release")


def up_blocking(
    node: VirtualNode, *, data_dir: Path, port: int, tui: bool, console: Console
) -> None:
    """Start the embedded API server, then ``node`` against it, until Ctrl-C."""
    raise NotAvailable("`vkcompose up` is coming: it needs the embedded API server and runtime")


def apiserver_blocking(*, data_dir: Path, storage: str, port: int, console: Console) -> None:
    """Run only the embedded API server until Ctrl-C."""
    raise NotAvailable("the embedded API server is coming in the next release")


__all__ = ["NotAvailable", "apiserver_blocking", "run_node_blocking", "up_blocking"]
