"""The simulated backend passes the backend conformance kit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from vkcompose.backends.memory import MemoryBackend
from vkcompose.testing.conformance import BackendConformance


class TestMemoryBackendConformance(BackendConformance):
    """The simulator behind an empty pipeline."""

    @pytest.fixture
    async def make_backend(self) -> AsyncIterator[MemoryBackend]:
        async with MemoryBackend(log_interval=0.05) as backend:
            yield backend

    def exec_case(self) -> tuple[list[str], int, bytes]:
        return (["echo", "conformance"], 0, b"conformance\n")

    def log_pod(self, name: str) -> tuple[dict[str, Any], bytes]:
        return self.long_running_pod(name), b"simulated log line"
