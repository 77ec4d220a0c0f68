"""Plan a pod volume's files, as the kubelet's volume plugins do (pure, no I/O).

:func:`plan_volume` turns one ``configMap``, ``secret``, ``downwardAPI`` or ``projected``
volume of a pod into a payload: relative path → :class:`FileSpec` (content + mode). Sources
(ConfigMaps, Secrets) are read through any object with synchronous ``get_configmap`` /
``get_secret`` — :class:`SourceSnapshot` for a snapshot.

>>> pod = {"metadata": {"name": "p", "namespace": "default"}}
>>> volume = {"name": "config", "configMap": {"name": "game", "items": [
...     {"key": "lives", "path": "game/lives", "mode": 0o600}]}}
>>> sources = SourceSnapshot(configmaps={"game": {"data": {"lives": "3", "color": "red"}}})
>>> plan_volume(pod, volume, sources)
{'game/lives': FileSpec(mode=0o600, owner=None)}
"""

from __future__ import annotations

import base64
import binascii
import posixpath
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import attrs

from vkcompose.errors import InvalidInput, TemporaryError
from vkcompose.middlewares.volumes import downward
from vkcompose.podspec import JSON, Pod

DEFAULT_MODE = 0o644
"""The kubelet's default file mode for configMap, secret, downwardAPI and projected volumes."""

DEFAULT_TOKEN_EXPIRATION = 3600
"""``expirationSeconds`` of a serviceAccountToken projection when the pod does not set it."""

ATOMIC_KINDS = ("configMap", "secret", "downwardAPI", "projected")
"""Volume kinds whose content is planned here and written with the atomic writer."""

MAX_PATH_LENGTH = 4096
MAX_NAME_LENGTH = 255


class VolumeMountError(TemporaryError):
    """A volume cannot be set up yet (a missing ConfigMap, Secret, key or token).

    The kubelet reports this as a ``FailedMount`` Warning event and keeps the pod in
    ``ContainerCreating`` while it retries; the message has the kubelet's shape:
    ``MountVolume.SetUp failed for volume "config" : configmap "game" not found``.
    """

    default_reason = "FailedMount"

    def __init__(self, volume: str, detail: str) -> None:
        super().__init__(f'MountVolume.SetUp failed for volume "{volume}" : {detail}')
        self.volume = volume
        self.detail = detail


@attrs.frozen(slots=True)
class FileSpec:
    """One file of a volume: its bytes, permission bits and (for tokens) owning user.

    ``data`` is left out of ``repr`` so secret content never reaches logs or tracebacks;
    ``secret`` marks content from a Secret or a token (to register with a redaction registry).
    """

    data: bytes = attrs.field(repr=False)
    mode: int = attrs.field(default=DEFAULT_MODE, repr=oct)
    owner: int | None = None
    secret: bool = attrs.field(default=False, eq=False, repr=False)


@attrs.frozen(slots=True)
class Ownership:
    """Who owns a pod's volume files: ``uid`` (the pod's single runAsUser) and ``gid`` (fsGroup)."""

    uid: int | None = None
    gid: int | None = None

    def __bool__(self) -> bool:
        return self.uid is not None or self.gid is not None


def volume_ownership(pod: Pod) -> Ownership:
    """The pod's fsGroup and, when every container runs as the same user, that user."""
    spec = pod.get("spec") or {}
    pod_ctx = spec.get("securityContext") or {}
    gid = pod_ctx.get("fsGroup")
    default_uid = pod_ctx.get("runAsUser")
    uids = {
        (c.get("securityContext") or {}).get("runAsUser", default_uid)
        for c in (*(spec.get("initContainers") or ()), *(spec.get("containers") or ()))
    }
    if not uids:
        uids = {default_uid}
    uid = uids.pop() if len(uids) == 1 else None
    return Ownership(
        uid=int(uid) if uid is not None else None, gid=int(gid) if gid is not None else None
    )


class SyncSourceReader(Protocol):
    """Reads ConfigMaps and Secrets (full objects as the API sends them) synchronously."""

    def get_configmap(self, namespace: str, name: str, /) -> JSON | None:
        """The ConfigMap, or ``None`` if it does not exist."""
        ...

    def get_secret(self, namespace: str, name: str, /) -> JSON | None:
        """The Secret (``data`` base64-encoded), or ``None`` if it does not exist."""
        ...


@attrs.frozen
class SourceSnapshot:
    """A snapshot of ConfigMaps and Secrets by name (any namespace): a :class:`SyncSourceReader`."""

    configmaps: Mapping[str, JSON | None] = attrs.field(factory=dict)
    secrets: Mapping[str, JSON | None] = attrs.field(factory=dict, repr=False)

    def get_configmap(self, namespace: str, name: str, /) -> JSON | None:
        """The ConfigMap named ``name`` in the snapshot."""
        return self.configmaps.get(name)

    def get_secret(self, namespace: str, name: str, /) -> JSON | None:
        """The Secret named ``name`` in the snapshot."""
        return self.secrets.get(name)


TokenFor = Callable[[str, int], str]
"""``(audience, expiration_seconds) -> token`` for serviceAccountToken projections."""


def volume_kind(volume: Mapping[str, Any]) -> str:
    """The volume's source kind (``configMap``, ``emptyDir`` …): its one key besides ``name``."""
    for key in volume:
        if key != "name":
            return key
    return ""


def check_path(volume: str, path: str) -> str:
    """Validate a file path inside a volume as the kubelet's atomic writer does; return it clean.

    Rejected with :class:`InvalidInput` (naming volume and path): empty or absolute paths,
    ``..`` components, a first component starting with ``..`` (reserved for the writer),
    NUL bytes, names over 255 and paths over 4096 characters.
    """
    problem = None
    if not isinstance(path, str) or path == "":
        problem = "must not be empty"
    elif "\x00" in path:
        problem = "must not contain NUL"
    elif path.startswith("/"):
        problem = "must be a relative path"
    elif len(path) > MAX_PATH_LENGTH:
        problem = f"must be at most {MAX_PATH_LENGTH} characters"
    else:
        parts = path.split("/")
        if ".." in parts:
            problem = "must not contain '..'"
        elif any(len(part) > MAX_NAME_LENGTH for part in parts):
            problem = f"file names must be at most {MAX_NAME_LENGTH} characters"
        elif parts[0].startswith(".."):
            problem = "must not start with '..'"
    if problem is None:
        clean = posixpath.normpath(path)
        if clean in (".", "") or clean.startswith("/"):
            problem = "must name a file"
        elif clean.startswith(".."):
            problem = "must not start with '..'"
        else:
            return clean
    raise InvalidInput(f'volume "{volume}": invalid path {path!r}: {problem}')


def _check_mode(volume: str, mode: Any, what: str) -> int:
    if mode is None:
        return DEFAULT_MODE
    if not isinstance(mode, int) or isinstance(mode, bool) or not 0 <= mode <= 0o777:
        raise InvalidInput(f'volume "{volume}": {what} must be a number between 0 and 0777')
    return mode


def _decode_secret(volume: str, name: str, secret: JSON) -> dict[str, bytes]:
    data: dict[str, bytes] = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            data[key] = base64.b64decode(value or "", validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise VolumeMountError(volume, f'secret "{name}": key {key}: invalid base64') from None
    for key, value in (secret.get("stringData") or {}).items():
        data[key] = str(value).encode()
    return data


def _configmap_data(volume: str, name: str, configmap: JSON) -> dict[str, bytes]:
    data = {k: str(v).encode() for k, v in (configmap.get("data") or {}).items()}
    for key, value in (configmap.get("binaryData") or {}).items():
        try:
            data[key] = base64.b64decode(value or "", validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise VolumeMountError(
                volume, f'configmap "{name}": binaryData key {key}: invalid base64'
            ) from None
    return data


def _key_payload(
    volume: str,
    data: Mapping[str, bytes],
    items: Iterable[Mapping[str, Any]] | None,
    default_mode: int,
    optional: bool,
    missing_key: str,
    secret: bool = False,
) -> dict[str, FileSpec]:
    payload: dict[str, FileSpec] = {}
    items = list(items or ())
    if not items:
        for key, content in data.items():
            payload[check_path(volume, key)] = FileSpec(content, default_mode, secret=secret)
        return payload
    for item in items:
        key = item.get("key") or ""
        path = check_path(volume, item.get("path") or "")
        if key not in data:
            if optional:
                continue
            raise VolumeMountError(volume, f"{missing_key}: {key}")
        mode = item.get("mode")
        payload[path] = FileSpec(
            data[key],
            default_mode if mode is None else _check_mode(volume, mode, "mode"),
            secret=secret,
        )
    return payload


def _fetch(
    pod: Pod,
    volume: str,
    what: str,
    name: str,
    optional: bool,
    get: Callable[[str, str], JSON | None],
) -> JSON:
    """The pod's ConfigMap/Secret ``name`` via ``get``; empty if missing and ``optional``."""
    namespace = (pod.get("metadata") or {}).get("namespace") or ""
    obj = get(namespace, name)
    if obj is None:
        if not optional:
            raise VolumeMountError(volume, f'{what} "{name}" not found')
        obj = {}
    return obj


def _configmap_payload(
    pod: Pod, volume: str, src: Mapping[str, Any], sources: SyncSourceReader, default_mode: int
) -> dict[str, FileSpec]:
    name = src.get("name") or ""
    optional = bool(src.get("optional"))
    configmap = _fetch(pod, volume, "configmap", name, optional, sources.get_configmap)
    data = _configmap_data(volume, name, configmap)
    return _key_payload(
        volume,
        data,
        src.get("items"),
        default_mode,
        optional,
        "configmap references non-existent config key",
    )


def _secret_payload(
    pod: Pod,
    volume: str,
    src: Mapping[str, Any],
    sources: SyncSourceReader,
    default_mode: int,
    name_field: str,
) -> dict[str, FileSpec]:
    name = src.get(name_field) or ""
    optional = bool(src.get("optional"))
    secret = _fetch(pod, volume, "secret", name, optional, sources.get_secret)
    data = _decode_secret(volume, name, secret)
    return _key_payload(
        volume,
        data,
        src.get("items"),
        default_mode,
        optional,
        "references non-existent secret key",
        secret=True,
    )


def _downward_payload(
    pod: Pod,
    volume: str,
    items: Iterable[Mapping[str, Any]] | None,
    default_mode: int,
    allocatable: Mapping[str, str] | None,
) -> dict[str, FileSpec]:
    payload: dict[str, FileSpec] = {}
    for item in items or ():
        path = check_path(volume, item.get("path") or "")
        mode = item.get("mode")
        mode = default_mode if mode is None else _check_mode(volume, mode, "mode")
        try:
            if item.get("fieldRef") is not None:
                field_path = (item["fieldRef"] or {}).get("fieldPath") or ""
                value = downward.volume_field_value(pod, field_path)
            elif item.get("resourceFieldRef") is not None:
                value = downward.resource_field_value(pod, item["resourceFieldRef"], allocatable)
            else:
                raise InvalidInput(f"item {path!r} has neither fieldRef nor resourceFieldRef")
        except InvalidInput as exc:
            # the kubelet's downwardAPI volume fails its SetUp (FailedMount) and retries
            raise VolumeMountError(volume, exc.message) from None
        payload[path] = FileSpec(value.encode(), mode)
    return payload


def _token_payload(
    pod: Pod, volume: str, src: Mapping[str, Any], default_mode: int, token: str | TokenFor | None
) -> dict[str, FileSpec]:
    path = check_path(volume, src.get("path") or "")
    if token is None:
        raise VolumeMountError(volume, "failed to fetch token: no token source configured")
    audience = src.get("audience") or ""
    expiration = int(src.get("expirationSeconds") or DEFAULT_TOKEN_EXPIRATION)
    value = token if isinstance(token, str) else token(audience, expiration)
    owner = volume_ownership(pod)
    mode = 0o600 if owner else default_mode
    return {path: FileSpec(value.encode(), mode, owner.uid, secret=True)}


def _check_conflicts(volume: str, payload: Mapping[str, FileSpec]) -> None:
    for path in payload:
        parent = posixpath.dirname(path)
        while parent:
            if parent in payload:
                raise InvalidInput(f'volume "{volume}": conflicting paths {parent!r} and {path!r}')
            parent = posixpath.dirname(parent)


def plan_volume(
    pod: Pod,
    volume: Mapping[str, Any],
    sources: SyncSourceReader,
    *,
    token: str | TokenFor | None = None,
    allocatable: Mapping[str, str] | None = None,
) -> dict[str, FileSpec]:
    """The files of one configMap/secret/downwardAPI/projected ``volume`` of ``pod``.

    Kubelet semantics: without ``items`` every key becomes a file; ``items`` map keys to paths;
    ``defaultMode`` (default 0644) and per-item ``mode`` set permission bits; a missing
    ``optional`` source gives an empty volume (or skips its items), a missing mandatory one
    raises :class:`VolumeMountError`. ``token`` supplies serviceAccountToken projections (one
    token for all, or a function of audience and lifetime); ``allocatable`` is the node's, the
    default for missing limits in ``resourceFieldRef`` files. Paths escaping the volume raise
    :class:`InvalidInput`.
    """
    name = str(volume.get("name") or "")
    kind = volume_kind(volume)
    src: Mapping[str, Any] = volume.get(kind) or {}
    default_mode = _check_mode(name, src.get("defaultMode"), "defaultMode")
    payload: dict[str, FileSpec]
    match kind:
        case "configMap":
            payload = _configmap_payload(pod, name, src, sources, default_mode)
        case "secret":
            payload = _secret_payload(pod, name, src, sources, default_mode, "secretName")
        case "downwardAPI":
            payload = _downward_payload(pod, name, src.get("items"), default_mode, allocatable)
        case "projected":
            payload = {}
            errors: list[str] = []
            for source in src.get("sources") or ():
                try:
                    if source.get("configMap") is not None:
                        part = _configmap_payload(
                            pod, name, source["configMap"], sources, default_mode
                        )
                    elif source.get("secret") is not None:
                        part = _secret_payload(
                            pod, name, source["secret"], sources, default_mode, "name"
                        )
                    elif source.get("downwardAPI") is not None:
                        part = _downward_payload(
                            pod,
                            name,
                            (source["downwardAPI"] or {}).get("items"),
                            default_mode,
                            allocatable,
                        )
                    elif source.get("serviceAccountToken") is not None:
                        part = _token_payload(
                            pod, name, source["serviceAccountToken"], default_mode, token
                        )
                    else:
                        raise InvalidInput(
                            f'volume "{name}": unsupported projected source {sorted(source)}'
                        )
                except VolumeMountError as exc:
                    errors.append(exc.detail)
                    continue
                payload.update(part)
            if errors:
                detail = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
                raise VolumeMountError(name, detail)
        case _:
            raise InvalidInput(f'volume "{name}": {kind or "empty"} volumes have no planned files')
    _check_conflicts(name, payload)
    return payload


__all__ = [
    "ATOMIC_KINDS",
    "DEFAULT_MODE",
    "DEFAULT_TOKEN_EXPIRATION",
    "FileSpec",
    "Ownership",
    "SourceSnapshot",
    "SyncSourceReader",
    "TokenFor",
    "VolumeMountError",
    "check_path",
    "plan_volume",
    "volume_kind",
    "volume_ownership",
]
