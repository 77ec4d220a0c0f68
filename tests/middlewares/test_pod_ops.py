"""with_pod: the same op as attrs.evolve(op, pod=…), for every pod-carrying op type."""

from __future__ import annotations

import attrs
import pytest

from vkcompose.middlewares.pod_ops import with_pod
from vkcompose.ops import AllocatePodIPs, CreatePod, DeletePod, NodeInfo, Op, UpdatePod

NODE = NodeInfo(name="vk-1")
POD = {"metadata": {"name": "a"}}
NEW = {"metadata": {"name": "b"}}


@pytest.mark.parametrize(
    "op",
    [
        CreatePod(pod=POD),
        CreatePod(pod=POD, node=NODE, volume_paths={"v": "/x"}),
        UpdatePod(pod=POD, node=NODE),
        DeletePod(pod=POD, grace_period_seconds=3),
        AllocatePodIPs(pod=POD, node=NODE),
    ],
)
def test_with_pod_equals_evolve(op: Op) -> None:
    got = with_pod(op, NEW)
    assert type(got) is type(op)
    assert got == attrs.evolve(op, pod=NEW)
    assert got.pod_or_none is NEW
    assert op.pod_or_none is POD  # the original is untouched
