"""pytest fixtures: an embedded API server per test (in memory, TLS, admin kubeconfig)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from vkcompose.apiserver import APIServer, embedded_apiserver

__all__ = ["apiserver"]


@pytest.fixture
async def apiserver() -> AsyncIterator[APIServer]:
    """A running in-memory :class:`~vkcompose.apiserver.APIServer` (TLS); use
    ``await apiserver.api_client()`` or ``apiserver.kubeconfig_path`` to talk to it."""
    async with embedded_apiserver(bookmark_interval=0.2) as server:
        yield server
