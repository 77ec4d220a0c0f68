"""Young-generation collections paced by writes (see ``vkcompose.apiserver.young_gc``)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubernetes_asyncio.client import CoreV1Api

from vkcompose.apiserver import APIServer
from vkcompose.apiserver.young_gc import YoungCollector


@pytest.fixture
def young_collections() -> Iterator[list[int]]:
    """The generation of every collection that starts while the test runs."""
    seen: list[int] = []

    def record(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            seen.append(info["generation"])

    gc.callbacks.append(record)
    try:
        yield seen
    finally:
        gc.callbacks.remove(record)


@given(every=st.integers(1, 50), writes=st.integers(0, 300))
def test_one_young_collection_per_every_writes(every: int, writes: int) -> None:
    young = YoungCollector(every)
    for _ in range(writes):
        young.wrote()
    assert young.collections == writes // every


def test_collections_are_of_the_young_generation(young_collections: list[int]) -> None:
    thresholds = gc.get_threshold()
    gc.set_threshold(0)  # no automatic collection: every one seen is the collector's
    try:
        young = YoungCollector(10)
        for _ in range(30):
            young.wrote()
    finally:
        gc.set_threshold(*thresholds)
    assert young_collections == [0, 0, 0]


def test_nothing_is_collected_while_the_collector_is_disabled_or_off(
    young_collections: list[int],
) -> None:
    off = YoungCollector(0)
    for _ in range(100):
        off.wrote()
    gc.disable()
    try:
        paused = YoungCollector(1)
        for _ in range(100):
            paused.wrote()
    finally:
        gc.enable()
    assert (off.collections, paused.collections) == (0, 0)
    assert young_collections == []


@pytest.mark.anyio
async def test_the_server_counts_every_committed_write(api: Any, apiserver: APIServer) -> None:
    core = CoreV1Api(api)
    young = apiserver.registry.young = YoungCollector(5)
    for i in range(10):
        await core.create_namespaced_config_map(
            "default", {"metadata": {"name": f"c{i}"}, "data": {"k": "v"}}
        )
        await core.patch_namespaced_config_map(f"c{i}", "default", {"data": {"k": "w"}})
    # 20 writes: 4 collections (an update that changes nothing would not be a write)
    assert young.collections == 4
