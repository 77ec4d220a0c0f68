"""Time a recipe's pipeline with the timing hook (:mod:`vkcompose.middlewares.timing`).

:func:`instrument_node` swaps a :class:`~vkcompose.node.settings.VirtualNode`'s middlewares for
the timed ones :func:`~vkcompose.middlewares.timing.instrument` builds. The node runtime finds
collaborators on the middlewares by attribute (``events``: an event sink it binds) and among
their attribute values, two levels deep (``sources``, ``services``, ``tokens``: helpers it
starts), so each timed layer carries the wrapped middleware's attributes as its own.
"""

from __future__ import annotations

from typing import Any

from vkcompose.middlewares.timing import Timed, TimingRecorder, instrument
from vkcompose.node.settings import VirtualNode

__all__ = ["ForwardingTimed", "instrument_node"]


_TIMED_SLOTS = frozenset(name for cls in Timed.__mro__ for name in getattr(cls, "__slots__", ()))


def _attribute_values(obj: object) -> dict[str, Any]:
    try:
        return dict(vars(obj))
    except TypeError:  # slotted
        return {
            name: getattr(obj, name)
            for cls in type(obj).__mro__
            for name in getattr(cls, "__slots__", ())
            if hasattr(obj, name)
        }


class ForwardingTimed(Timed):
    """A :class:`Timed` layer that looks like the middleware it wraps to the runtime.

    Its instance attributes are a snapshot of the wrapped middleware's, taken here (the runtime
    inspects them once, when the node starts), so collaborators are found at the same depth as
    on the bare middleware; any other attribute is read from the middleware.
    """

    def __init__(self, inner: Any, name: str, recorder: TimingRecorder) -> None:
        super().__init__(inner, name, recorder)
        for key, value in _attribute_values(inner).items():
            if key not in _TIMED_SLOTS:
                self.__dict__[key] = value


def instrument_node(node: VirtualNode, recorder: TimingRecorder) -> None:
    """Make ``node``'s pipeline record its self times into ``recorder`` (in place)."""
    timed = instrument(node.pipeline, recorder)
    node.middlewares = [
        ForwardingTimed(m.inner, m.name, m.recorder) if isinstance(m, Timed) else m
        for m in timed.middlewares
    ]
