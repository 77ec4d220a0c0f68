"""Service links: the ``<SVC>_SERVICE_HOST`` family of env vars the kubelet injects.

Pure core first:

* :func:`service_env` — the variables for a pod in ``namespace`` given the cluster's services
  (``<SVC>_SERVICE_HOST``, ``<SVC>_SERVICE_PORT``, ``<SVC>_SERVICE_PORT_<NAME>`` and the
  Docker-link family ``<SVC>_PORT``, ``<SVC>_PORT_<port>_<PROTO>`` with ``_PROTO``, ``_PORT``,
  ``_ADDR``). Services without a cluster IP (headless, ExternalName) are skipped; the
  ``kubernetes`` service of the ``default`` namespace is always included, other services of the
  pod's namespace only when ``enableServiceLinks`` is true (the default).
* :func:`add_service_links` — rewrite a pod so every container carries those variables as
  leading ``env`` entries: explicit ``env``/``envFrom`` still win and ``$(VAR)`` references to
  them still resolve, exactly as with the kubelet.

>>> svc = {"metadata": {"name": "redis-primary", "namespace": "default"},
...        "spec": {"clusterIP": "10.0.0.11", "ports": [{"name": "redis", "port": 6379}]}}
>>> env = service_env([svc], "default")
>>> env["REDIS_PRIMARY_SERVICE_HOST"], env["REDIS_PRIMARY_PORT"]
('10.0.0.11', 'tcp://10.0.0.11:6379')

Then the :class:`ServiceLinks` middleware, reading services through a :class:`ServiceReader`
(:class:`StaticServices` here; a watch-fed cache lives in
:mod:`vkcompose.middlewares.config_sources_watch`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from vkcompose.middlewares.pod_ops import with_pod
from vkcompose.middlewares.secret_report import REFS_KEPT
from vkcompose.ops import CreatePod, Op, UpdatePod
from vkcompose.pipeline import Handler
from vkcompose.podspec import JSON, Pod
from vkcompose.podspec.expansion import escape

MASTER_SERVICES = frozenset({"kubernetes"})
"""Services of the ``default`` namespace every pod sees, whatever ``enableServiceLinks`` says."""

CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


def env_name(name: str) -> str:
    """A service or port name as an env var name part (``my-svc`` → ``MY_SVC``)."""
    return name.replace("-", "_").upper()


def _cluster_ip_set(service: Mapping[str, Any]) -> bool:
    ip = (service.get("spec") or {}).get("clusterIP") or ""
    return ip not in ("", "None")


def _host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def variables_for(service: Mapping[str, Any]) -> dict[str, str]:
    """The env vars one service with a cluster IP contributes (the kubelet's FromServices)."""
    spec = service.get("spec") or {}
    ip = str(spec.get("clusterIP") or "")
    ports: list[Mapping[str, Any]] = list(spec.get("ports") or ())
    prefix = env_name(str((service.get("metadata") or {}).get("name") or ""))
    out = {f"{prefix}_SERVICE_HOST": ip}
    if ports:
        out[f"{prefix}_SERVICE_PORT"] = str(int(ports[0].get("port") or 0))
    for port in ports:
        if port.get("name"):
            out[f"{prefix}_SERVICE_PORT_{env_name(str(port['name']))}"] = str(int(port["port"]))
    for i, port in enumerate(ports):
        number = int(port.get("port") or 0)
        protocol = str(port.get("protocol") or "TCP")
        url = f"{protocol.lower()}://{_host_port(ip, number)}"
        if i == 0:
            out[f"{prefix}_PORT"] = url
        port_prefix = f"{prefix}_PORT_{number}_{protocol.upper()}"
        out[port_prefix] = url
        out[f"{port_prefix}_PROTO"] = protocol.lower()
        out[f"{port_prefix}_PORT"] = str(number)
        out[f"{port_prefix}_ADDR"] = ip
    return out


def service_env(
    services: Iterable[Mapping[str, Any]],
    namespace: str,
    *,
    enable_service_links: bool = True,
) -> dict[str, str]:
    """The service-link variables a pod in ``namespace`` sees (kubelet's getServiceEnvVarMap).

    ``services`` may hold services of any namespace; only the pod's own (when
    ``enable_service_links``) and the ``default/kubernetes`` service count. A service of the
    pod's namespace shadows a master service of the same name. Services are applied in name
    order, so the result is deterministic.
    """
    chosen: dict[str, Mapping[str, Any]] = {}
    local: dict[str, Mapping[str, Any]] = {}
    for service in services:
        if not _cluster_ip_set(service):
            continue
        meta = service.get("metadata") or {}
        name = str(meta.get("name") or "")
        ns = meta.get("namespace") or ""
        if ns == "default" and name in MASTER_SERVICES:
            chosen.setdefault(name, service)
        if ns == namespace and enable_service_links:
            local[name] = service
    chosen.update(local)
    env: dict[str, str] = {}
    for name in sorted(chosen):
        env.update(variables_for(chosen[name]))
    return env


def add_service_links(pod: Pod, env: Mapping[str, str]) -> Pod:
    """A copy of ``pod`` whose containers start their ``env`` with the service variables.

    Values are escaped (``$`` → ``$$``), so the rewritten pod means exactly what the original
    meant with service links injected: later ``env``/``envFrom`` entries override them and may
    refer to them with ``$(VAR)``. The input pod is not modified.
    """
    return _prepend(pod, link_entries(env))


def link_entries(env: Mapping[str, str]) -> list[dict[str, str]]:
    """The service variables as escaped ``env`` entries (what :func:`add_service_links` adds).

    The list is remembered as a :class:`LinkBlock`, so that
    :func:`~vkcompose.middlewares.config_sources.resolve_env` recognizes it at the head of a
    container's ``env`` (see :func:`link_block`) and handles it in one step. The entries must
    not be modified.
    """
    entries = [{"name": k, "value": escape(v)} for k, v in env.items()]
    if entries:
        _register(LinkBlock(entries, dict(env)))
    return entries


class LinkBlock:
    """A list of service-link ``env`` entries made by :func:`link_entries`.

    ``entries`` are the escaped entries, ``values`` the unescaped values by name, ``final``
    the entries as they read after ``$(VAR)`` expansion (the same dicts where escaping changed
    nothing), ``names`` the variable names and ``escaped`` whether any value holds a ``$``.
    """

    __slots__ = ("entries", "escaped", "final", "names", "values")

    def __init__(self, entries: list[dict[str, str]], values: dict[str, str]) -> None:
        self.entries = entries
        self.values = values
        self.names = frozenset(values)
        self.escaped = any("$" in v for v in values.values())
        self.final = {
            e["name"]: e if "$" not in e["value"] else {"name": e["name"], "value": values[k]}
            for e, k in zip(entries, values, strict=True)
        }


_BLOCKS: dict[int, LinkBlock] = {}
"""``id`` of a block's first entry → the block (the block keeps the entry, so ids stay valid)."""
_BLOCKS_LIMIT = 4096


def _register(block: LinkBlock) -> None:
    key = id(block.entries[0])
    if _BLOCKS.get(key) is block:
        return
    if len(_BLOCKS) >= _BLOCKS_LIMIT:
        del _BLOCKS[next(iter(_BLOCKS))]  # the oldest
    _BLOCKS[key] = block


def link_block(env: Sequence[Any]) -> LinkBlock | None:
    """The :class:`LinkBlock` ``env`` starts with (as :func:`add_service_links` made it), if any."""
    if not env or type(env) is not list:
        return None
    block = _BLOCKS.get(id(env[0]))
    if block is None or block.entries[0] is not env[0]:
        return None
    n = len(block.entries)
    # list equality checks identity first: a C-speed walk when the entries are the block's own
    if len(env) < n or env[:n] != block.entries:
        return None
    return block


def _prepend(pod: Pod, links: list[dict[str, str]]) -> Pod:
    if not links:
        return pod
    spec = dict(pod.get("spec") or {})
    for key in CONTAINER_LISTS:
        containers = spec.get(key)
        if containers:
            spec[key] = [{**c, "env": [*links, *(c.get("env") or ())]} for c in containers]
    return {**pod, "spec": spec}


def links_enabled(pod: Pod) -> bool:
    """``spec.enableServiceLinks`` (true when absent)."""
    value = (pod.get("spec") or {}).get("enableServiceLinks")
    return True if value is None else bool(value)


@runtime_checkable
class ServiceReader(Protocol):
    """Reads Services from a local cache (synchronous, no I/O per call)."""

    def list_services(self, namespace: str) -> list[JSON]:
        """The Services of ``namespace`` as JSON dicts."""


class StaticServices:
    """A :class:`ServiceReader` over a fixed list of Service dicts (tests, simple setups).

    Replace the list with :meth:`set`; its ``generation`` then changes, which lets
    :class:`ServiceLinks` reuse computed variables in between.
    """

    def __init__(self, services: Iterable[Mapping[str, Any]] = ()) -> None:
        self._services: tuple[JSON, ...] = ()
        self.generation = 0
        self.set(services)

    def set(self, services: Iterable[Mapping[str, Any]]) -> None:
        """Replace the services."""
        self._services = tuple(dict(s) for s in services)
        self.generation += 1

    def list_services(self, namespace: str) -> list[JSON]:
        """The services whose ``metadata.namespace`` is ``namespace``."""
        return [
            s
            for s in self._services
            if ((s.get("metadata") or {}).get("namespace") or "") == namespace
        ]


def services_for_pod(reader: ServiceReader, pod: Pod) -> list[JSON]:
    """The services relevant to ``pod``: its namespace's (if links are enabled) and masters."""
    namespace = (pod.get("metadata") or {}).get("namespace") or "default"
    enabled = links_enabled(pod)
    found: list[JSON] = list(reader.list_services(namespace)) if enabled else []
    if namespace != "default" or not enabled:
        found.extend(
            s
            for s in reader.list_services("default")
            if (s.get("metadata") or {}).get("name") in MASTER_SERVICES
        )
    return found


class ServiceLinks:
    """Inject service-link env vars into the pods of CreatePod/UpdatePod.

    Place it *outside* (before) :class:`~vkcompose.middlewares.config_sources.ResolveConfigSources`,
    which performs the final ``$(VAR)`` expansion: env values may then refer to service
    variables, and explicit env vars override them.
    """

    def __init__(self, services: ServiceReader) -> None:
        self.services = services
        # (namespace, enabled) -> (generation, entries, their block, kept registered)
        self._memo: dict[
            tuple[str, bool], tuple[object, list[dict[str, str]], LinkBlock | None]
        ] = {}

    def links_for(self, pod: Pod) -> list[dict[str, str]]:
        """The escaped service-variable entries for ``pod``.

        Reused while the reader's ``generation`` attribute (if it has one) is unchanged.
        """
        namespace = (pod.get("metadata") or {}).get("namespace") or "default"
        enabled = links_enabled(pod)
        generation = getattr(self.services, "generation", None)
        key = (namespace, enabled)
        if generation is not None:
            hit = self._memo.get(key)
            if hit is not None and hit[0] == generation:
                block = hit[2]
                if block is not None and _BLOCKS.get(id(block.entries[0])) is not block:
                    _register(block)
                return hit[1]
        env = service_env(
            services_for_pod(self.services, pod), namespace, enable_service_links=enabled
        )
        links = link_entries(env)
        if generation is not None:
            if len(self._memo) > 1024:
                self._memo.clear()
            self._memo[key] = (generation, links, _BLOCKS.get(id(links[0])) if links else None)
        return links

    async def __call__(self, op: Op, call_next: Handler, /) -> Any:
        match op:
            case CreatePod() | UpdatePod():
                new_pod = _prepend(op.pod, self.links_for(op.pod))
                if new_pod is op.pod:
                    return await call_next(op)
                # only literal entries are added: every Secret reference is kept (for redaction)
                token = REFS_KEPT.set((new_pod, op.pod, REFS_KEPT.get()))
                try:
                    return await call_next(with_pod(op, new_pod))
                finally:
                    REFS_KEPT.reset(token)
            case _:
                return await call_next(op)


__all__ = [
    "MASTER_SERVICES",
    "LinkBlock",
    "ServiceLinks",
    "ServiceReader",
    "StaticServices",
    "add_service_links",
    "env_name",
    "link_block",
    "link_entries",
    "links_enabled",
    "service_env",
    "services_for_pod",
    "variables_for",
]
