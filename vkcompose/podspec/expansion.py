"""``$(VAR)`` expansion exactly as Kubernetes does it in env values, ``command`` and ``args``.

The rules (``third_party/forked/golang/expansion`` in Kubernetes):

* ``$(NAME)`` is replaced by the value of ``NAME`` when the mapping knows it; otherwise it is
  left verbatim (``$(NAME)``);
* ``$$`` is an escaped ``$`` and becomes ``$`` (so ``$$(NAME)`` yields the text ``$(NAME)``);
* a ``$`` followed by anything else is kept with that character; an unterminated ``$(`` is
  kept as is and scanning continues right after the ``(``.

>>> expand("$(PROTOCOL)://$(HOST):$(PORT)", {"PROTOCOL": "https", "HOST": "10.0.0.1"})
'https://10.0.0.1:$(PORT)'
>>> expand("$$(PROTOCOL) costs $5 $(", {"PROTOCOL": "https"})
'$(PROTOCOL) costs $5 $('

:func:`escape` makes any string expansion-proof: ``expand(escape(s), m) == s`` for every
mapping ``m``. Middlewares use it when they replace a ``valueFrom`` by a literal ``value``
so that the rewritten pod means exactly what the original meant.

:func:`dependent_env` applies the kubelet's sequential rule to a container's ``env`` list:
each literal value may refer to variables defined earlier (and to an outer mapping, such as
service links), values taken from sources are never expanded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from types import FunctionType, MethodType
from typing import Any

_OPERATOR = "$"
_OPENER = "("
_CLOSER = ")"


def _compile(s: str) -> tuple[str, ...]:
    """``s`` split for expansion: literal text and variable names alternating, starting and
    ending with text (``$$`` and the other escapes already applied to the text)."""
    parts: list[str] = []
    text: list[str] = []
    checkpoint = 0  # start of the text not copied yet
    last = len(s) - 1  # a ``$`` in the last position is plain text
    cursor = s.find(_OPERATOR)
    while 0 <= cursor < last:
        text.append(s[checkpoint:cursor])
        nxt = s[cursor + 1]
        if nxt == _OPENER:
            close = s.find(_CLOSER, cursor + 2)
            if close < 0:
                text.append(_OPERATOR + _OPENER)
                checkpoint = cursor + 2
            else:
                parts.append("".join(text))
                parts.append(s[cursor + 2 : close])
                text = []
                checkpoint = close + 1
        else:  # ``$$`` is an escaped ``$``; ``$x`` stays as it is
            text.append(_OPERATOR if nxt == _OPERATOR else _OPERATOR + nxt)
            checkpoint = cursor + 2
        cursor = s.find(_OPERATOR, checkpoint)
    text.append(s[checkpoint:])
    parts.append("".join(text))
    return tuple(parts)


_COMPILED: dict[str, tuple[str, ...]] = {}
""":func:`_compile` results by string (pod templates repeat the same values pod after pod)."""
_COMPILED_LIMIT = 4096


def expand(s: str, mapping: Mapping[str, str] | Callable[[str], str | None]) -> str:
    """Expand ``$(VAR)`` references in ``s`` from ``mapping``, as Kubernetes does.

    ``mapping`` is a mapping or a function returning ``None`` for unknown names.
    """
    if _OPERATOR not in s:
        return s
    parts = _COMPILED.get(s)
    if parts is None:
        parts = _compile(s)
        if len(_COMPILED) >= _COMPILED_LIMIT:
            _COMPILED.clear()
        _COMPILED[s] = parts
    if len(parts) == 1:  # escapes only
        return parts[0]
    lookup: Callable[[str], str | None]
    kind = type(mapping)
    if kind is FunctionType or kind is MethodType:  # never a Mapping: skip the ABC check
        lookup = mapping  # type: ignore[assignment]
    elif kind is dict:
        lookup = mapping.get  # type: ignore[union-attr]
    else:
        lookup = mapping.get if isinstance(mapping, Mapping) else mapping
    out = list(parts)  # text at even positions stays; names at odd positions are replaced
    for i in range(1, len(out), 2):
        name = out[i]
        value = lookup(name)
        out[i] = value if value is not None else f"$({name})"
    return "".join(out)


def escape(s: str) -> str:
    """Escape ``s`` so that expansion gives it back unchanged (every ``$`` becomes ``$$``)."""
    return s.replace(_OPERATOR, _OPERATOR + _OPERATOR)


def chained(*mappings: Mapping[str, str]) -> Callable[[str], str | None]:
    """A lookup trying ``mappings`` in order (the kubelet's ``MappingFuncFor``)."""

    def lookup(name: str) -> str | None:
        for m in mappings:
            value = m.get(name)
            if value is not None:
                return value
        return None

    return lookup


def dependent_env(
    env: Iterable[Mapping[str, Any]],
    *,
    initial: Mapping[str, str] | None = None,
    outer: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Resolve a list of literal env entries (``{"name", "value"}``) the kubelet's way.

    Entries are processed in order; a non-empty ``value`` is expanded against the variables
    defined so far (starting from ``initial``, e.g. those from ``envFrom``) and then ``outer``
    (e.g. service links). A later entry of the same name replaces the earlier value. Returns
    the variables (insertion ordered; ``outer`` is not included).

    >>> dependent_env([{"name": "A", "value": "x"}, {"name": "B", "value": "$(A)-$(C)"},
    ...                {"name": "C", "value": "z"}])
    {'A': 'x', 'B': 'x-$(C)', 'C': 'z'}
    """
    defined: dict[str, str] = dict(initial or {})
    lookup = chained(defined, outer) if outer else chained(defined)
    for entry in env:
        value = entry.get("value") or ""
        defined[entry["name"]] = expand(value, lookup) if value else value
    return defined


def expand_command(command: Sequence[str] | None, env: Mapping[str, str]) -> list[str] | None:
    """Expand each word of ``command`` (or ``args``) against the container's final ``env``."""
    if command is None:
        return None
    return [expand(word, env) for word in command]


__all__ = ["chained", "dependent_env", "escape", "expand", "expand_command"]
