"""Config sources: env from ConfigMaps and Secrets, then the final ``$(VAR)`` expansion.

Pure core first — :func:`resolve_env` computes one container's environment exactly as the
kubelet's ``makeEnvironmentVariables`` does:

1. ``envFrom`` sources in order (ConfigMap ``data`` or Secret ``data``, each key with the
   source's ``prefix``); keys that are not valid variable names are skipped and reported
   (the kubelet's ``InvalidEnvironmentVariableNames`` event); a later source overrides an
   earlier one;
2. ``env`` entries in order, overriding ``envFrom``: a literal ``value`` is expanded against
   the variables defined so far and then the service-link variables; a ``configMapKeyRef`` or
   ``secretKeyRef`` is looked up (values from sources are never expanded); an ``optional``
   reference to a missing source or key leaves the variable unset;
3. the remaining service-link variables are added, and ``command``/``args`` are expanded
   against the final environment.

A missing mandatory source or key raises :class:`ConfigError` with the kubelet's message
(``configmap "x" not found``, ``couldn't find key k in Secret ns/x`` …). Sources are read
through a :class:`SourceReader` — a synchronous cache: :class:`StaticSources` here, a
watch-fed one in :mod:`vkcompose.middlewares.config_sources_watch`.

>>> sources = StaticSources([{"kind": "ConfigMap", "metadata": {"namespace": "default",
...     "name": "special-config"}, "data": {"special.how": "very"}}])
>>> pod = {"metadata": {"namespace": "default"}, "spec": {"containers": [{"name": "c",
...     "command": ["echo", "$(SPECIAL_LEVEL_KEY)"],
...     "env": [{"name": "SPECIAL_LEVEL_KEY", "valueFrom": {"configMapKeyRef": {
...         "name": "special-config", "key": "special.how"}}}]}]}}
>>> resolved = resolve_env(pod, pod["spec"]["containers"][0], sources)
>>> resolved.as_dict(), resolved.command
({'SPECIAL_LEVEL_KEY': 'very'}, ['echo', 'very'])

Secret values never appear in exceptions, events or reprs (:class:`ResolvedEnv` shows names
only, and reports which variables carry secret data in ``secret_names``).

The :class:`ResolveConfigSources` middleware applies this to every container of the pods of
CreatePod/UpdatePod. It must sit *inside* (after) :class:`~vkcompose.middlewares.downward_api.
DownwardAPI` and :class:`~vkcompose.middlewares.service_links.ServiceLinks`, because the
expansion it performs needs their values.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

import attrs

from vkcompose.errors import InvalidInput
from vkcompose.middlewares.events import EventSink
from vkcompose.middlewares.pod_ops import with_pod
from vkcompose.middlewares.secret_report import SECRET_REPORT, SecretReport
from vkcompose.middlewares.service_links import LinkBlock, link_block
from vkcompose.ops import CreatePod, Op, UpdatePod
from vkcompose.pipeline import Handler
from vkcompose.podspec import JSON, Pod
from vkcompose.podspec.expansion import escape, expand

CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
CONFIG_ERROR = "CreateContainerConfigError"
"""The container waiting reason for a missing mandatory source or key."""
INVALID_NAMES_REASON = "InvalidEnvironmentVariableNames"
"""The event reason for ``envFrom`` keys skipped because they are not valid names."""

_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


class ConfigError(ValueError):
    """A mandatory ConfigMap/Secret or key is missing, or an env entry cannot be resolved.

    The message is the kubelet's (it becomes the container's waiting message) and never holds
    a secret value.
    """


def is_env_var_name(name: str) -> bool:
    """Whether ``name`` is a valid env var name (classic rule ``[-._a-zA-Z][-._a-zA-Z0-9]*``)."""
    return _ENV_NAME.match(name) is not None


# --- reading sources ---------------------------------------------------------------------


@runtime_checkable
class SourceReader(Protocol):
    """Reads ConfigMaps and Secrets from a local cache (synchronous; ``None`` = not found)."""

    def get_configmap(self, namespace: str, name: str) -> JSON | None:
        """The ConfigMap JSON, or ``None`` when it does not exist."""

    def get_secret(self, namespace: str, name: str) -> JSON | None:
        """The Secret JSON (``data`` base64-encoded as the API sends it), or ``None``."""


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or "default"), str(meta.get("name") or ""))


class StaticSources:
    """A :class:`SourceReader` over objects held in memory (tests, fixed configurations).

    Objects are ConfigMap/Secret JSON dicts told apart by ``kind``; Secrets may use
    ``stringData`` (plain strings) instead of base64 ``data``. :meth:`put` and :meth:`delete`
    change the content later.
    """

    def __init__(self, objects: Iterable[Mapping[str, Any]] = ()) -> None:
        self._configmaps: dict[tuple[str, str], JSON] = {}
        self._secrets: dict[tuple[str, str], JSON] = {}
        for obj in objects:
            self.put(obj)

    def put(self, obj: Mapping[str, Any]) -> None:
        """Add or replace a ConfigMap or Secret."""
        kind = obj.get("kind")
        if kind == "ConfigMap":
            self._configmaps[_key(obj)] = dict(obj)
        elif kind == "Secret":
            self._secrets[_key(obj)] = dict(obj)
        else:
            raise ValueError(f"StaticSources holds ConfigMaps and Secrets, not {kind!r}")

    def delete(self, kind: str, namespace: str, name: str) -> None:
        """Remove an object (no error if absent)."""
        table = self._configmaps if kind == "ConfigMap" else self._secrets
        table.pop((namespace, name), None)

    def get_configmap(self, namespace: str, name: str) -> JSON | None:
        """The ConfigMap, or ``None``."""
        return self._configmaps.get((namespace, name))

    def get_secret(self, namespace: str, name: str) -> JSON | None:
        """The Secret, or ``None``."""
        return self._secrets.get((namespace, name))

    def __repr__(self) -> str:
        return f"StaticSources(configmaps={len(self._configmaps)}, secrets={len(self._secrets)})"


def secret_values(secret: Mapping[str, Any], namespace: str, name: str) -> dict[str, str]:
    """A Secret's decoded values (``data`` base64-decoded, overlaid by ``stringData``).

    Bytes that are not UTF-8 are replaced by U+FFFD. Errors never show the data.
    """
    out: dict[str, str] = {}
    for key, encoded in (secret.get("data") or {}).items():
        try:
            raw = base64.b64decode(str(encoded), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(
                f"invalid base64 data for key {key} in Secret {namespace}/{name}"
            ) from None
        out[key] = raw.decode("utf-8", errors="replace")
    for key, value in (secret.get("stringData") or {}).items():
        out[key] = str(value)
    return out


class _Data:
    """One source's values as strings, and its ``envFrom`` expansions per (prefix, strictness).

    Kept per pod, and across pods (see :class:`_SourceCache`) while the reader returns the very
    same object with the same ``resourceVersion``.
    """

    __slots__ = ("expansions", "obj", "rv", "values")

    def __init__(self, obj: JSON, rv: object, values: dict[str, str]) -> None:
        self.obj = obj
        self.rv = rv
        self.values = values
        self.expansions: dict[tuple[str, bool], tuple[dict[str, str], tuple[str, ...]]] = {}

    def expansion(self, prefix: str, strict: bool) -> tuple[dict[str, str], tuple[str, ...]]:
        """``envFrom`` variables with ``prefix`` and the (sorted) invalid names skipped."""
        hit = self.expansions.get((prefix, strict))
        if hit is not None:
            return hit
        valid: dict[str, str] = {}
        invalid: list[str] = []
        for key, value in self.values.items():
            name = prefix + key
            if strict and not is_env_var_name(name):
                invalid.append(name)
            else:
                valid[name] = value
        result = (valid, tuple(sorted(invalid)))
        self.expansions[(prefix, strict)] = result
        return result


class _SourceCache:
    """Converted ConfigMap/Secret data reused across pods.

    An entry is reused only while the reader hands out the very same object carrying the same
    (non-empty) ``metadata.resourceVersion``; objects without one are converted per pod.
    """

    LIMIT = 4096

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str, str], _Data] = {}
        self.bases = _BaseCache()

    def get(self, kind: str, namespace: str, name: str, obj: JSON) -> _Data | None:
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if not rv:
            return None
        hit = self.entries.get((kind, namespace, name))
        if hit is not None and hit.obj is obj and hit.rv == rv:
            return hit
        return None

    def put(self, kind: str, namespace: str, name: str, data: _Data) -> None:
        if not data.rv:
            return
        if len(self.entries) >= self.LIMIT:
            self.entries.clear()
        self.entries[(kind, namespace, name)] = data


class _Sources:
    """Per-pod lookups with the kubelet's caching and error messages."""

    def __init__(
        self, reader: SourceReader, namespace: str, cache: _SourceCache | None = None
    ) -> None:
        self.reader = reader
        self.namespace = namespace
        self.cache = cache
        self.configmaps: dict[str, _Data | None] = {}
        self.secrets: dict[str, _Data | None] = {}

    def get_configmap(self, namespace: str, name: str) -> JSON | None:
        return self.reader.get_configmap(namespace, name)

    def get_secret(self, namespace: str, name: str) -> JSON | None:
        return self.reader.get_secret(namespace, name)

    def _convert(self, kind: str, name: str, obj: JSON) -> _Data:
        cache = self.cache
        if cache is not None:
            hit = cache.get(kind, self.namespace, name, obj)
            if hit is not None:
                return hit
        if kind == "ConfigMap":
            values = {k: str(v) for k, v in (obj.get("data") or {}).items()}
        else:
            values = secret_values(obj, self.namespace, name)
        data = _Data(obj, (obj.get("metadata") or {}).get("resourceVersion"), values)
        if cache is not None:
            cache.put(kind, self.namespace, name, data)
        return data

    def configmap_data(self, name: str, optional: bool) -> _Data | None:
        if name not in self.configmaps:
            obj = self.reader.get_configmap(self.namespace, name)
            self.configmaps[name] = None if obj is None else self._convert("ConfigMap", name, obj)
        data = self.configmaps[name]
        if data is None and not optional:
            raise ConfigError(f'configmap "{name}" not found')
        return data

    def secret_data(self, name: str, optional: bool) -> _Data | None:
        if name not in self.secrets:
            obj = self.reader.get_secret(self.namespace, name)
            self.secrets[name] = None if obj is None else self._convert("Secret", name, obj)
        data = self.secrets[name]
        if data is None and not optional:
            raise ConfigError(f'secret "{name}" not found')
        return data


# --- the pure core -------------------------------------------------------------------------


@attrs.frozen
class SkippedKeys:
    """``envFrom`` keys skipped because they are not valid env var names."""

    kind: str
    """``configMap`` or ``secret`` (as the kubelet's event message says)."""
    namespace: str
    name: str
    keys: tuple[str, ...]

    @property
    def message(self) -> str:
        """The kubelet's ``InvalidEnvironmentVariableNames`` event message."""
        return (
            f"Keys [{', '.join(self.keys)}] from the EnvFrom {self.kind} "
            f"{self.namespace}/{self.name} were skipped since they are considered invalid "
            "environment variable names."
        )


@attrs.frozen(repr=False)
class ResolvedEnv:
    """A container's resolved environment.

    ``env`` is a list of ``{"name", "value"}`` dicts (final values when expanded, pod-spec
    form otherwise); ``command``/``args`` are expanded copies (or ``None`` when absent);
    ``skipped`` lists invalid ``envFrom`` keys; ``secret_names`` the variables whose values
    hold Secret data (directly or through ``$(VAR)``).
    """

    env: list[dict[str, Any]]
    command: list[str] | None = None
    args: list[str] | None = None
    skipped: tuple[SkippedKeys, ...] = ()
    secret_names: frozenset[str] = frozenset()

    def as_dict(self) -> dict[str, str]:
        """The variables as a mapping (last entry of a name wins)."""
        return {e["name"]: e.get("value") or "" for e in self.env}

    def __repr__(self) -> str:
        names = ", ".join(e["name"] for e in self.env)
        return f"ResolvedEnv(names=[{names}], secret_names={sorted(self.secret_names)})"


def _is_downward(value_from: Mapping[str, Any]) -> bool:
    return value_from.get("fieldRef") is not None or value_from.get("resourceFieldRef") is not None


_Part = tuple[dict[str, str], bool]
"""One present ``envFrom`` source: its variables (prefixed, valid names) and whether it is a
Secret."""


def _env_from_parts(
    container: Mapping[str, Any],
    sources: _Sources,
    strict_names: bool,
    secret_prefixes: list[str],
) -> tuple[list[_Part], list[SkippedKeys], bool]:
    """The present ``envFrom`` sources in order, the invalid keys skipped, and whether every
    source came from the cross-pod cache (so that its variables are shared objects).

    The prefix of each ``secretRef`` is appended to ``secret_prefixes``.
    """
    parts: list[_Part] = []
    skipped: list[SkippedKeys] = []
    stable = True
    for source in container.get("envFrom") or ():
        ref = source.get("configMapRef")
        if ref is not None:
            kind, from_secret = "configMap", False
            data = sources.configmap_data(str(ref.get("name") or ""), bool(ref.get("optional")))
            prefix = str(source.get("prefix") or "")
        else:
            ref = source.get("secretRef")
            if ref is None:
                continue
            kind, from_secret = "secret", True
            data = sources.secret_data(str(ref.get("name") or ""), bool(ref.get("optional")))
            prefix = str(source.get("prefix") or "")
            secret_prefixes.append(prefix)
        if data is None:
            continue
        if not data.rv:
            stable = False
        valid, invalid = data.expansion(prefix, strict_names)
        parts.append((valid, from_secret))
        if invalid:
            skipped.append(
                SkippedKeys(kind, sources.namespace, str(ref.get("name") or ""), invalid)
            )
    return parts, skipped, stable


def _merge_env_from(parts: list[_Part]) -> tuple[dict[str, str], set[str]]:
    """The ``envFrom`` variables (a later source overrides an earlier one) and those holding
    Secret data."""
    values: dict[str, str] = {}
    secret: set[str] = set()
    for valid, from_secret in parts:
        values.update(valid)
        if from_secret:
            secret.update(valid)
        elif secret:
            secret.difference_update(valid)
    return values, secret


def _base(parts: list[_Part], block: LinkBlock | None) -> tuple[dict[str, Any], frozenset[str]]:
    """The output entries before the container's own ``env``: ``envFrom`` variables, then the
    service-link block (envFrom wins over it); and the names holding Secret data."""
    from_env_from, secret = _merge_env_from(parts)
    out: dict[str, Any] = {k: {"name": k, "value": v} for k, v in from_env_from.items()}
    if block is not None:
        if from_env_from and not block.names.isdisjoint(from_env_from):
            for link_name, link_entry in block.final.items():
                if link_name not in from_env_from:
                    out[link_name] = link_entry
        else:
            out.update(block.final)
    return out, frozenset(secret)


class _BaseCache:
    """:func:`_base` results reused across pods.

    Keyed by the identity of the inputs — the cached ``envFrom`` variable dicts of sources
    with a ``resourceVersion`` (replaced when the source changes) and the service-link block —
    which each entry keeps alive, so an ``id`` in a key cannot be reused by another object
    while the entry exists.
    """

    LIMIT = 1024

    def __init__(self) -> None:
        self.entries: dict[
            tuple[object, ...],
            tuple[tuple[object, ...], dict[str, Any], frozenset[str]],
        ] = {}

    def get(
        self, parts: list[_Part], block: LinkBlock | None
    ) -> tuple[dict[str, Any], frozenset[str]]:
        key: tuple[object, ...]
        if len(parts) == 1:
            ((valid, from_secret),) = parts
            key = (id(block), id(valid), from_secret)
        else:
            key = (id(block), *[(id(v), s) for v, s in parts])
        hit = self.entries.get(key)
        if hit is not None:
            return hit[1], hit[2]
        out, secret = _base(parts, block)
        if len(self.entries) >= self.LIMIT:
            self.entries.clear()
        self.entries[key] = ((block, *[v for v, _ in parts]), out, secret)
        return out, secret


class _Container:
    """One container's resolution, as :func:`_resolve_container` computes it.

    Besides what :class:`ResolvedEnv` reports: ``secret_keys`` (names of the ``secretKeyRef``
    entries resolved), ``secret_prefixes`` (of the ``envFrom`` ``secretRef`` sources) and
    ``secret_values`` (the values put into ``env`` that hold Secret data, as written there).
    """

    __slots__ = (
        "args",
        "command",
        "env",
        "secret",
        "secret_keys",
        "secret_prefixes",
        "secret_values",
        "skipped",
    )

    def __init__(
        self,
        env: list[dict[str, Any]],
        command: list[str] | None,
        args: list[str] | None,
        skipped: list[SkippedKeys],
        secret: set[str] | frozenset[str],
        secret_keys: list[str],
        secret_prefixes: list[str],
        secret_values: list[str],
    ) -> None:
        self.env = env
        self.command = command
        self.args = args
        self.skipped = skipped
        self.secret = secret
        self.secret_keys = secret_keys
        self.secret_prefixes = secret_prefixes
        self.secret_values = secret_values


_UNSEEN: Any = object()


def _from_source(
    value_from: Mapping[str, Any], sources: _Sources
) -> tuple[str | None, bool] | None:
    """Value of a configMapKeyRef/secretKeyRef ``valueFrom``: ``(value or None if unset,
    secret?)``. ``None`` when it has no such reference."""
    ref = value_from.get("configMapKeyRef")
    if ref is not None:
        from_secret = False
        name = str(ref.get("name") or "")
        data = sources.configmaps.get(name, _UNSEEN)  # (hot: the per-pod lookup, inlined)
        if data is _UNSEEN or data is None:
            data = sources.configmap_data(name, bool(ref.get("optional")))
    else:
        ref = value_from.get("secretKeyRef")
        if ref is None:
            return None
        from_secret = True
        name = str(ref.get("name") or "")
        data = sources.secrets.get(name, _UNSEEN)
        if data is _UNSEEN or data is None:
            data = sources.secret_data(name, bool(ref.get("optional")))
    if data is None:
        return None, from_secret
    key = str(ref.get("key"))
    value = data.values.get(key)
    if value is None:
        if ref.get("optional"):
            return None, from_secret
        kind = "Secret" if from_secret else "ConfigMap"
        raise ConfigError(f"couldn't find key {key} in {kind} {sources.namespace}/{name}")
    return value, from_secret


def resolve_env(
    pod: Pod,
    container: Mapping[str, Any],
    sources: SourceReader,
    *,
    service_env: Mapping[str, str] | None = None,
    expand_vars: bool = True,
    strict_names: bool = True,
) -> ResolvedEnv:
    """Resolve ``container``'s environment the kubelet's way (see the module docs).

    * ``service_env`` — service-link variables (:func:`~vkcompose.middlewares.service_links.
      service_env`); they are referable by ``$(VAR)`` and added unless overridden.
    * ``expand_vars=False`` keeps the pod-spec form instead: ``envFrom`` and source references
      become literal (escaped) entries, other entries (literal values, downward API
      references) stay as they are, and nothing is expanded — for pods that a real kubelet
      will run later.
    * ``strict_names=False`` keeps every ``envFrom`` key (Kubernetes ≥ 1.30 with relaxed
      env var name validation) instead of skipping invalid names.
    """
    namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
    reader = (
        sources
        if isinstance(sources, _Sources) and sources.namespace == namespace
        else _Sources(sources, namespace)
    )
    got = _resolve_container(
        container,
        reader,
        services=dict(service_env or {}),
        expand_vars=expand_vars,
        strict_names=strict_names,
        bases=None,
    )
    return ResolvedEnv(
        env=got.env,
        command=got.command,
        args=got.args,
        skipped=tuple(got.skipped),
        secret_names=frozenset(got.secret),
    )


def _resolve_container(
    container: Mapping[str, Any],
    reader: _Sources,
    *,
    services: Mapping[str, str],
    expand_vars: bool,
    strict_names: bool,
    bases: _BaseCache | None,
) -> _Container:
    """:func:`resolve_env` for one container; ``bases`` reuses the ``envFrom`` + service-link
    part of the result across pods."""
    secret_prefixes: list[str] = []
    secret_keys: list[str] = []
    parts, skipped, stable = _env_from_parts(container, reader, strict_names, secret_prefixes)

    if not expand_vars:
        from_env_from, secret = _merge_env_from(parts)
        # every value taken from a Secret, even one a later entry overrides: in pod-spec form
        # the overridden entry stays in ``env``
        secret_values = [
            escape(value) for valid, from_secret in parts if from_secret for value in valid.values()
        ]
        entries: list[dict[str, Any]] = [
            {"name": k, "value": escape(v)} for k, v in services.items()
        ]
        env_entries: Any = container.get("env") or ()
        block = link_block(env_entries)
        if block is not None:  # service links stay below envFrom
            entries += block.entries
            env_entries = env_entries[len(block.entries) :]
        entries += [{"name": k, "value": escape(v)} for k, v in from_env_from.items()]
        for entry in env_entries:
            resolved = (
                None if entry.get("value") else _from_source(entry.get("valueFrom") or {}, reader)
            )
            if resolved is None:
                entries.append(entry)
                secret.discard(entry["name"])
                continue
            if resolved[1]:
                secret_keys.append(entry["name"])
            if resolved[0] is not None:
                escaped = escape(resolved[0])
                entries.append({"name": entry["name"], "value": escaped})
                if resolved[1]:
                    secret.add(entry["name"])
                    secret_values.append(escaped)
                else:
                    secret.discard(entry["name"])
        command, args = container.get("command"), container.get("args")
        return _Container(
            entries,
            None if command is None else list(command),
            None if args is None else list(args),
            skipped,
            secret,
            secret_keys,
            secret_prefixes,
            secret_values,
        )

    env: Any = container.get("env") or ()
    block = link_block(env)
    if block is not None:
        # the service-link entries ServiceLinks prepended, in one step: the lowest priority
        # (envFrom wins over them), referable by $(VAR), overridden by the env entries below
        env = env[len(block.entries) :]
    # name -> output entry; literal entries without ``$`` are passed through as they are
    out: dict[str, Any]
    base_secret: frozenset[str]
    if not parts:
        out = {} if block is None else dict(block.final)
        base_secret = frozenset()
    elif bases is not None and stable:
        shared, base_secret = bases.get(parts, block)
        out = dict(shared)
    else:
        out, base_secret = _base(parts, block)
    secret_set: set[str] = set(base_secret)
    out_get = out.get
    referenced: list[str] = []

    def lookup(name: str) -> str | None:
        found = out_get(name)
        if found is not None:
            referenced.append(name)
            value: str = found["value"]
            return value
        return services.get(name)

    for entry in env:
        name = entry["name"]
        literal = entry.get("value")
        if literal:
            if "$" not in literal:  # the common case (service links, plain values): no expansion
                out[name] = entry if len(entry) == 2 else {"name": name, "value": literal}
                if secret_set:
                    secret_set.discard(name)
                continue
            referenced.clear()
            out[name] = {"name": name, "value": expand(literal, lookup)}
            if referenced and not secret_set.isdisjoint(referenced):
                secret_set.add(name)
            else:
                secret_set.discard(name)
            continue
        value_from = entry.get("valueFrom")
        if not value_from:
            out[name] = {"name": name, "value": ""}
            secret_set.discard(name)
            continue
        resolved = _from_source(value_from, reader)
        if resolved is None:
            cname = str(container.get("name") or "")
            if _is_downward(value_from):
                raise ConfigError(
                    f'container "{cname}": env {name}: its fieldRef/resourceFieldRef is not '
                    "resolved (place the DownwardAPI middleware before ResolveConfigSources)"
                )
            raise ConfigError(f'container "{cname}": env {name}: unsupported valueFrom')
        value, from_secret = resolved
        if from_secret:
            secret_keys.append(name)
        if value is None:
            continue  # optional and missing: the variable stays unset
        out[name] = {"name": name, "value": value}
        if from_secret:
            secret_set.add(name)
        else:
            secret_set.discard(name)

    for name, value in services.items():
        if name not in out:
            out[name] = {"name": name, "value": value}

    def final(name: str) -> str | None:
        found = out_get(name)
        return None if found is None else found["value"]

    held: list[str] = []  # the values holding Secret data, as they end up in ``env``
    for name in secret_set:
        found = out_get(name)
        if found is not None and found["value"]:
            held.append(found["value"])
    command, args = container.get("command"), container.get("args")
    return _Container(
        list(out.values()),
        None if command is None else _expand_words(command, final),
        None if args is None else _expand_words(args, final),
        skipped,
        secret_set,
        secret_keys,
        secret_prefixes,
        held,
    )


def _expand_words(words: Any, final: Callable[[str], str | None]) -> list[str]:
    """An expanded copy of ``command`` or ``args``."""
    out = list(words)
    for i, word in enumerate(out):
        if "$" in word:
            out[i] = expand(word, final)
    return out


def _needs_work(container: Mapping[str, Any], expand_vars: bool, has_services: bool) -> bool:
    if container.get("envFrom"):
        return True
    env: Any = container.get("env") or ()
    block = link_block(env)
    if block is not None:  # prepended service links: no references, literal values
        env = env[len(block.entries) :]
    for entry in env:
        if entry.get("valueFrom") and not entry.get("value"):
            return True
    if not expand_vars:
        return has_services
    if has_services:
        return True
    if block is not None and (
        block.escaped or not block.names.isdisjoint([entry["name"] for entry in env])
    ):
        return True
    if any("$" in (entry.get("value") or "") for entry in env):
        return True
    if len({entry["name"] for entry in env}) != len(env):
        return True
    words = [*(container.get("command") or ()), *(container.get("args") or ())]
    return any("$" in w for w in words)


@attrs.frozen(repr=False)
class ResolvedPod:
    """The result of :func:`resolve_pod`: the rewritten pod and what each container reported."""

    pod: Pod
    skipped: tuple[SkippedKeys, ...] = ()
    secret_names: Mapping[str, frozenset[str]] = attrs.field(factory=dict)
    """Container name → names of its variables holding Secret data."""

    def __repr__(self) -> str:
        return f"ResolvedPod(skipped={len(self.skipped)}, secret_names={dict(self.secret_names)})"


def resolve_pod(
    pod: Pod,
    sources: SourceReader,
    *,
    service_env: Mapping[str, str] | None = None,
    expand_vars: bool = True,
    strict_names: bool = True,
) -> ResolvedPod:
    """A copy of ``pod`` whose containers carry resolved ``env`` (and expanded command/args).

    ``envFrom`` is removed from rewritten containers; containers needing no change are shared
    with the input, which is never modified. Raises :class:`ConfigError` like
    :func:`resolve_env`.
    """
    got = _resolve_pod(
        pod,
        sources,
        service_env=service_env,
        expand_vars=expand_vars,
        strict_names=strict_names,
        cache=None,
    )
    return ResolvedPod(got.pod, tuple(got.skipped), got.secret_names)


class _PodResolution:
    """What :func:`_resolve_pod` found: the pod, the skipped keys, the secret var names per
    container, and for the redaction learner the Secret references resolved (per container
    name) and the values holding Secret data."""

    __slots__ = ("pod", "refs", "secret_names", "skipped", "values")

    def __init__(
        self,
        pod: Pod,
        skipped: list[SkippedKeys],
        secret_names: dict[str, frozenset[str]],
        refs: dict[str, tuple[frozenset[str], tuple[str, ...]]],
        values: list[str],
    ) -> None:
        self.pod = pod
        self.skipped = skipped
        self.secret_names = secret_names
        self.refs = refs
        self.values = values


def _resolve_pod(
    pod: Pod,
    sources: SourceReader,
    *,
    service_env: Mapping[str, str] | None,
    expand_vars: bool,
    strict_names: bool,
    cache: _SourceCache | None,
    names: bool = True,
) -> _PodResolution:
    """:func:`resolve_pod`; ``names=False`` leaves ``secret_names`` empty (the middleware
    reports Secret data through the report's values instead)."""
    spec = pod.get("spec") or {}
    new_spec: dict[str, Any] | None = None
    skipped: list[SkippedKeys] = []
    secret_names: dict[str, frozenset[str]] = {}
    refs: dict[str, tuple[frozenset[str], tuple[str, ...]]] = {}
    values: list[str] = []
    services = dict(service_env or {})
    has_services = bool(services)
    namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
    reader = _Sources(sources, namespace, cache)  # one snapshot of each source per pod
    bases = cache.bases if cache is not None else None
    for key in CONTAINER_LISTS:
        containers = spec.get(key)
        if not containers:
            continue
        new_list: list[Any] = []
        changed = False
        for c in containers:
            if not _needs_work(c, expand_vars, has_services):
                new_list.append(c)
                continue
            got = _resolve_container(
                c,
                reader,
                services=services,
                expand_vars=expand_vars,
                strict_names=strict_names,
                bases=bases,
            )
            new_c = dict(c)
            new_c.pop("envFrom", None)
            new_c["env"] = got.env
            if got.command is not None:
                new_c["command"] = got.command
            if got.args is not None:
                new_c["args"] = got.args
            new_list.append(new_c)
            changed = True
            if got.skipped:
                skipped.extend(got.skipped)
            if got.secret and names:
                secret_names[str(c.get("name") or "")] = frozenset(got.secret)
            if got.secret_keys or got.secret_prefixes:
                cname = str(c.get("name") or "")
                seen = refs.get(cname)
                if seen is None:
                    refs[cname] = (frozenset(got.secret_keys), tuple(got.secret_prefixes))
                else:  # (names are unique in a valid pod; be safe anyway)
                    refs[cname] = (
                        seen[0].union(got.secret_keys),
                        (*seen[1], *got.secret_prefixes),
                    )
            if got.secret_values:
                values.extend(got.secret_values)
        if changed:
            new_spec = new_spec if new_spec is not None else dict(spec)
            new_spec[key] = new_list
    new_pod = pod if new_spec is None else {**pod, "spec": new_spec}
    return _PodResolution(new_pod, skipped, secret_names, refs, values)


# --- the middleware ------------------------------------------------------------------------


class ResolveConfigSources:
    """Resolve ConfigMap/Secret env, ``envFrom`` and ``$(VAR)`` for CreatePod/UpdatePod.

    * A missing mandatory source or key fails the op with
      :class:`~vkcompose.errors.InvalidInput` (reason ``CreateContainerConfigError``, the
      kubelet's message) before the backend is called; the pod controller shows it as the
      container's waiting reason and retries, so creating the source later lets the pod start.
    * Skipped ``envFrom`` keys are reported as ``InvalidEnvironmentVariableNames`` warning
      events through ``events`` when given.
    * ``expand_vars`` and ``strict_names`` as in :func:`resolve_env`.
    * While the rest of the pipeline handles the op, the env values holding Secret data are
      published as a :class:`~vkcompose.middlewares.secret_report.SecretReport` for
      :class:`~vkcompose.middlewares.redaction.LearnSecrets`.

    Converted source data (decoded Secrets, ``envFrom`` expansions, the merged ``envFrom`` and
    service-link variables) is reused across pods while the reader returns the same object
    with the same ``resourceVersion``.
    """

    def __init__(
        self,
        sources: SourceReader,
        events: EventSink | None = None,
        *,
        expand_vars: bool = True,
        strict_names: bool = True,
    ) -> None:
        self.sources = sources
        self.events = events
        self.expand_vars = expand_vars
        self.strict_names = strict_names
        self._cache = _SourceCache()

    async def __call__(self, op: Op, call_next: Handler, /) -> Any:
        match op:
            case CreatePod() | UpdatePod():
                try:
                    resolved = _resolve_pod(
                        op.pod,
                        self.sources,
                        service_env=None,
                        expand_vars=self.expand_vars,
                        strict_names=self.strict_names,
                        cache=self._cache,
                        names=False,
                    )
                except ConfigError as e:
                    raise InvalidInput(str(e), reason=CONFIG_ERROR) from None
                if self.events is not None:
                    for skip in resolved.skipped:
                        self.events.emit(
                            op.pod,
                            type="Warning",
                            reason=INVALID_NAMES_REASON,
                            message=skip.message,
                        )
                source = op.pod
                if resolved.pod is not source:
                    op = with_pod(op, resolved.pod)
                token = SECRET_REPORT.set(
                    SecretReport(resolved.pod, resolved.refs, tuple(resolved.values), source)
                )
                try:
                    return await call_next(op)
                finally:
                    SECRET_REPORT.reset(token)
            case _:
                return await call_next(op)


__all__ = [
    "CONFIG_ERROR",
    "INVALID_NAMES_REASON",
    "ConfigError",
    "ResolveConfigSources",
    "ResolvedEnv",
    "ResolvedPod",
    "SkippedKeys",
    "SourceReader",
    "StaticSources",
    "is_env_var_name",
    "resolve_env",
    "resolve_pod",
    "secret_values",
]
