"""Decode pod watch events without decoding an unchanged ``spec`` again.

Most watch events of a running pod change only its status or metadata; the node's own status
writes come back this way, one event per write. :class:`SpecReuse` decodes such an event's
line without the pod's ``spec``, and when the spec's bytes are the encoding of the spec already
held for that pod, puts that same dict in its place. The spec is then neither decoded nor
held twice, and ``new["spec"] is old["spec"]`` tells the controller it did not change.

The result always equals ``orjson.loads(line)``. The line is split at the first ``,"spec":{``
and the ``},"status":`` after it, and the split is used only when it is the object's own spec
and the held one: the event has one ``"object"`` key, the part before the split is exactly
what encoding the event up to the object's members before ``status`` gives (so the spec key
is a member of the object), and the spec's bytes are the encoding of the held spec (a
complete JSON object, so they end where the spec ends). Any other line (another key order, a
changed spec, a server that encodes differently) is decoded whole.

>>> import orjson
>>> held = {"containers": [{"name": "c", "image": "x:1"}]}
>>> line = orjson.dumps({"type": "MODIFIED", "object": {"metadata": {"name": "p"},
...     "spec": held, "status": {"phase": "Running"}}})
>>> decode = SpecReuse(lambda key: held if key == ("default", "p") else None)
>>> event = decode(line)
>>> event == orjson.loads(line), event["object"]["spec"] is held
(True, True)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from vkcompose.node.plan import PodKey, key_of

__all__ = ["SpecReuse"]

_SPEC = b',"spec":{'
_SPEC_VALUE = len(_SPEC) - 1
"""Offset of the spec's opening brace from the start of :data:`_SPEC`."""
_STATUS = b'},"status":'
_ADDED = b'{"type":"ADDED",'


class SpecReuse:
    """A watch-line decoder for pods that reuses the held spec (see the module docstring).

    ``held(key)`` returns the spec currently held for ``(namespace, name)``, or ``None``.
    :attr:`reused` counts the events whose spec was reused.
    """

    def __init__(self, held: Callable[[PodKey], Mapping[str, Any] | None]) -> None:
        self._held = held
        self.reused = 0

    def __call__(self, line: bytes) -> Any:
        if line.startswith(_ADDED):
            return orjson.loads(line)  # a new pod: no spec is held for it yet
        start = line.find(_SPEC)
        end = line.find(_STATUS, start) if start >= 0 else -1
        if end < 0 or line.count(b'"object":') != 1:
            return orjson.loads(line)
        try:
            event = orjson.loads(line[:start] + line[end + 1 :])
            if not _split_at_the_object(line, start, event):
                return orjson.loads(line)
            obj = event["object"]
            held = self._held(key_of(obj)) if isinstance(obj.get("metadata"), dict) else None
            if held is None or orjson.dumps(held) != line[start + _SPEC_VALUE : end + 1]:
                return orjson.loads(line)
        except (orjson.JSONDecodeError, orjson.JSONEncodeError):
            return orjson.loads(line)  # e.g. deeper than orjson encodes
        obj["spec"] = held
        self.reused += 1
        return event


def _split_at_the_object(line: bytes, start: int, event: Any) -> bool:
    """Whether ``line[:start]`` is ``event`` encoded up to the end of its object's members
    before ``status``: then the ``,"spec":`` at ``start`` is a member of the object."""
    if not isinstance(event, dict) or next(reversed(event), None) != "object":
        return False
    obj = event["object"]
    if not isinstance(obj, dict) or "spec" in obj or "status" not in obj:
        return False
    head: dict[str, Any] = {}
    for name, value in obj.items():
        if name == "status":
            break
        head[name] = value
    # the encoding ends with the object's and the event's closing braces
    return orjson.dumps({**event, "object": head})[:-2] == line[:start]
