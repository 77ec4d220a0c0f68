"""The process backend passes the backend conformance kit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from vkcompose.backends.process import ProcessBackend
from vkcompose.testing.conformance import BackendConformance


class TestProcessBackendConformance(BackendConformance):
    """Real processes behind an empty pipeline."""

    @pytest.fixture
    async def make_backend(self, state_dir: Path) -> AsyncIterator[ProcessBackend]:
        backend = ProcessBackend(state_dir, backoff_base=0.05, kill_wait=1.0)
        try:
            yield backend
        finally:
            with anyio.move_on_after(10, shield=True):
                await backend.aclose(stop_pods=True, grace=0)
