"""Time a recipe's pipeline with the timing hook (:mod:`vkcompose.middlewares.timing`).

:func:`instrument_node` swaps a :class:`~vkcompose.node.settings.VirtualNode`'s middlewares for
the timed ones :func:`~vkcompose.middlewares.timing.instrument` builds. The node runtime finds
collaborators on the middlewares by attribute (``events``: an event sink it binds) and among
their attribute values (``sources``, ``services``, ``tokens``: caches it starts), so each timed
layer forwards unknown attributes to the middleware it wraps and lists it among its own.
"""

from __future__ import annotations

from typing import Any

from vkcompose.middlewares.timing import Timed, TimingRecorder, instrument
from vkcompose.node.settings import VirtualNode

__all__ = ["ForwardingTimed", "instrument_node"]


class ForwardingTimed(Timed):
    """A :class:`Timed` layer that also exposes the wrapped middleware's attributes."""

    def __init__(self, inner: Any, name: str, recorder: TimingRecorder) -> None:
        super().__init__(inner, name, recorder)
        self.wrapped = inner
        """The middleware (also in ``vars()``, where the runtime looks for collaborators)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


def instrument_node(node: VirtualNode, recorder: TimingRecorder) -> None:
    """Make ``node``'s pipeline record its self times into ``recorder`` (in place)."""
    timed = instrument(node.pipeline, recorder)
    node.middlewares = [
        ForwardingTimed(m.inner, m.name, m.recorder) if isinstance(m, Timed) else m
        for m in timed.middlewares
    ]
