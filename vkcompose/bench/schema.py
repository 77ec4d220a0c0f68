"""The layout of ``vkcompose bench --json`` and a small validator for it.

:data:`SCHEMA` is written in the JSON Schema vocabulary (draft 2020-12 keywords ``type``,
``properties``, ``required``, ``additionalProperties``, ``items``, ``minimum``, ``maximum``,
``enum``, ``const``), so any JSON Schema validator accepts it; :func:`validate` implements just
that subset, so checking a report needs no extra dependency. ``docs/benchmarking.md`` explains
each figure.

>>> print(*validate({"format": "x"}, {"type": "object", "required": ["results"]}))
$: missing required key 'results'
>>> print(*validate([1, -2], {"type": "array", "items": {"type": "integer", "minimum": 0}}))
$[1]: -2 is below the minimum 0
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["SCHEMA", "validate"]

JSON = dict[str, Any]


def _obj(properties: Mapping[str, JSON], *, extra: bool = False) -> JSON:
    return {
        "type": "object",
        "properties": dict(properties),
        "required": sorted(properties),
        "additionalProperties": extra,
    }


_COUNT: JSON = {"type": "integer", "minimum": 0}
_SECONDS: JSON = {"type": "number", "minimum": 0}
_NUMBER: JSON = {"type": "number"}
_FRACTION: JSON = {"type": "number", "minimum": 0, "maximum": 1}
_STRINGS: JSON = {"type": "array", "items": {"type": "string"}}

_LATENCY = _obj(
    {"count": _COUNT, "mean": _SECONDS, "p50": _SECONDS, "p90": _SECONDS, "p99": _SECONDS,
     "max": _SECONDS}
)  # fmt: skip

_REQUESTS = _obj(
    {
        "total": _COUNT,
        "per_pod": _SECONDS,
        "by_verb": {
            "type": "object",
            "additionalProperties": _obj({"count": _COUNT, "per_pod": _SECONDS}),
        },
    }
)

_RESULT = _obj(
    {
        "recipe": {"type": "string"},
        "rounds": _COUNT,
        "binding": {"enum": ["bound", "scheduler"]},
        "nodes": _COUNT,
        "interrupted": {"type": "boolean"},
        "incomplete": _STRINGS,
        "pods": _obj(
            {
                "created": _COUNT,
                "running": _COUNT,
                "deletes_sent": _COUNT,
                "gone": _COUNT,
                "churned": _COUNT,
                "failed": _COUNT,
            }
        ),
        "failures": _STRINGS,
        "throughput": _obj(
            {
                "create_to_running_pods_per_s": _SECONDS,
                "delete_to_gone_pods_per_s": _SECONDS,
                "running_seconds": _SECONDS,
                "delete_seconds": _SECONDS,
                "churn_seconds": _SECONDS,
            }
        ),
        "latency_seconds": _obj({"create_to_running": _LATENCY, "delete_to_gone": _LATENCY}),
        "pipeline": _obj(
            {
                "seconds_per_pod": _SECONDS,
                "layers": {
                    "type": "array",
                    "items": _obj(
                        {
                            "layer": {"type": "string"},
                            "calls": _COUNT,
                            "self_seconds": _SECONDS,
                            "share": _FRACTION,
                            "self_us_per_pod": _SECONDS,
                        }
                    ),
                },
                "ops": {
                    "type": "array",
                    "items": _obj(
                        {
                            "layer": {"type": "string"},
                            "kind": {"type": "string"},
                            "calls": _COUNT,
                            "total_seconds": _SECONDS,
                            "self_seconds": _SECONDS,
                            "mean_self_us": _SECONDS,
                        }
                    ),
                },
                "backend_ops": {
                    "type": "array",
                    "items": _obj(
                        {
                            "kind": {"type": "string"},
                            "calls": _COUNT,
                            "seconds": _SECONDS,
                            "mean_us": _SECONDS,
                        }
                    ),
                },
            }
        ),
        "api_requests": _obj({"node": _REQUESTS, "load": _REQUESTS}),
        "ceiling": _obj(
            {
                "status_patches": _COUNT,
                "seconds": _SECONDS,
                "patches_per_s": _SECONDS,
                "throughput_ratio": _SECONDS,
            }
        ),
        "process": _obj(
            {
                "wall_seconds": _SECONDS,
                "cpu_user_seconds": _SECONDS,
                "cpu_system_seconds": _SECONDS,
                "cpu_seconds": _SECONDS,
                "cpu_ms_per_pod": _SECONDS,
                "rss_start_bytes": _COUNT,
                "rss_peak_bytes": _COUNT,
                "rss_end_bytes": _COUNT,
                "rss_growth_per_pod_bytes": _NUMBER,
            }
        ),
    }
)

_RATIO = {"type": ["number", "null"], "minimum": 0}

SCHEMA: JSON = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "vkcompose bench report",
    **_obj(
        {
            "format": {"const": "vkcompose-bench/1"},
            "vkcompose_version": {"type": "string"},
            "settings": _obj(
                {
                    "pods": _COUNT,
                    "concurrency": _COUNT,
                    "nodes": _COUNT,
                    "churn": {"type": "boolean"},
                    "churn_fraction": _FRACTION,
                    "rounds": _COUNT,
                    "pod_template": {"type": "string"},
                }
            ),
            "interrupted": {"type": "boolean"},
            "results": {"type": "array", "items": _RESULT},
            "ratios": {
                "type": ["object", "null"],
                "additionalProperties": _RATIO,
            },
        }
    ),
}
"""JSON Schema of the ``--json`` document."""

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
    "null": (type(None),),
}


def _is(value: Any, name: str) -> bool:
    if isinstance(value, bool) and name in ("integer", "number"):
        return False
    return isinstance(value, _TYPES[name])


def validate(instance: Any, schema: Mapping[str, Any], path: str = "$") -> list[str]:
    """Problems of ``instance`` against ``schema`` (empty when valid), each with its path."""
    problems: list[str] = []
    expected = schema.get("type")
    if expected is not None:
        names = [expected] if isinstance(expected, str) else list(expected)
        if not any(_is(instance, name) for name in names):
            return [f"{path}: expected {' or '.join(names)}, got {type(instance).__name__}"]
    if "const" in schema and instance != schema["const"]:
        problems.append(f"{path}: expected {schema['const']!r}, got {instance!r}")
    if "enum" in schema and instance not in schema["enum"]:
        problems.append(f"{path}: {instance!r} is not one of {schema['enum']!r}")
    if isinstance(instance, int | float) and not isinstance(instance, bool):
        if "minimum" in schema and instance < schema["minimum"]:
            problems.append(f"{path}: {instance} is below the minimum {schema['minimum']}")
        if "maximum" in schema and instance > schema["maximum"]:
            problems.append(f"{path}: {instance} is above the maximum {schema['maximum']}")
    if isinstance(instance, dict):
        properties: Mapping[str, Any] = schema.get("properties", {})
        for key in schema.get("required", ()):
            if key not in instance:
                problems.append(f"{path}: missing required key {key!r}")
        extra = schema.get("additionalProperties", True)
        for key, value in instance.items():
            if key in properties:
                problems += validate(value, properties[key], f"{path}.{key}")
            elif extra is False:
                problems.append(f"{path}: unexpected key {key!r}")
            elif isinstance(extra, Mapping):
                problems += validate(value, extra, f"{path}.{key}")
    if isinstance(instance, list) and "items" in schema:
        for i, item in enumerate(instance):
            problems += validate(item, schema["items"], f"{path}[{i}]")
    return problems
