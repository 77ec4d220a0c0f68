"""Fixtures for node-runtime tests: a simulated backend, a shared API connection, a runner."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from nodekit import FAST

from vkcompose.apiserver import APIServer
from vkcompose.backends.memory import MemoryBackend
from vkcompose.node.kube import Kube, connect
from vkcompose.node.runtime import NodeRuntime, virtual_node
from vkcompose.node.settings import VirtualNode


@pytest.fixture
async def backend() -> AsyncIterator[MemoryBackend]:
    """A zero-delay simulated backend."""
    async with MemoryBackend() as b:
        yield b


@pytest.fixture
async def kube(apiserver: APIServer) -> AsyncIterator[Kube]:
    """A :class:`Kube` connected through the server's kubeconfig file."""
    k = await connect(apiserver.kubeconfig_path)
    try:
        yield k
    finally:
        await k.close()


@pytest.fixture
async def start(kube: Kube, backend: MemoryBackend) -> AsyncIterator[Callable[..., Any]]:
    """``await start(**VirtualNode fields)`` runs a virtual node until the test ends."""
    async with contextlib.AsyncExitStack() as stack:

        async def _start(**fields: Any) -> NodeRuntime:
            settings = {**FAST, "name": "vk-test", "backend": backend, **fields}
            node = VirtualNode(**settings)
            return await stack.enter_async_context(virtual_node(node, kube=kube))

        yield _start
