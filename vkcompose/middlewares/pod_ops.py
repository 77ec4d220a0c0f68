"""Rewriting the pod an op carries: :func:`with_pod`, ``attrs.evolve(op, pod=…)`` made cheap.

The env middlewares hand a rewritten pod down the pipeline for every CreatePod/UpdatePod;
``attrs.evolve`` looks the class's fields up on every call. For the op classes whose fields
are exactly ``pod``, ``node`` and ``volume_paths`` (checked once, at import) :func:`with_pod`
calls the constructor directly; any other op goes through ``attrs.evolve``.
"""

from __future__ import annotations

from typing import TypeVar

import attrs

from vkcompose.ops import CreatePod, Op, UpdatePod
from vkcompose.podspec import Pod

OpT = TypeVar("OpT", bound=Op)

_DIRECT: frozenset[type[Op]] = frozenset(
    cls
    for cls in (CreatePod, UpdatePod)
    if [a.name for a in attrs.fields(cls)] == ["pod", "node", "volume_paths"]
)


def with_pod(op: OpT, pod: Pod) -> OpT:
    """A copy of ``op`` carrying ``pod`` (the same as ``attrs.evolve(op, pod=pod)``)."""
    cls = type(op)
    if cls in _DIRECT:
        return cls(pod, node=op.node, volume_paths=op.volume_paths)  # type: ignore[call-arg,attr-defined]
    return attrs.evolve(op, pod=pod)  # type: ignore[call-arg]


__all__ = ["with_pod"]
