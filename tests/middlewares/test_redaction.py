"""Redaction: secret values never appear in anything emitted — logs, spans, exceptions."""

from __future__ import annotations

import base64
import json
import logging
import traceback
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from vkcompose.errors import NotFound, TemporaryError, VKComposeError
from vkcompose.middlewares.redaction import (
    REDACTED,
    LogOps,
    RedactingFilter,
    RedactingSpanExporter,
    Redaction,
    SecretRegistry,
    learn_secrets,
    redact_exception,
    redact_pod,
    secret_env_refs,
)
from vkcompose.middlewares.tracing import Tracing, configure_tracing
from vkcompose.ops import CreatePod, ListPods, Op
from vkcompose.pipeline import Handler, compose

SECRET = "hunter2-T0PS3CRET"
DB_SECRET = "db-pw-9f8e7d"
PLAIN = "not-a-secret-value"


def submitted_pod() -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "prod", "uid": "u1"},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "env": [
                        {"name": "MODE", "value": PLAIN},
                        {
                            "name": "PASSWORD",
                            "valueFrom": {"secretKeyRef": {"name": "creds", "key": "pw"}},
                        },
                    ],
                    "envFrom": [{"secretRef": {"name": "db"}, "prefix": "DB_"}],
                }
            ]
        },
    }


async def resolve_config_sources(op: Op, call_next: Handler) -> Any:
    """Stand-in for the config-sources middleware: secret refs become plain values."""
    if isinstance(op, CreatePod):
        container = op.pod["spec"]["containers"][0]
        env = [
            {"name": "MODE", "value": PLAIN},
            {"name": "PASSWORD", "value": SECRET},
            {"name": "DB_PASSWORD", "value": DB_SECRET},
        ]
        resolved = {**container, "env": env}
        del resolved["envFrom"]
        op = attrs.evolve(op, pod={**op.pod, "spec": {"containers": [resolved]}})
    return await call_next(op)


class LeakyBackend:
    """A backend careless with secrets: logs them, puts them on spans, raises with them."""

    async def create_pod(self, pod: dict[str, Any]) -> None:
        env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
        logging.getLogger("leaky.backend").warning("starting with env %s", env)
        span = trace.get_current_span()
        span.set_attribute("backend.env", str(env))
        span.add_event("env", {"PASSWORD": env["PASSWORD"]})
        try:
            raise OSError(f"connect failed: password={env['PASSWORD']}")
        except OSError as low:
            raise TemporaryError(
                f"db login with {env['DB_PASSWORD']} failed", reason="DBLogin"
            ) from low


@pytest.mark.anyio
async def test_secret_values_appear_nowhere(caplog: pytest.LogCaptureFixture) -> None:
    secrets = SecretRegistry()
    exporter = InMemorySpanExporter()
    provider = configure_tracing(
        processors=[SimpleSpanProcessor(RedactingSpanExporter(exporter, secrets))]
    )
    redaction = Redaction(secrets)
    pipeline = compose(
        redaction,
        LogOps(secrets),
        Tracing(provider, redact=secrets.redact_text),
        resolve_config_sources,
        redaction.learner(),
        backend=LeakyBackend(),
    )
    caplog.handler.addFilter(RedactingFilter(secrets))
    caplog.set_level(logging.INFO)
    with pytest.raises(TemporaryError) as caught:
        await pipeline(CreatePod(pod=submitted_pod()))
    error = caught.value
    logging.getLogger("elsewhere").exception("op failed: %s", error, exc_info=error)

    emitted = "\n".join(
        [
            caplog.text,
            *(r.getMessage() for r in caplog.records),
            *(str(getattr(r, "vkcompose", "")) for r in caplog.records),
            *(s.to_json() for s in exporter.get_finished_spans()),
            str(error),
            repr(error),
            repr(vars(error)),
            "".join(traceback.format_exception(error)),
        ]
    )
    encoded = [base64.b64encode(v.encode()).decode() for v in (SECRET, DB_SECRET)]
    for leaked in (SECRET, DB_SECRET, *encoded):
        assert leaked not in emitted
    assert REDACTED in emitted
    assert PLAIN in caplog.text  # non-secret values stay readable
    assert isinstance(error, TemporaryError) and error.reason == "DBLogin"
    assert isinstance(error.__cause__, OSError)
    # and the structured log line is there
    (line,) = [r for r in caplog.records if r.name == "vkcompose.ops"]
    fields = line.vkcompose  # type: ignore[attr-defined]
    assert fields["op"] == "pod.create" and fields["pod"] == "prod/web"
    assert fields["outcome"] == "error" and fields["duration_ms"] >= 0
    assert fields["error.type"] == "vkcompose.errors.TemporaryError"


@pytest.mark.anyio
async def test_log_line_per_op_on_success(caplog: pytest.LogCaptureFixture) -> None:
    class Ok:
        async def list_pods(self) -> list[Any]:
            return []

    caplog.set_level(logging.INFO, logger="vkcompose.ops")
    pipeline = compose(LogOps(), backend=Ok())
    await pipeline(ListPods())
    await pipeline(ListPods())
    records = [r for r in caplog.records if r.name == "vkcompose.ops"]
    assert len(records) == 2
    assert records[0].getMessage().startswith("op=pods.list pod=- outcome=ok duration_ms=")


@pytest.mark.anyio
async def test_errors_without_secrets_pass_unchanged() -> None:
    error = NotFound("pod prod/web not found")

    class Missing:
        async def list_pods(self) -> list[Any]:
            raise error

    secrets = SecretRegistry([SECRET])
    with pytest.raises(NotFound) as caught:
        await compose(Redaction(secrets), backend=Missing())(ListPods())
    assert caught.value is error


secret_text = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
filler = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789 -=:/", max_size=20)


@given(secrets=st.lists(secret_text, min_size=1, max_size=5), parts=st.lists(filler, max_size=6))
def test_redact_text_removes_every_registered_value(secrets: list[str], parts: list[str]) -> None:
    registry = SecretRegistry(secrets)
    text = ""
    for i, part in enumerate(parts):
        text += part + secrets[i % len(secrets)]
    redacted = registry.redact_text(text)
    for secret in secrets:
        assert secret not in redacted
    assert not registry.leaks(redacted)


@given(
    secret=st.text(alphabet="0123456789XYZ#", min_size=1, max_size=12),
    kind=st.sampled_from([TemporaryError, NotFound, ValueError, KeyError]),
)
def test_redact_exception_keeps_type_and_hides_value(secret: str, kind: type[Exception]) -> None:
    registry = SecretRegistry([secret])
    original = kind(f"failed: <{secret}>")
    clean = redact_exception(original, registry)
    assert type(clean) is kind
    expected = f"failed: <{REDACTED}>"
    assert str(clean) in (expected, repr(expected))  # KeyError's str is the repr of its arg
    assert repr(clean) == f"{kind.__name__}({expected!r})"
    if isinstance(clean, VKComposeError):
        assert clean.message == expected


def test_redact_exception_groups_and_unrebuildable_types() -> None:
    class Picky(Exception):
        def __init__(self, a: int, b: str) -> None:
            super().__init__(f"{a}:{b}")

    registry = SecretRegistry([SECRET])
    group = ExceptionGroup("many", [ValueError(SECRET), Picky(1, SECRET)])
    clean = redact_exception(group, registry)
    assert isinstance(clean, ExceptionGroup)
    assert SECRET not in "".join(traceback.format_exception(clean))


@pytest.mark.parametrize("secret", ["hunter2\n", "tab\there", "back\\slash", 'it\'s "both"'])
def test_a_secret_shown_escaped_is_redacted(secret: str) -> None:
    """Exceptions show arguments with repr (an OSError's filename, a KeyError), JSON bodies
    escape them: a value with a newline, a tab, a backslash or quotes is hidden there too."""
    registry = SecretRegistry([secret])
    clean = redact_exception(FileNotFoundError(2, "No such file or directory", secret), registry)
    shown = "".join(traceback.format_exception(clean)) + str(clean) + repr(clean)
    assert REDACTED in shown
    assert secret not in shown and repr(secret)[1:-1] not in shown
    body = json.dumps({"value": secret})
    assert registry.redact_text(body) == json.dumps({"value": REDACTED})
    assert registry.redact_text(repr(KeyError(secret))) == repr(KeyError(REDACTED))


def test_registry_handles_bytes_base64_and_discard() -> None:
    registry = SecretRegistry()
    registry.add(b"token-abc")
    registry.add("")
    assert registry.redact_text("Bearer token-abc") == f"Bearer {REDACTED}"
    encoded = base64.b64encode(b"token-abc").decode()
    assert registry.redact_text(f"data: {encoded}") == f"data: {REDACTED}"
    registry.discard("token-abc")
    assert len(registry) == 0 and registry.redact_text("token-abc") == "token-abc"


names = st.text(alphabet="ABCDEFGHIJ_", min_size=1, max_size=6)


@given(env=st.dictionaries(names, st.tuples(st.booleans(), secret_text), min_size=1, max_size=6))
def test_learn_secrets_registers_exactly_the_secret_sourced_values(
    env: dict[str, tuple[bool, str]],
) -> None:
    original = {
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "env": [
                        {"name": n, "valueFrom": {"secretKeyRef": {"name": "s", "key": n}}}
                        if is_secret
                        else {"name": n, "value": v}
                        for n, (is_secret, v) in env.items()
                    ],
                }
            ]
        }
    }
    resolved = {
        "spec": {
            "containers": [
                {"name": "c", "env": [{"name": n, "value": v} for n, (_, v) in env.items()]}
            ]
        }
    }
    registry = SecretRegistry(with_base64=False)
    learned = learn_secrets(original, resolved, registry)
    secret_values = {v for (is_secret, v) in env.values() if is_secret}
    assert learned == sum(1 for is_secret, _ in env.values() if is_secret)
    assert all(v in registry for v in secret_values)
    assert len(registry) == len(secret_values)


def _reference_learned(original: dict[str, Any], resolved: dict[str, Any]) -> list[str]:
    """The documented rule, written plainly: the values learn_secrets must register."""
    refs = secret_env_refs(original)
    declared = {c["name"]: {e["name"] for e in c.get("env") or ()} for c in _all(original)}
    out = []
    for c in _all(resolved):
        if c["name"] not in refs:
            continue
        names, prefixes = refs[c["name"]]
        for e in c.get("env") or ():
            new = e["name"] not in declared.get(c["name"], set())
            if e.get("value") and (
                e["name"] in names or (new and any(e["name"].startswith(p) for p in prefixes))
            ):
                out.append(e["value"])
    return out


def _all(pod: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod["spec"]
    return [c for key in ("initContainers", "containers") for c in spec.get(key) or ()]


container_env = st.lists(
    st.tuples(names, st.sampled_from(["secret", "plain", "config"]), secret_text), max_size=5
)


@given(
    containers=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]),
            container_env,
            st.lists(st.sampled_from(["", "A", "B_", "CF"]), max_size=2),
            st.lists(st.tuples(names, secret_text), max_size=4),
        ),
        min_size=1,
        max_size=3,
    ),
    init=st.booleans(),
)
def test_learn_secrets_matches_the_rule_with_prefixes_and_several_containers(
    containers: list[tuple[str, list[tuple[str, str, str]], list[str], list[tuple[str, str]]]],
    init: bool,
) -> None:
    original_list, resolved_list = [], []
    for name, env, prefixes, extra in containers:
        refs = {
            "secret": lambda n: {"secretKeyRef": {"name": "s", "key": n}},
            "config": lambda n: {"configMapKeyRef": {"name": "m", "key": n}},
        }
        original_list.append(
            {
                "name": name,
                "env": [
                    {"name": n, "value": v}
                    if kind == "plain"
                    else {"name": n, "valueFrom": refs[kind](n)}
                    for n, kind, v in env
                ],
                "envFrom": [{"secretRef": {"name": "s"}, "prefix": p} for p in prefixes],
            }
        )
        resolved_list.append(
            {"name": name, "env": [{"name": n, "value": v} for n, v in extra]
             + [{"name": n, "value": v} for n, _, v in env]}
        )  # fmt: skip
    key = "initContainers" if init else "containers"
    original = {"spec": {key: original_list[:1], "containers": original_list[1:]}}
    resolved = {"spec": {key: resolved_list[:1], "containers": resolved_list[1:]}}
    registry = SecretRegistry(with_base64=False)
    expected = _reference_learned(original, resolved)
    assert learn_secrets(original, resolved, registry) == len(expected)
    assert all(v in registry for v in expected) and len(registry) == len(set(expected))


def test_redact_pod_hides_declared_and_registered_values() -> None:
    pod = submitted_pod()
    pod["spec"]["containers"][0]["env"][1] = {"name": "PASSWORD", "value": SECRET}
    pod["spec"]["containers"][0]["env"][1]["valueFrom"] = {
        "secretKeyRef": {"name": "creds", "key": "pw"}
    }
    pod["metadata"]["annotations"] = {"note": f"pw is {DB_SECRET}"}
    registry = SecretRegistry([DB_SECRET])
    clean = redact_pod(pod, registry)
    assert SECRET not in str(clean) and DB_SECRET not in str(clean)
    assert PLAIN in str(clean)
    assert pod["metadata"]["annotations"]["note"] == f"pw is {DB_SECRET}"  # copy on write
    assert secret_env_refs(pod) == {"app": (frozenset({"PASSWORD"}), ("DB_",))}


@pytest.mark.anyio
async def test_learns_from_the_real_config_sources_middleware() -> None:
    from vkcompose.middlewares.config_sources import ResolveConfigSources, StaticSources

    sources = StaticSources(
        [
            {
                "kind": "Secret",
                "metadata": {"name": "creds", "namespace": "prod"},
                "stringData": {"pw": SECRET},
            },
            {
                "kind": "Secret",
                "metadata": {"name": "db", "namespace": "prod"},
                "stringData": {"PASSWORD": DB_SECRET},
            },
        ]
    )
    seen: list[dict[str, Any]] = []

    class Recording:
        async def create_pod(self, pod: dict[str, Any]) -> None:
            seen.append(pod)

    secrets = SecretRegistry()
    redaction = Redaction(secrets)
    pipeline = compose(
        redaction, ResolveConfigSources(sources), redaction.learner(), backend=Recording()
    )
    await pipeline(CreatePod(pod=submitted_pod()))
    assert SECRET in str(seen) and DB_SECRET in str(seen)  # the backend gets the real values
    assert SECRET in secrets and DB_SECRET in secrets
    assert PLAIN not in secrets
    assert secrets.redact_text(str(seen)).count(REDACTED) == 2


# --- learning from what ResolveConfigSources reports ----------------------------------------


def _report_sources() -> Any:
    from vkcompose.middlewares.config_sources import StaticSources

    return StaticSources(
        [
            {
                "kind": "Secret",
                "metadata": {"name": "creds", "namespace": "prod", "resourceVersion": "1"},
                "stringData": {"pw": SECRET},
            },
            {
                "kind": "Secret",
                "metadata": {"name": "db", "namespace": "prod", "resourceVersion": "2"},
                "stringData": {"PASSWORD": DB_SECRET},
            },
            {
                "kind": "ConfigMap",
                "metadata": {"name": "cfg", "namespace": "prod", "resourceVersion": "3"},
                "data": {"HOST": PLAIN},
            },
        ]
    )


class _Recording:
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    async def create_pod(self, pod: dict[str, Any]) -> None:
        self.seen.append(pod)


@pytest.mark.anyio
async def test_learner_uses_the_resolver_report_values_expanded_from_secrets_included() -> None:
    from vkcompose.middlewares.config_sources import ResolveConfigSources

    pod = submitted_pod()
    container = pod["spec"]["containers"][0]
    container["env"].append({"name": "DSN", "value": "db://app:$(PASSWORD)@db"})
    container["envFrom"].append({"configMapRef": {"name": "cfg"}, "prefix": "DB_"})
    secrets = SecretRegistry(with_base64=False)
    redaction = Redaction(secrets)
    backend = _Recording()
    pipeline = compose(
        redaction, ResolveConfigSources(_report_sources()), redaction.learner(), backend=backend
    )
    await pipeline(CreatePod(pod=pod))
    env = {e["name"]: e["value"] for e in backend.seen[0]["spec"]["containers"][0]["env"]}
    assert env["DSN"] == f"db://app:{SECRET}@db" and env["DB_HOST"] == PLAIN
    # exactly the values holding Secret data: the ConfigMap value sharing the secretRef's
    # prefix is not over-redacted any more, the value built from a secret is learned whole
    assert set(secrets._values) == {SECRET, DB_SECRET, env["DSN"]}
    assert PLAIN in secrets.redact_text(str(backend.seen))
    assert SECRET not in secrets.redact_text(str(backend.seen))


async def early_resolver(op: Op, call_next: Handler) -> Any:
    """A middleware that resolves the PASSWORD secretKeyRef itself, before the resolver."""
    if isinstance(op, CreatePod):
        container = op.pod["spec"]["containers"][0]
        env = [
            {"name": "PASSWORD", "value": SECRET} if e["name"] == "PASSWORD" else e
            for e in container["env"]
        ]
        op = attrs.evolve(op, pod={**op.pod, "spec": {"containers": [{**container, "env": env}]}})
    return await call_next(op)


@pytest.mark.anyio
async def test_learner_falls_back_to_names_when_something_else_resolved_a_secret() -> None:
    """A middleware between Redaction and the resolver that resolves a secretKeyRef itself:
    the resolver's report does not cover that reference, so the learner learns by name."""
    from vkcompose.middlewares.config_sources import ResolveConfigSources

    secrets = SecretRegistry(with_base64=False)
    redaction = Redaction(secrets)
    backend = _Recording()
    pipeline = compose(
        redaction,
        early_resolver,
        ResolveConfigSources(_report_sources()),
        redaction.learner(),
        backend=backend,
    )
    await pipeline(CreatePod(pod=submitted_pod()))
    assert SECRET in secrets and DB_SECRET in secrets


@pytest.mark.anyio
async def test_learner_ignores_a_report_about_another_pod() -> None:
    """A middleware after the resolver that rewrites the pod again: the report describes the
    resolver's output, not what reaches the learner, so the learner learns by name."""
    from vkcompose.middlewares.config_sources import ResolveConfigSources

    async def late_rewriter(op: Op, call_next: Handler) -> Any:
        if isinstance(op, CreatePod):
            container = op.pod["spec"]["containers"][0]
            env = [*container["env"], {"name": "PASSWORD", "value": "rotated-" + SECRET}]
            op = attrs.evolve(
                op, pod={**op.pod, "spec": {"containers": [{**container, "env": env}]}}
            )
        return await call_next(op)

    secrets = SecretRegistry(with_base64=False)
    redaction = Redaction(secrets)
    pipeline = compose(
        redaction,
        ResolveConfigSources(_report_sources()),
        late_rewriter,
        redaction.learner(),
        backend=_Recording(),
    )
    await pipeline(CreatePod(pod=submitted_pod()))
    assert "rotated-" + SECRET in secrets  # learned by name from the pod that reached it


secret_words = st.text(alphabet="QXZ#$", min_size=3, max_size=6).map(lambda s: "S" + s)
plain_words = st.text(alphabet="abc-", max_size=5)


@given(
    env=st.lists(
        st.tuples(
            names,
            st.sampled_from(["secret", "config", "plain", "ref"]),
            st.sampled_from(["k1", "k2"]),
            plain_words,
        ),
        max_size=6,
    ),
    prefixes=st.lists(st.sampled_from(["", "X_", "A"]), max_size=2),
    config_prefix=st.sampled_from([None, "", "X_"]),
    secret_data=st.fixed_dictionaries({"k1": secret_words, "k2": secret_words}),
)
@pytest.mark.anyio
async def test_no_secret_value_survives_redaction_of_the_resolved_pod(
    env: list[tuple[str, str, str, str]],
    prefixes: list[str],
    config_prefix: str | None,
    secret_data: dict[str, str],
) -> None:
    """Whatever the pod does with Secret data (keys, envFrom with prefixes, $(VAR) references
    to them in env and args), the learner registers enough that redacting the resolved pod
    leaves none of it."""
    from vkcompose.middlewares.config_sources import ResolveConfigSources, StaticSources

    store = StaticSources(
        [
            {"kind": "Secret", "metadata": {"name": "s", "namespace": "prod",
                                            "resourceVersion": "1"}, "stringData": secret_data},
            {"kind": "ConfigMap", "metadata": {"name": "m", "namespace": "prod",
                                               "resourceVersion": "1"},
             "data": {"k1": "cfg-one", "k2": "cfg-two"}},
        ]
    )  # fmt: skip
    entries: list[dict[str, Any]] = []
    for name, kind, key, text in env:
        if kind == "secret":
            entries.append({"name": name, "valueFrom": {"secretKeyRef": {"name": "s", "key": key}}})
        elif kind == "config":
            entries.append(
                {"name": name, "valueFrom": {"configMapKeyRef": {"name": "m", "key": key}}}
            )
        elif kind == "ref":
            entries.append({"name": name, "value": f"{text}$(A)$(Xk1)$(k2)"})
        else:
            entries.append({"name": name, "value": text})
    env_from: list[dict[str, Any]] = [{"secretRef": {"name": "s"}, "prefix": p} for p in prefixes]
    if config_prefix is not None:
        env_from.append({"configMapRef": {"name": "m"}, "prefix": config_prefix})
    pod = {
        "metadata": {"name": "web", "namespace": "prod"},
        "spec": {"containers": [{"name": "app", "env": entries, "envFrom": env_from,
                                 "args": ["$(A)", "$(B)", "$(k1)"]}]},
    }  # fmt: skip
    secrets = SecretRegistry(with_base64=False)
    redaction = Redaction(secrets)
    backend = _Recording()
    pipeline = compose(redaction, ResolveConfigSources(store), redaction.learner(), backend=backend)
    await pipeline(CreatePod(pod=pod))
    clean = secrets.redact_text(str(backend.seen))
    for value in secret_data.values():
        assert value not in clean


@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["add", "discard"]), st.sampled_from(["a", "YQ==", "WVE9PQ==", "b"])
        ),
        max_size=12,
    )
)
def test_registry_adds_and_discards_like_plain_sets(steps: list[tuple[str, str]]) -> None:
    """Re-adding a known value is a shortcut; the registered values are always what plain set
    arithmetic on each value and its base64 form gives (values chosen so that one value is the
    base64 form of another)."""
    registry = SecretRegistry()
    model: set[str] = set()
    for action, value in steps:
        forms = {value, base64.b64encode(value.encode()).decode()}
        if action == "add":
            registry.add(value)
            model |= forms
        else:
            registry.discard(value)
            model -= forms
        assert set(registry._values) == model
        assert all((v in registry) == (v in model) for v in ("a", "YQ==", "WVE9PQ==", "b"))


def test_derives_from_follows_only_recorded_rewrites() -> None:
    import contextvars

    from vkcompose.middlewares.secret_report import REFS_KEPT, derives_from

    original: dict[str, Any] = {"n": 0}
    first: dict[str, Any] = {"n": 1}
    second: dict[str, Any] = {"n": 2}
    stranger: dict[str, Any] = {"n": 3}

    def check() -> None:
        assert derives_from(original, original)
        assert not derives_from(first, original)
        REFS_KEPT.set((first, original, REFS_KEPT.get()))
        assert derives_from(first, original)
        assert not derives_from(second, original)  # made from first by an unrecorded rewrite
        REFS_KEPT.set((second, first, REFS_KEPT.get()))
        assert derives_from(second, original) and derives_from(second, first)
        assert not derives_from(stranger, original)
        assert not derives_from(original, second)  # never backwards

    contextvars.copy_context().run(check)
    assert REFS_KEPT.get() is None


@pytest.mark.anyio
async def test_learner_in_the_default_order_and_with_a_rewrite_between_resolvers() -> None:
    """DownwardAPI and ServiceLinks record that they keep Secret references, so the learner
    trusts the resolver's report in the default order; a middleware between them and the
    resolver that resolves a secretKeyRef itself breaks that chain, and the learner falls back
    to names — the secret it resolved is still learned."""
    from vkcompose.middlewares.config_sources import ResolveConfigSources
    from vkcompose.middlewares.downward_api import DownwardAPI
    from vkcompose.middlewares.service_links import ServiceLinks, StaticServices

    def pod() -> dict[str, Any]:
        p = submitted_pod()
        p["spec"]["containers"][0]["env"].append(
            {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
        )
        return p

    services = StaticServices(
        [{"metadata": {"name": "db", "namespace": "prod"}, "spec": {"clusterIP": "10.0.0.9"}}]
    )
    for between in ([], [early_resolver]):
        secrets = SecretRegistry(with_base64=False)
        redaction = Redaction(secrets)
        backend = _Recording()
        pipeline = compose(
            redaction,
            DownwardAPI(),
            ServiceLinks(services),
            *between,
            ResolveConfigSources(_report_sources()),
            redaction.learner(),
            backend=backend,
        )
        await pipeline(CreatePod(pod=pod()))
        assert SECRET in secrets and DB_SECRET in secrets
        assert SECRET not in secrets.redact_text(str(backend.seen))
        if not between:  # exactly the Secret data (learning by name over-redacts DB_*)
            assert set(secrets._values) == {SECRET, DB_SECRET}
