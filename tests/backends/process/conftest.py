"""Fixtures for the process backend tests: a backend on a temporary state directory whose
processes are all killed (by PID) at the end of each test, even when it fails."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest

from vkcompose.backends.process import ProcessBackend

FAST = {"backoff_base": 0.05, "backoff_cap": 0.4, "probe_time_scale": 0.05, "kill_wait": 1.0}


def processes_under(state_dir: Path) -> list[psutil.Process]:
    """Shims whose spec lives under ``state_dir`` (started by a test), and their descendants."""
    found: dict[int, psutil.Process] = {}
    marker = str(state_dir)
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if any(marker in part for part in cmdline):
            found[proc.pid] = proc
            with contextlib.suppress(psutil.Error):
                for kid in proc.children(recursive=True):
                    found[kid.pid] = kid
    return list(found.values())


def kill_all(state_dir: Path) -> None:
    """SIGKILL every process a test started under ``state_dir``."""
    for proc in processes_under(state_dir):
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGKILL)
    for proc in processes_under(state_dir):
        with contextlib.suppress(psutil.Error):
            proc.wait(2)


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    """A state directory; every process started under it is killed afterwards."""
    path = tmp_path / "pods"
    try:
        yield path
    finally:
        kill_all(path)


@pytest.fixture
async def make_backend(state_dir: Path) -> AsyncIterator[Callable[..., ProcessBackend]]:
    """Build fast-timing backends on ``state_dir``; all are closed (pods stopped) at the end."""
    made: list[ProcessBackend] = []

    def make(**kwargs: Any) -> ProcessBackend:
        options = {**FAST, **kwargs}
        backend = ProcessBackend(state_dir, **options)
        made.append(backend)
        return backend

    try:
        yield make
    finally:
        with anyio.move_on_after(10, shield=True):
            for backend in reversed(made):
                await backend.aclose(stop_pods=True, grace=0)


@pytest.fixture
async def backend(make_backend: Callable[..., ProcessBackend]) -> ProcessBackend:
    """A backend with the best isolation available."""
    return make_backend()


@pytest.fixture(params=["namespaces", "bwrap", "none"])
async def any_backend(
    request: pytest.FixtureRequest, make_backend: Callable[..., ProcessBackend]
) -> ProcessBackend:
    """The backend in each isolation mode (``namespaces`` needs root; ``bwrap`` bubblewrap)."""
    if request.param == "namespaces" and os.geteuid() != 0:
        return make_backend(isolation="none")
    return make_backend(isolation=request.param)
