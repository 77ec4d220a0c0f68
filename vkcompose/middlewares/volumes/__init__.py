"""Volumes: materialize a pod's volumes on the host, kubelet-style (see ``docs/middlewares.md``).

Pure cores first — :func:`plan_volume` (what files a volume holds) and :func:`write_volume`
(the kubelet's atomic writer) — then the :class:`Volumes` middleware adapting them to the
pipeline, and token sources for projected service account tokens.
"""

from vkcompose.middlewares.volumes.downward import format_map, volume_field_value
from vkcompose.middlewares.volumes.middleware import (
    SecretSink,
    SourceReader,
    Volumes,
    pod_dir_name,
)
from vkcompose.middlewares.volumes.plan import (
    DEFAULT_MODE,
    FileSpec,
    Ownership,
    SourceSnapshot,
    SyncSourceReader,
    VolumeMountError,
    check_path,
    plan_volume,
    volume_kind,
    volume_ownership,
)
from vkcompose.middlewares.volumes.tokens import KubeTokenSource, TokenCache, TokenSource
from vkcompose.middlewares.volumes.writer import read_volume, set_ownership, write_volume

__all__ = [
    "DEFAULT_MODE",
    "FileSpec",
    "KubeTokenSource",
    "Ownership",
    "SecretSink",
    "SourceReader",
    "SourceSnapshot",
    "SyncSourceReader",
    "TokenCache",
    "TokenSource",
    "VolumeMountError",
    "Volumes",
    "check_path",
    "format_map",
    "plan_volume",
    "pod_dir_name",
    "read_volume",
    "set_ownership",
    "volume_field_value",
    "volume_kind",
    "volume_ownership",
    "write_volume",
]
