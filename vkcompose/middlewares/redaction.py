"""Secret redaction and per-op logging: secret values never leave in logs, spans or errors.

Secret values are known by *value*: once the config-sources middleware has resolved a
``secretKeyRef`` the pod only holds a plain ``value``. So the parts that see secrets register
them in a shared :class:`SecretRegistry` (``registry.add(value)``: config sources, volumes,
token projection), and :class:`LearnSecrets` learns them *by name* — it compares the resolved
pod with the original one (captured by the outer :class:`Redaction`) and registers the values
of every env var that came from a ``secretKeyRef`` or an ``envFrom`` ``secretRef``.

Everything that leaves then goes through :meth:`SecretRegistry.redact_text`, which replaces
each registered value (and its base64 form) by ``[REDACTED]``:

* exceptions passing :class:`Redaction`/:class:`LearnSecrets` are re-raised as the same
  exception type with redacted messages (:func:`redact_exception`);
* :class:`LogOps` writes one structured, redacted log line per op; :class:`RedactingFilter`
  redacts any other ``logging`` record (message, arguments, traceback);
* :class:`RedactingSpanExporter` redacts span names, attributes, events and statuses before
  they are exported (and ``Tracing(redact=registry.redact_text)`` redacts error events).

Pure core: :class:`SecretRegistry`, :func:`redact_pod`, :func:`secret_env_refs`,
:func:`learn_secrets`, :func:`redact_exception`.

>>> registry = SecretRegistry()
>>> registry.add("s3cr3t-pw")
>>> registry.redact_text("login failed for password s3cr3t-pw")
'login failed for password [REDACTED]'

Usage::

    secrets = SecretRegistry()
    redaction = Redaction(secrets)
    pipeline = compose(
        redaction, LogOps(secrets), Tracing(provider, redact=secrets.redact_text), Retry(),
        ResolveConfigSources(...), redaction.learner(), backend=backend,
    )
    provider.add_span_processor(BatchSpanProcessor(RedactingSpanExporter(exporter, secrets)))
    logging.getLogger().handlers[0].addFilter(RedactingFilter(secrets))
"""

from __future__ import annotations

import base64
import contextvars
import copy
import json
import logging
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Link, Status

from vkcompose.errors import VKComposeError
from vkcompose.middlewares.retry.middleware import error_type
from vkcompose.middlewares.secret_report import SECRET_REPORT, SecretRefs, derives_from
from vkcompose.ops import Op
from vkcompose.pipeline import Handler
from vkcompose.podspec import Pod

REDACTED = "[REDACTED]"
"""What a secret value is replaced with."""

T = TypeVar("T")


def _forms(value: str) -> set[str]:
    """``value`` as it may appear in text: itself, and escaped as ``repr`` (how many exceptions
    show their arguments) and JSON write it (a value with a newline, a tab or a backslash).

    >>> sorted(_forms("pw\\n"))
    ['pw\\n', 'pw\\\\n']
    """
    forms = {value, repr(value)[1:-1], json.dumps(value)[1:-1]}
    forms.discard("")
    return forms


class SecretRegistry:
    """The secret values to hide, shared by every component that may see or emit them.

    ``add`` registers a value and, by default, its base64 encoding (how Secret ``data``
    travels). Longer values are matched first, so overlapping secrets are hidden entirely.
    Values are kept until :meth:`discard`.
    """

    def __init__(self, values: Iterable[str] = (), *, with_base64: bool = True) -> None:
        self._values: set[str] = set()
        # str values registered together with their base64 form: re-adding one is a no-op
        self._complete: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._dirty = False
        self.with_base64 = with_base64
        for value in values:
            self.add(value)

    def add(self, value: str | bytes) -> None:
        """Register a secret value (empty values are ignored)."""
        if value in self._complete and self.with_base64:
            return  # (hot: the same values are learned pod after pod)
        if isinstance(value, bytes):
            raw = value
            value = value.decode("utf-8", "replace")
        else:
            raw = value.encode()
        if not value:
            return
        new = _forms(value)
        if self.with_base64:
            new.add(base64.b64encode(raw).decode())
        if not new <= self._values:
            self._values |= new
            self._dirty = True
        if self.with_base64 and type(value) is str:
            self._complete.add(value)

    def add_all(self, values: Iterable[str | bytes]) -> None:
        """Register several values."""
        for value in values:
            self.add(value)

    def discard(self, value: str) -> None:
        """Forget a value (and its base64 form)."""
        gone = _forms(value) | {base64.b64encode(value.encode()).decode()}
        self._complete.clear()  # (rare) a removed form may belong to another value too
        if self._values & gone:
            self._values -= gone
            self._dirty = True

    def __contains__(self, value: object) -> bool:
        return value in self._values

    def __len__(self) -> int:
        return len(self._values)

    def _compiled(self) -> re.Pattern[str] | None:
        if self._dirty:
            values = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(map(re.escape, values))) if values else None
            self._dirty = False
        return self._pattern

    def leaks(self, text: str) -> bool:
        """Whether ``text`` contains a registered value."""
        pattern = self._compiled()
        return pattern is not None and pattern.search(text) is not None

    def redact_text(self, text: str) -> str:
        """``text`` with every registered value replaced by ``[REDACTED]``."""
        pattern = self._compiled()
        if pattern is None:
            return text
        return pattern.sub(REDACTED, text)

    def redact_value(self, value: T) -> T:
        """Redact strings inside ``value`` (str, list, tuple, dict; copy on write)."""
        if isinstance(value, str):
            return self.redact_text(value)  # type: ignore[return-value]
        if isinstance(value, Mapping):
            items = {k: self.redact_value(v) for k, v in value.items()}
            same = all(items[k] is v for k, v in value.items())
            return value if same else dict(items)  # type: ignore[return-value]
        if isinstance(value, list | tuple):
            redacted = [self.redact_value(v) for v in value]
            if all(a is b for a, b in zip(redacted, value, strict=True)):
                return value
            return tuple(redacted) if isinstance(value, tuple) else redacted  # type: ignore[return-value]
        return value


# ------------------------------------------------------------------------------- pod helpers

_CONTAINER_FIELDS = ("initContainers", "containers", "ephemeralContainers")


def _containers(pod: Pod) -> Iterator[dict[str, Any]]:
    spec = pod.get("spec") or {}
    for field in _CONTAINER_FIELDS:
        yield from spec.get(field) or ()


def secret_env_refs(pod: Pod) -> dict[str, tuple[frozenset[str], tuple[str, ...]]]:
    """Per container name: the env var names sourced from ``secretKeyRef`` and the prefixes of
    its ``envFrom`` ``secretRef`` entries."""
    refs: dict[str, tuple[frozenset[str], tuple[str, ...]]] = {}
    for container in _containers(pod):
        names = frozenset(
            entry["name"]
            for entry in container.get("env") or ()
            if "name" in entry and ((entry.get("valueFrom") or {}).get("secretKeyRef"))
        )
        prefixes = tuple(
            source.get("prefix") or ""
            for source in container.get("envFrom") or ()
            if source.get("secretRef")
        )
        if names or prefixes:
            refs[container.get("name", "")] = (names, prefixes)
    return refs


def refs_covered(pod: Pod, refs: SecretRefs) -> bool:
    """Whether every Secret reference of ``pod`` (:func:`secret_env_refs`) is among ``refs``.

    :class:`LearnSecrets` trusts a resolver's :class:`~vkcompose.middlewares.secret_report.
    SecretReport` only when it covers every reference of the pod as submitted, i.e. when no
    middleware between :class:`Redaction` and the resolver resolved one itself.
    """
    spec = pod.get("spec") or {}
    for field in _CONTAINER_FIELDS:
        for container in spec.get(field) or ():
            seen: tuple[frozenset[str], tuple[str, ...]] | None = None
            for entry in container.get("env") or ():
                value_from = entry.get("valueFrom")
                if (
                    value_from
                    and "secretKeyRef" in value_from
                    and value_from["secretKeyRef"]
                    and "name" in entry
                ):
                    if seen is None:
                        seen = refs.get(container.get("name", ""))
                        if seen is None:
                            return False
                    if entry["name"] not in seen[0]:
                        return False
            for source in container.get("envFrom") or ():
                if source.get("secretRef"):
                    if seen is None:
                        seen = refs.get(container.get("name", ""))
                        if seen is None:
                            return False
                    if (source.get("prefix") or "") not in seen[1]:
                        return False
    return True


def learn_secrets(original: Pod, resolved: Pod, registry: SecretRegistry) -> int:
    """Register the values ``resolved`` holds for env vars that ``original`` sourced from
    Secrets. Returns how many values were found.

    A var is secret when the original named it with ``secretKeyRef``, or when it is new (not
    in the original's ``env``) and starts with the prefix of an ``envFrom`` ``secretRef`` —
    which may also catch ConfigMap values sharing that prefix: over-redaction is the safe side.
    """
    refs = secret_env_refs(original)
    if not refs:
        return 0
    declared: dict[str, set[str]] | None = None
    empty: frozenset[str] = frozenset()
    found = 0
    add = registry.add
    for container in _containers(resolved):
        ref = refs.get(container.get("name", ""))
        if ref is None:
            continue
        env = container.get("env")
        if not env:
            continue
        names, prefixes = ref
        if prefixes:  # envFrom secretRef: new vars starting with one of its prefixes count too
            if declared is None:
                declared = {
                    c.get("name", ""): {e.get("name") for e in c.get("env") or ()}
                    for c in _containers(original)
                }
            known: set[str] | frozenset[str] = declared.get(container.get("name", ""), empty)
            for entry in env:
                var = entry.get("name", "")
                if var in names or (var not in known and var.startswith(prefixes)):
                    value = entry.get("value")
                    if isinstance(value, str) and value:
                        add(value)
                        found += 1
        elif names:
            for entry in env:
                if entry.get("name", "") in names:
                    value = entry.get("value")
                    if isinstance(value, str) and value:
                        add(value)
                        found += 1
    return found


def redact_pod(pod: Pod, registry: SecretRegistry) -> Pod:
    """A copy of ``pod`` safe to log: every registered value redacted wherever it appears, and
    every env ``value`` whose var was declared from a Secret replaced by ``[REDACTED]``."""
    refs = secret_env_refs(pod)
    redacted: Pod = registry.redact_value(pod)
    if not refs:
        return redacted
    spec = dict(redacted.get("spec") or {})
    for field in _CONTAINER_FIELDS:
        if field not in spec:
            continue
        containers = []
        for container in spec[field] or ():
            names = refs.get(container.get("name", ""), (frozenset(), ()))[0]
            if names and container.get("env"):
                env = [
                    {**e, "value": REDACTED} if e.get("name") in names and "value" in e else e
                    for e in container["env"]
                ]
                container = {**container, "env": env}
            containers.append(container)
        spec[field] = containers
    return {**redacted, "spec": spec}


# --------------------------------------------------------------------------------- exceptions


def _redact_args(args: Sequence[Any], registry: SecretRegistry) -> tuple[Any, ...]:
    return tuple(registry.redact_value(a) for a in args)


def redact_exception(error: BaseException, registry: SecretRegistry) -> BaseException:
    """``error`` itself when nothing in it (message, attributes, cause chain) leaks a
    registered value; otherwise an exception of the same type with redacted message and
    attributes (falling back to :class:`~vkcompose.errors.VKComposeError` when the type cannot
    be rebuilt), with the traceback kept and the cause chain redacted too."""
    if not len(registry):
        return error
    return _redact_exception(error, registry, depth=0)


def _redact_exception(error: BaseException, registry: SecretRegistry, depth: int) -> BaseException:
    cause = error.__cause__
    context = error.__context__
    clean_cause = _redact_exception(cause, registry, depth + 1) if cause and depth < 8 else cause
    clean_context = (
        _redact_exception(context, registry, depth + 1) if context and depth < 8 else context
    )
    inner: list[BaseException] | None = None
    inner_changed = False
    if isinstance(error, BaseExceptionGroup):
        inner = [_redact_exception(e, registry, depth + 1) for e in error.exceptions]
        inner_changed = any(a is not b for a, b in zip(inner, error.exceptions, strict=True))
    leaks = registry.leaks(str(error)) or any(
        isinstance(v, str) and registry.leaks(v) for v in vars(error).values()
    )
    if not leaks and clean_cause is cause and clean_context is context and not inner_changed:
        return error
    clean: BaseException
    if isinstance(error, BaseExceptionGroup):
        assert inner is not None
        message = registry.redact_text(error.message)
        try:
            clean = type(error)(message, inner)
        except Exception:
            clean = BaseExceptionGroup(message, inner)
    else:
        try:
            clean = copy.copy(error)
            clean.args = _redact_args(error.args, registry)
            for key, value in vars(error).items():
                setattr(clean, key, registry.redact_value(value))
            if registry.leaks(str(clean)):
                raise ValueError("still leaks")
        except Exception:
            clean = VKComposeError(registry.redact_text(str(error)))
    clean.__cause__ = clean_cause
    clean.__context__ = clean_context
    clean.__suppress_context__ = error.__suppress_context__
    clean.__traceback__ = error.__traceback__
    return clean


# --------------------------------------------------------------------------------- middlewares

_ORIGINAL_POD: contextvars.ContextVar[Pod | None] = contextvars.ContextVar(
    "vkcompose_redaction_original_pod", default=None
)


class Redaction:
    """Outer part: remembers each pod as it entered (so :class:`LearnSecrets` can tell which
    values came from Secrets) and redacts exceptions leaving the pipeline.

    Place it first; place :meth:`learner` right after the config-sources middleware.
    """

    __slots__ = ("registry",)

    def __init__(self, registry: SecretRegistry) -> None:
        self.registry = registry

    def learner(self) -> LearnSecrets:
        """The inner part, sharing this registry."""
        return LearnSecrets(self.registry)

    async def __call__(self, op: Op, call_next: Handler, /) -> Any:
        pod = op.pod_or_none
        token = None if pod is None else _ORIGINAL_POD.set(pod)
        clean: BaseException
        try:
            return await call_next(op)
        except Exception as error:
            clean = redact_exception(error, self.registry)
            if clean is error:
                raise
        finally:
            if token is not None:
                _ORIGINAL_POD.reset(token)
        raise clean  # outside the except block: the unredacted original is not chained

    def __repr__(self) -> str:
        return "Redaction()"


class LearnSecrets:
    """Inner part: registers secret env values of resolved pods (by name, comparing with the
    original pod the outer :class:`Redaction` saw) and redacts exceptions coming from below —
    so every middleware between the two only ever sees redacted errors."""

    __slots__ = ("registry",)

    def __init__(self, registry: SecretRegistry) -> None:
        self.registry = registry

    async def __call__(self, op: Op, call_next: Handler, /) -> Any:
        pod = op.pod_or_none
        if pod is not None:
            original = _ORIGINAL_POD.get()
            if original is not None and original is not pod:
                report = SECRET_REPORT.get()
                if (
                    report is not None
                    and report.pod is pod
                    and (
                        (report.source is not None and derives_from(report.source, original))
                        or refs_covered(original, report.refs)
                    )
                ):
                    add = self.registry.add
                    for value in report.values:
                        add(value)
                else:
                    learn_secrets(original, pod, self.registry)
        clean: BaseException
        try:
            return await call_next(op)
        except Exception as error:
            clean = redact_exception(error, self.registry)
            if clean is error:
                raise
        raise clean  # outside the except block: the unredacted original is not chained

    def __repr__(self) -> str:
        return "LearnSecrets()"


def _pod_label(op: Op) -> str:
    key = op.pod_key
    if key is None:
        return "-"
    namespace, name = key
    return f"{namespace}/{name}" if namespace else name


class LogOps:
    """One structured log line per op: ``op=<kind> pod=<ns/name> outcome=<ok|error|cancelled>
    duration_ms=<ms>`` (plus ``error.type`` and the redacted error message on failure).

    The fields are also attached to the record as ``record.vkcompose`` (a dict) for JSON
    formatters. Successes log at ``level`` (default INFO), failures at WARNING.
    """

    __slots__ = ("level", "logger", "registry")

    def __init__(
        self,
        registry: SecretRegistry | None = None,
        *,
        logger: logging.Logger | None = None,
        level: int = logging.INFO,
    ) -> None:
        self.registry = registry or SecretRegistry()
        self.logger = logger or logging.getLogger("vkcompose.ops")
        self.level = level

    def _emit(self, level: int, fields: dict[str, Any]) -> None:
        text = " ".join(f"{k}={v}" for k, v in fields.items())
        if "error" in fields:
            text = self.registry.redact_text(text)
            fields = {**fields, "error": self.registry.redact_text(str(fields["error"]))}
        self.logger.log(level, "%s", text, extra={"vkcompose": fields})

    async def __call__(self, op: Op, call_next: Handler, /) -> Any:
        logger = self.logger
        if not logger.isEnabledFor(min(self.level, logging.WARNING)):
            return await call_next(op)
        start = time.perf_counter()
        fields: dict[str, Any] = {"op": op.kind, "pod": _pod_label(op)}
        try:
            result = await call_next(op)
        except Exception as error:
            fields["outcome"] = "error"
            fields["duration_ms"] = round((time.perf_counter() - start) * 1000, 3)
            fields["error.type"] = error_type(error)
            fields["error"] = repr(str(error))
            self._emit(logging.WARNING, fields)
            raise
        except BaseException:
            fields["outcome"] = "cancelled"
            fields["duration_ms"] = round((time.perf_counter() - start) * 1000, 3)
            self._emit(self.level, fields)
            raise
        if logger.isEnabledFor(self.level):
            fields["outcome"] = "ok"
            fields["duration_ms"] = round((time.perf_counter() - start) * 1000, 3)
            self._emit(self.level, fields)
        return result

    def __repr__(self) -> str:
        return f"LogOps(logger={self.logger.name!r})"


# ------------------------------------------------------------------------------ logs and spans


class RedactingFilter(logging.Filter):
    """A logging filter that redacts a record's message, arguments and traceback text.

    Add it to handlers (``handler.addFilter(RedactingFilter(registry))``) so every record
    they emit — from vkcompose or any library — is redacted.
    """

    def __init__(self, registry: SecretRegistry) -> None:
        super().__init__()
        self.registry = registry

    def filter(self, record: logging.LogRecord) -> bool:
        registry = self.registry
        if not len(registry):
            return True
        record.msg = registry.redact_text(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = registry.redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = registry.redact_text(record.stack_info)
        extra = getattr(record, "vkcompose", None)
        if extra is not None:
            record.vkcompose = registry.redact_value(extra)
        return True


def redact_span(span: ReadableSpan, registry: SecretRegistry) -> ReadableSpan:
    """A copy of ``span`` with its name, attributes, events, links and status redacted."""
    redact = registry.redact_value
    status = span.status
    if status.description:
        status = Status(status.status_code, registry.redact_text(status.description))
    return ReadableSpan(
        name=registry.redact_text(span.name),
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=redact(dict(span.attributes or {})),
        events=[
            Event(e.name, redact(dict(e.attributes or {})), timestamp=e.timestamp)
            for e in span.events
        ],
        links=[Link(link.context, redact(dict(link.attributes or {}))) for link in span.links],
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class RedactingSpanExporter(SpanExporter):
    """Wraps an exporter; every span is redacted (:func:`redact_span`) before it leaves."""

    def __init__(self, inner: SpanExporter, registry: SecretRegistry) -> None:
        self.inner = inner
        self.registry = registry

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if len(self.registry):
            spans = [redact_span(s, self.registry) for s in spans]
        return self.inner.export(spans)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


__all__ = [
    "REDACTED",
    "LearnSecrets",
    "LogOps",
    "RedactingFilter",
    "RedactingSpanExporter",
    "Redaction",
    "SecretRegistry",
    "learn_secrets",
    "redact_exception",
    "redact_pod",
    "redact_span",
    "refs_covered",
    "secret_env_refs",
]
