"""The kubelet's container environment in one layer, each container template compiled once.

:class:`ContainerEnv` does exactly what ``DownwardAPI → ServiceLinks → ResolveConfigSources``
do one after the other (it runs those three for every pod it has not seen the like of), and
produces the same pod, the same errors, the same ``InvalidEnvironmentVariableNames`` events
and the same :class:`~vkcompose.middlewares.secret_report.SecretReport`. What it adds is a
memory of pod templates: pods made from one template (a Deployment's replicas) differ only in
the values the downward API reads — name, uid, labels, pod IPs … — so their resolved
environments differ only where those values land.

The first pods of a template are resolved by the three middlewares (the *long way*). When a
template comes a second time, its container is resolved once more, with a unique marker in
place of every downward-API value (the *holes*): where a marker ends up in the output (an env
value, a ``$(VAR)`` expansion, ``command``, ``args``, a value holding Secret data) is where
that value goes for every later pod. The compiled program is checked against the real result
of that pod before it is kept. A later pod whose container has the same ``env``,
``envFrom``, ``command``, ``args``, ``resources`` and ``name``, in the same place and
namespace, with the very same service-link variables and the very same ConfigMap/Secret
objects (same ``resourceVersion``), is resolved by reading its holes and filling them in.
Anything else — another template, a changed source, a hole that cannot be read — takes the
long way again.

Values reach the output only by being copied (``$(VAR)`` expansion inserts a value verbatim,
``$$`` escapes round-trip), which is why filling markers in is exact. The one exception: the
resolver rewrites a container it would otherwise leave alone when a value holds a ``$``, so
for such templates a pod whose holes hold a ``$`` takes the long way. After
:data:`IDLE_AFTER` pods in a row of new templates, only one pod in :data:`SAMPLE_EVERY` is
looked at until a template repeats.

Usage (the built-in recipes' stack does this)::

    compose(..., ContainerEnv(sources=ClusterSources(), services=ClusterServices()), ...)
"""

from __future__ import annotations

import copy
import logging
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from vkcompose.errors import InvalidInput
from vkcompose.middlewares.config_sources import (
    CONFIG_ERROR,
    INVALID_NAMES_REASON,
    ResolveConfigSources,
    SkippedKeys,
    SourceReader,
    _needs_work,
    _resolve_pod,
)
from vkcompose.middlewares.downward_api import (
    DownwardAPI,
    _compile_field,
    _downward_ref,
    _field_ref_value,
    _finish,
    _plan,
)
from vkcompose.middlewares.events import EventSink
from vkcompose.middlewares.pod_ops import with_pod
from vkcompose.middlewares.secret_report import (
    REFS_KEPT,
    SECRET_REPORT,
    RefsKept,
    SecretReport,
)
from vkcompose.middlewares.service_links import ServiceLinks, ServiceReader
from vkcompose.ops import AllocatePodIPs, CreatePod, NodeInfo, Op, UpdatePod
from vkcompose.pipeline import Handler
from vkcompose.podspec import Pod
from vkcompose.podspec.expansion import expand
from vkcompose.podspec.fieldpath import POD_IP_FIELDS, FieldPathError, resource_value

log = logging.getLogger(__name__)

CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")

_TOKEN = secrets.token_hex(12)
_MARKER = re.compile("\x00" + _TOKEN + ":([0-9]+)\x00")


def _marker(index: int) -> str:
    return f"\x00{_TOKEN}:{index}\x00"


_Parts = tuple[str | int, ...]
"""Text pieces (``str``) and hole numbers (``int``), joined in order."""


def _split(text: str) -> str | _Parts:
    """``text`` itself when it holds no marker, else its pieces and hole numbers."""
    if _TOKEN not in text:
        return text
    parts: list[str | int] = []
    at = 0
    for m in _MARKER.finditer(text):
        if m.start() > at:
            parts.append(text[at : m.start()])
        parts.append(int(m.group(1)))
        at = m.end()
    if at < len(text):
        parts.append(text[at:])
    return tuple(parts)


def _fill(parts: int | _Parts, values: Sequence[str]) -> str:
    if type(parts) is int:
        return values[parts]
    return "".join([p if type(p) is str else values[p] for p in parts])  # type: ignore[union-attr,index]


def _compact(split: _Parts) -> int | _Parts:
    """A lone hole as its number (filled without a join)."""
    return split[0] if len(split) == 1 and type(split[0]) is int else split


IDLE_AFTER = 256
"""Pods in a row whose templates were all new after which :class:`ContainerEnv` samples."""
SAMPLE_EVERY = 16
"""While sampling, one pod out of this many is looked at for templates."""

_RETRY_FAILED = 64
"""A template whose compile failed is tried again after this many pods of it."""

_METADATA, _FIELD, _RESOURCE, _POD_IP = 0, 1, 2, 3
"""Kinds of hole: a metadata field (read by a compiled getter), another field, a resource, a
pod IP field (filled once the backend has told the pod's IPs)."""


class _Uncompilable(Exception):
    """A template that is not compiled: filling in could not reproduce its resolution (or it
    reads another container, or a source without ``resourceVersion``)."""


# One rendered list (``env``, ``command`` or ``args``): constant elements, and slots filled
# per pod — ``(index, None, parts)`` for a string, ``(index, name, parts)`` for an
# ``{"name", "value"}`` entry whose value has holes.
_Slot = tuple[int, str | None, int | _Parts]


class _Program:
    """How one container template resolves (see the module docs)."""

    __slots__ = (
        "derived",
        "dollar_sensitive",
        "dropped",
        "holes",
        "links",
        "needs_ips",
        "ok",
        "parts",
        "refs",
        "resources",
        "retry_in",
        "skipped",
        "sources",
        "unchanged",
        "values",
    )

    def __init__(self, links: object) -> None:
        self.links = links
        self.parts: tuple[Any, ...] = ()  # the template's fields (a private copy)
        self.dollar_sensitive = False
        self.retry_in = _RETRY_FAILED
        self.ok = False  # a failed compile: pods of this template take the long way
        self.sources: tuple[tuple[str, str, Any, Any], ...] = ()  # kind, name, object, rv
        self.holes: tuple[tuple[int, Any, Any], ...] = ()
        """Per hole: ``(_METADATA, getter, None)``, ``(_FIELD, fieldRef, None)``,
        ``(_POD_IP, fieldRef, None)`` or ``(_RESOURCE, (resource, divisor), None)``."""
        self.needs_ips = False
        self.unchanged = False
        self.dropped: tuple[str, ...] = ()
        self.derived: tuple[tuple[str, list[Any], tuple[_Slot, ...]], ...] = ()
        self.skipped: tuple[SkippedKeys, ...] = ()
        self.refs: tuple[frozenset[str], tuple[str, ...]] | None = None
        self.values: tuple[str | _Parts, ...] = ()
        # (node allocatable, resourceFieldRef values by hole number) of the last pod
        self.resources: tuple[Any, dict[int, str]] | None = None


_ABSENT = "\x00absent:" + _TOKEN
"""Stands for a field the container does not have (``null`` is not the same)."""
_TEMPLATE_FIELDS = ("env", "envFrom", "command", "args", "resources", "name")


def _template_parts(c: Mapping[str, Any]) -> tuple[Any, ...]:
    """The container fields the resolution reads, compared with ``==`` (NaN never equals)."""
    get = c.get
    return tuple([get(k, _ABSENT) for k in _TEMPLATE_FIELDS])


class _Recorder:
    """A :class:`SourceReader` that remembers what it was asked and what it answered."""

    def __init__(self, reader: SourceReader) -> None:
        self.reader = reader
        self.seen: dict[tuple[str, str], Any] = {}

    def get_configmap(self, namespace: str, name: str) -> Any:
        obj = self.reader.get_configmap(namespace, name)
        self.seen["ConfigMap", name] = obj
        return obj

    def get_secret(self, namespace: str, name: str) -> Any:
        obj = self.reader.get_secret(namespace, name)
        self.seen["Secret", name] = obj
        return obj


def _find(candidates: Sequence[_Program], parts: tuple[Any, ...]) -> int | None:
    """Where in ``candidates`` the program for a template with these fields is."""
    for i, program in enumerate(candidates):
        if program.parts == parts:
            return i
    return None


def _render_list(
    items: Sequence[Any],
) -> tuple[list[Any], tuple[_Slot, ...]]:
    """Constants (private copies) and slots of one list of the marker run's output."""
    base: list[Any] = []
    slots: list[_Slot] = []
    for i, item in enumerate(items):
        if type(item) is str:
            split = _split(item)
            if type(split) is str:
                base.append(item)
            else:
                base.append("")
                slots.append((i, None, _compact(split)))  # type: ignore[arg-type]
            continue
        if _TOKEN not in repr(item):
            base.append(copy.deepcopy(item))
            continue
        if (
            type(item) is not dict
            or set(item) != {"name", "value"}
            or type(item["name"]) is not str
            or type(item["value"]) is not str
            or _TOKEN in item["name"]
        ):
            raise _Uncompilable(f"a marker outside an env value at {i}")
        base.append(None)
        slots.append((i, item["name"], _compact(_split(item["value"]))))  # type: ignore[arg-type]
    return base, tuple(slots)


def _compile(
    key: str,
    c: Mapping[str, Any],
    namespace: str,
    links: list[dict[str, str]],
    sources: SourceReader,
    resolver: ResolveConfigSources,
) -> _Program:
    """Resolve ``c`` with markers for its downward-API values (see the module docs)."""
    program = _Program(links)
    env = list(c.get("env") or ())
    holes: list[tuple[int, Any, Any]] = []
    for i, entry in enumerate(env):
        ref = _downward_ref(entry)
        if ref is None:
            continue
        field_ref = ref.get("fieldRef")
        if field_ref is not None:
            path, version = field_ref.get("fieldPath"), field_ref.get("apiVersion")
            cacheable = type(path) is str and (version is None or type(version) is str)
            getter = _compile_field(path, version) if cacheable else None
            if getter is not None:
                holes.append((_METADATA, getter, None))
            else:
                hole_kind = _POD_IP if path in POD_IP_FIELDS else _FIELD
                holes.append((hole_kind, copy.deepcopy(field_ref), None))
                program.needs_ips = program.needs_ips or hole_kind == _POD_IP
        else:
            rf = ref["resourceFieldRef"]
            if rf.get("containerName"):
                raise _Uncompilable("a resourceFieldRef naming a container")
            holes.append((_RESOURCE, (str(rf.get("resource") or ""), rf.get("divisor")), None))
        env[i] = {"name": entry["name"], "value": _marker(len(holes) - 1)}
    program.holes = tuple(holes)
    marked: Mapping[str, Any] = c
    if holes:
        marked = {**c, "env": env}
    if links:
        marked = {**marked, "env": [*links, *(marked.get("env") or ())]}
    # The resolver rewrites a container only when it needs to, and a ``$`` in a value (as
    # escaped, ``$$``) is one reason; markers have none. When nothing else makes it rewrite
    # this container, a pod whose downward-API values hold a ``$`` takes the long way.
    program.dollar_sensitive = bool(holes) and not _needs_work(marked, resolver.expand_vars, False)
    recorder = _Recorder(sources)
    got = _resolve_pod(
        {"metadata": {"namespace": namespace}, "spec": {key: [marked]}},
        recorder,
        service_env=None,
        expand_vars=resolver.expand_vars,
        strict_names=resolver.strict_names,
        cache=resolver._cache,
        names=False,
    )
    out = got.pod["spec"][key][0]
    deps = []
    for (kind, name), obj in recorder.seen.items():
        rv = None if obj is None else (obj.get("metadata") or {}).get("resourceVersion")
        if obj is not None and not rv:
            raise _Uncompilable(f"{kind} {name} has no resourceVersion")
        deps.append((kind, name, obj, rv))
    program.sources = tuple(deps)
    program.unchanged = out is c
    program.dropped = tuple(k for k in c if k not in out)
    derived = []
    for k, value in out.items():
        if value is c.get(k) and k in c:
            continue
        if type(value) is not list:
            raise _Uncompilable(f"{k} is not a list")
        derived.append((k, *_render_list(value)))
    program.derived = tuple(derived)
    program.skipped = tuple(got.skipped)
    cname = str(c.get("name") or "")
    program.refs = got.refs.get(cname)
    program.values = tuple(_split(v) for v in got.values)
    program.ok = True
    return program


def _early_holes(
    pod: Pod,
    c: Mapping[str, Any],
    program: _Program,
    node: NodeInfo | None,
    memo: dict[tuple[Any, Any], str],
) -> list[str]:
    """The raw downward-API values of ``c``'s holes but the pod IPs (``""`` stands in for
    those); ``FieldPathError`` when one fails, as the downward API's first pass would."""
    values: list[str] = []
    meta = pod.get("metadata") or {}
    allocatable = node.allocatable if node else None
    for number, (kind, ref, _) in enumerate(program.holes):
        if kind == _METADATA:
            values.append(ref(meta))
        elif kind == _FIELD:
            values.append(_field_ref_value(pod, ref, node, None, False, memo))
        elif kind == _RESOURCE:
            # the template's own resources: the same values for every pod while the node's
            # allocatable amounts (the defaults of missing limits) are the same
            known = program.resources
            if known is None or known[0] != allocatable:
                known = program.resources = (
                    None if allocatable is None else dict(allocatable),
                    {},
                )
            value = known[1].get(number)
            if value is None:
                resource, divisor = ref
                value = known[1][number] = resource_value(pod, c, resource, divisor, allocatable)
            values.append(value)
        else:
            values.append("")
    return values


def _late_holes(
    pod: Pod,
    program: _Program,
    values: list[str],
    node: NodeInfo | None,
    pod_ips: Sequence[str] | None,
    memo: dict[tuple[Any, Any], str],
) -> None:
    """Fill in the pod-IP holes of ``values`` (``memo``: this pod's values, by field)."""
    for number, (kind, ref, _) in enumerate(program.holes):
        if kind == _POD_IP:
            values[number] = _field_ref_value(pod, ref, node, pod_ips, False, memo)


def _render_container(c: Mapping[str, Any], program: _Program, holes: Sequence[str]) -> Any:
    new_c = dict(c)
    for k in program.dropped:
        new_c.pop(k, None)
    for k, base, slots in program.derived:
        items = list(base)
        for i, name, parts in slots:
            value = holes[parts] if type(parts) is int else _fill(parts, holes)
            items[i] = value if name is None else {"name": name, "value": value}
        new_c[k] = items
    return new_c


_Match = tuple[str, int, Mapping[str, Any], _Program]

_Place = tuple[str, int, str, int, Any, Any]
"""Where container templates are kept: container list, index, namespace, ``id`` of the
service-link entries (kept alive by the programs) and the container's name and image."""
_PER_SLOT = 8
"""Templates kept per slot (workloads may share one), and sightings remembered per slot."""


_Entry = tuple[str, int, Mapping[str, Any], _Place, tuple[Any, ...]]
"""A container: list, index, the container, its slot and its template's fields."""


class _Pod:
    """A pod's namespace, service-link entries and containers with their template keys."""

    __slots__ = ("containers", "links", "namespace")

    def __init__(
        self,
        namespace: str,
        links: list[dict[str, str]],
        containers: list[_Entry],
    ) -> None:
        self.namespace = namespace
        self.links = links
        self.containers = containers


class ContainerEnv:
    """``DownwardAPI → ServiceLinks → ResolveConfigSources`` in one layer, with container
    templates compiled once (see the module docs).

    The arguments are those of the three middlewares: ``node`` and ``escape``-free
    :class:`~vkcompose.middlewares.downward_api.DownwardAPI`,
    :class:`~vkcompose.middlewares.service_links.ServiceLinks` over ``services``, and
    :class:`~vkcompose.middlewares.config_sources.ResolveConfigSources` over ``sources``
    (``events`` for skipped ``envFrom`` keys, ``strict_names``). ``templates`` bounds how
    many container templates are remembered.

    >>> from vkcompose.middlewares.config_sources import StaticSources
    >>> from vkcompose.middlewares.service_links import StaticServices
    >>> ContainerEnv(StaticSources(), StaticServices())
    ContainerEnv(templates=0)
    """

    def __init__(
        self,
        sources: SourceReader,
        services: ServiceReader,
        events: EventSink | None = None,
        *,
        node: NodeInfo | None = None,
        strict_names: bool = True,
        templates: int = 4096,
    ) -> None:
        self.sources = sources
        self.events = events
        self.downward = DownwardAPI(node)
        self.links = ServiceLinks(services)
        self.resolver = ResolveConfigSources(sources, events, strict_names=strict_names)
        self.limit = templates
        self._programs: dict[_Place, list[_Program]] = {}
        self._sightings: dict[_Place, list[tuple[Any, ...]]] = {}
        self.filled = 0
        """Pods resolved by filling in a compiled template."""
        self.resolved = 0
        """Pods resolved by the three middlewares (first of a template, or no template)."""
        self._unrepeated = 0  # long-way pods in a row whose templates were all new
        self._skipped = 0

    @property
    def sampling(self) -> bool:
        """Whether templates are looked for in only one pod out of :data:`SAMPLE_EVERY`:
        after :data:`IDLE_AFTER` pods in a row whose templates were all new (pods that never
        share a template then do not pay for template keys)."""
        return self._unrepeated >= IDLE_AFTER

    def __repr__(self) -> str:
        count = sum(len(programs) for programs in self._programs.values())
        return f"ContainerEnv(templates={count})"

    def _containers(self, pod: Pod) -> _Pod | None:
        """The containers of ``pod`` with their template keys (``None``: a pod that cannot
        have any — one whose env is not JSON, or whose service links cannot be read yet: the
        long way then fails, if it must, in the three middlewares' order)."""
        found: list[_Entry] = []
        try:
            spec = pod.get("spec") or {}
            namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
            links = self.links.links_for(pod)
            for key in CONTAINER_LISTS:
                containers = spec.get(key)
                if not containers:
                    continue
                if type(containers) is not list:
                    return None
                for index, c in enumerate(containers):
                    if type(c) is not dict:
                        return None
                    name, image = c.get("name"), c.get("image")
                    slot = (
                        key,
                        index,
                        namespace,
                        id(links),
                        name if type(name) is str else None,
                        image if type(image) is str else None,
                    )
                    found.append((key, index, c, slot, _template_parts(c)))
        except Exception:  # links not readable (or a malformed pod): no template
            return None
        if not found:  # (nothing to fill in; the long way also normalises ``spec``)
            return None
        return _Pod(namespace, links, found)

    # --- the long way: the three middlewares, learning templates on the way -----------------

    async def _long_way(
        self,
        op: CreatePod | UpdatePod,
        call_next: Handler,
        containers: _Pod | None,
        pod_ips: list[str] | None = None,
    ) -> Any:
        """The three middlewares; ``pod_ips`` are the ones already asked for this op."""
        self.resolved += 1
        submitted = op.pod

        async def learn(inner: Op) -> Any:
            if containers is not None and type(inner) is type(op):
                try:
                    self._learn(
                        submitted, containers, inner.pod, REFS_KEPT.get(), SECRET_REPORT.get()
                    )
                except Exception:  # a template that cannot be compiled takes the long way
                    log.debug("container template not compiled", exc_info=True)
            return await call_next(inner)

        async def after_links(inner: Op) -> Any:
            return await self.resolver(inner, learn)

        async def after_downward(inner: Op) -> Any:
            if pod_ips is not None and isinstance(inner, AllocatePodIPs):
                return pod_ips  # (the backend is asked once per op)
            return await self.links(inner, after_links)

        return await self.downward(op, after_downward)

    def _learn(
        self,
        submitted: Pod,
        pod: _Pod,
        resolved: Pod,
        chain: RefsKept | None,
        report: SecretReport | None,
    ) -> None:
        """Compile the containers of ``submitted`` that have no program once their template
        is seen a second time, and keep the programs when filling in the pod reproduces
        ``resolved`` and ``report``."""
        todo: list[tuple[str, Mapping[str, Any], _Place, tuple[Any, ...], int | None]] = []
        repeated = True
        for key, _, c, slot, parts in pod.containers:
            candidates = self._programs.get(slot, ())
            at = _find(candidates, parts)
            if at is not None:
                known = candidates[at]
                if not known.ok:
                    known.retry_in -= 1
                    if known.retry_in > 0:
                        continue
                elif self._sources_match(known, pod.namespace, {}):
                    continue  # (a pod taking the long way for another reason)
            elif parts not in self._sightings.get(slot, ()):
                repeated = False
            todo.append((key, c, slot, parts, at))
        if not todo:
            return
        if not repeated:
            self._unrepeated += 1
        else:
            self._unrepeated = 0
        if not repeated:  # a template seen once may never come again: compile it next time
            if len(self._sightings) > self.limit:
                self._sightings.clear()
            for _, _, slot, parts, at in todo:
                if at is None:
                    seen = self._sightings.setdefault(slot, [])
                    seen.append(parts)
                    del seen[:-_PER_SLOT]
            return
        fresh: dict[_Place, _Program] = {}
        for key, c, slot, parts, _ in todo:
            try:
                program = _compile(key, c, pod.namespace, pod.links, self.sources, self.resolver)
            except _Uncompilable as e:
                log.debug("container template not compiled: %s", e)
                program = _Program(pod.links)
            program.parts = copy.deepcopy(parts)
            fresh[slot] = program
        if all(p.ok for p in fresh.values()):
            downward = _downward_output(submitted, chain)
            matches = self._match(pod, fresh)
            if matches is None or not _reproduces(submitted, matches, downward, resolved, report):
                log.debug("container template not compiled: filling in differs")
                for program in fresh.values():
                    program.ok = False
        if len(self._programs) > self.limit:
            self._programs.clear()
        for _, _, slot, parts, at in todo:
            candidates = self._programs.setdefault(slot, [])
            if at is not None and at < len(candidates):
                candidates[at] = fresh[slot]
            else:
                candidates.append(fresh[slot])
                del candidates[:-_PER_SLOT]
            sighted = self._sightings.get(slot)
            if sighted and parts in sighted:
                sighted.remove(parts)

    # --- the short way -----------------------------------------------------------------------

    def _sources_match(
        self, program: _Program, namespace: str, seen: dict[tuple[str, str], Any]
    ) -> bool:
        for kind, name, obj, rv in program.sources:
            got = seen.get((kind, name), seen)
            if got is seen:
                got = (
                    self.sources.get_configmap(namespace, name)
                    if kind == "ConfigMap"
                    else self.sources.get_secret(namespace, name)
                )
                seen[kind, name] = got
            if got is not obj or (
                obj is not None and (obj.get("metadata") or {}).get("resourceVersion") != rv
            ):
                return False
        return True

    def _match(
        self, pod: _Pod, extra: Mapping[_Place, _Program] | None = None
    ) -> list[_Match] | None:
        """Each container of ``pod`` with its program, or ``None`` when one has none."""
        programs = self._programs
        found: list[_Match] = []
        for key, index, c, slot, parts in pod.containers:
            program = extra.get(slot) if extra is not None else None
            if program is None:
                candidates = programs.get(slot)
                if candidates is None:
                    return None
                at = _find(candidates, parts)
                if at is None:
                    return None
                program = candidates[at]
            if program.links is not pod.links or not program.ok:
                return None
            found.append((key, index, c, program))
        return found

    def _current(self, pod: Pod, containers: _Pod, matches: list[_Match], *, awaited: bool) -> bool:
        """Whether every source the programs read is unchanged, and (after an ``await``, during
        which the services may have changed) the service links too."""
        if awaited and self.links.links_for(pod) is not containers.links:
            return False
        seen: dict[tuple[str, str], Any] = {}
        return all(
            not m[3].sources or self._sources_match(m[3], containers.namespace, seen)
            for m in matches
        )

    async def __call__(self, op: Op, call_next: Handler, /) -> Any:
        if not isinstance(op, CreatePod | UpdatePod):
            return await call_next(op)
        pod_op = op
        pod = pod_op.pod
        if self._unrepeated >= IDLE_AFTER:
            self._skipped += 1
            if self._skipped % SAMPLE_EVERY:
                return await self._long_way(pod_op, call_next, None)
        containers = self._containers(pod)
        matches = self._match(containers) if containers is not None else None
        if containers is None or matches is None:
            return await self._long_way(pod_op, call_next, containers)
        self.filled += 1  # (taken back below if the pod takes the long way after all)
        # the downward API's order: every value but the pod IPs (the first failure stops
        # it), then the pod IPs if any entry needs them, then its error if there was one
        node = pod_op.node or self.downward.node
        memo: dict[tuple[Any, Any], str] = {}
        holes: list[list[str]] = []
        failed = False
        try:
            for _, _, c, program in matches:
                holes.append(_early_holes(pod, c, program, node, memo))
        except FieldPathError:
            failed = True
        pod_ips = None
        if any(m[3].needs_ips for m in matches):
            pod_ips = await self.downward._pod_ips(pod_op, node, call_next)
            if not failed:
                try:
                    for (_, _, _, program), filled in zip(matches, holes, strict=True):
                        _late_holes(pod, program, filled, node, pod_ips, memo)
                except FieldPathError:
                    failed = True
        if failed:
            error = _downward_error(pod, node, pod_ips)
            if error is None:  # (not expected: the downward API agrees with the holes)
                self.filled -= 1
                return await self._long_way(pod_op, call_next, containers, pod_ips)
            raise error
        if not self._current(pod, containers, matches, awaited=pod_ips is not None) or any(
            program.dollar_sensitive and any("$" in v for v in filled)
            for (_, _, _, program), filled in zip(matches, holes, strict=True)
        ):
            self.filled -= 1
            return await self._long_way(pod_op, call_next, containers, pod_ips)
        self._unrepeated = 0
        new_pod, values, refs = _fill_pod(pod, matches, holes)
        if self.events is not None:
            for _, _, _, program in matches:
                for skip in program.skipped:
                    self.events.emit(
                        pod, type="Warning", reason=INVALID_NAMES_REASON, message=skip.message
                    )
        token = SECRET_REPORT.set(SecretReport(new_pod, refs, values, pod))
        try:
            return await call_next(pod_op if new_pod is pod else with_pod(pod_op, new_pod))
        finally:
            SECRET_REPORT.reset(token)


def _fill_pod(
    pod: Pod, matches: list[_Match], holes: list[list[str]]
) -> tuple[Pod, tuple[str, ...], dict[str, tuple[frozenset[str], tuple[str, ...]]]]:
    """The resolved pod, the values holding Secret data and the Secret references."""
    values: list[str] = []
    refs: dict[str, tuple[frozenset[str], tuple[str, ...]]] = {}
    lists: dict[str, list[Any]] = {}
    changed = False
    for (key, _, c, program), filled in zip(matches, holes, strict=True):
        new_list = lists.get(key)
        if new_list is None:
            new_list = lists[key] = []
        if program.unchanged:
            new_list.append(c)
        else:
            new_list.append(_render_container(c, program, filled))
            changed = True
        if program.values:
            for v in program.values:
                text = v if type(v) is str else _fill(v, filled)  # type: ignore[arg-type]
                if text:
                    values.append(text)
        if program.refs is not None:
            name = str(c.get("name") or "")
            seen = refs.get(name)
            refs[name] = (
                program.refs
                if seen is None
                else (seen[0].union(program.refs[0]), (*seen[1], *program.refs[1]))
            )
    if not changed:
        return pod, tuple(values), refs
    return {**pod, "spec": {**pod["spec"], **lists}}, tuple(values), refs


def _downward_error(pod: Pod, node: NodeInfo | None, pod_ips: list[str] | None) -> Exception | None:
    """The downward API's own error for ``pod`` (its pod IPs already known), if any."""
    try:
        plan = _plan(pod, node, True)
        if plan is not None:
            _finish(pod, plan, node, pod_ips, True)
    except FieldPathError as e:
        return InvalidInput(str(e), reason=CONFIG_ERROR)
    return None


def _downward_output(submitted: Pod, chain: RefsKept | None) -> Pod | None:
    """The pod the downward API made of ``submitted`` (``None``: it rewrote nothing)."""
    link = chain
    while link is not None:
        if link[1] is submitted:
            return link[0]
        link = link[2]
    return None


def _unescape(text: str) -> str:
    return expand(text, _nothing)


def _nothing(name: str) -> str | None:
    return None


def _reproduces(
    submitted: Pod,
    matches: list[_Match],
    downward: Pod | None,
    resolved: Pod,
    report: SecretReport | None,
) -> bool:
    """Whether filling in ``submitted``'s own values gives what the three middlewares gave."""
    holes: list[list[str]] = []
    for key, index, _, program in matches:
        if not program.holes:
            holes.append([])
            continue
        if downward is None:
            return False
        before = submitted["spec"][key][index]["env"]
        after = downward["spec"][key][index]["env"]
        holes.append([_unescape(after[i]["value"]) for i, e in enumerate(before) if _is_hole(e)])
    new_pod, values, refs = _fill_pod(submitted, matches, holes)
    if new_pod != resolved or report is None or report.pod is not resolved:
        return False
    return sorted(values) == sorted(report.values) and dict(refs) == dict(report.refs)


def _is_hole(entry: Mapping[str, Any]) -> bool:
    return _downward_ref(entry) is not None


__all__ = ["IDLE_AFTER", "SAMPLE_EVERY", "ContainerEnv"]
