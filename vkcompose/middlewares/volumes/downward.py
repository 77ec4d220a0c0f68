"""Values of downwardAPI volume files, as the kubelet computes them (pure, no I/O).

A thin layer over :mod:`vkcompose.podspec.fieldpath`: the kubelet accepts only ``metadata.*``
field paths in volume files (status and spec fields are environment-only), and writes label and
annotation maps as sorted ``key="value"`` lines with Go's ``%q`` escaping, no final newline.

>>> pod = {"metadata": {"name": "p", "labels": {"zone": "us-east", "app": "web"}}}
>>> print(volume_field_value(pod, "metadata.labels"))
app="web"
zone="us-east"
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vkcompose.errors import InvalidInput
from vkcompose.podspec import Pod
from vkcompose.podspec.fieldpath import (
    METADATA_FIELDS,
    FieldPathError,
    field_value,
    format_labels_file,
    resource_value,
    split_subscript,
)


def volume_field_value(pod: Pod, field_path: str) -> str:
    """The content of a downwardAPI volume file for ``fieldRef.fieldPath``.

    Raises :class:`InvalidInput` for paths the kubelet does not support in volume files.
    """
    path, _ = split_subscript(field_path)
    if path not in METADATA_FIELDS:
        raise InvalidInput(f"unsupported fieldPath: {field_path}")
    try:
        return field_value(pod, field_path)
    except FieldPathError as exc:
        raise InvalidInput(str(exc)) from None


def resource_field_value(
    pod: Pod, ref: Mapping[str, Any], allocatable: Mapping[str, str] | None = None
) -> str:
    """The content of a downwardAPI volume file for ``resourceFieldRef``.

    A missing cpu/memory/ephemeral-storage limit defaults to the node's ``allocatable``; the
    value is divided by ``divisor`` (default ``1``) and rounded up, as the kubelet does.
    """
    divisor = ref.get("divisor")
    try:
        return resource_value(
            pod,
            str(ref.get("containerName") or ""),
            str(ref.get("resource") or ""),
            str(divisor) if divisor is not None else None,
            allocatable,
        )
    except FieldPathError as exc:
        raise InvalidInput(str(exc)) from None


format_map = format_labels_file
"""The kubelet's labels/annotations file format (``FormatMap``)."""

__all__ = ["format_map", "resource_field_value", "volume_field_value"]
