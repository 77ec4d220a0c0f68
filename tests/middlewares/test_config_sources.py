"""ConfigMap/Secret env, envFrom and the final expansion, checked against the Kubernetes docs."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vkcompose.errors import InvalidInput
from vkcompose.middlewares.config_sources import (
    ConfigError,
    ResolveConfigSources,
    StaticSources,
    resolve_env,
    resolve_pod,
    secret_values,
)
from vkcompose.middlewares.events import RecordingEvents
from vkcompose.ops import CreatePod, DeletePod, UpdatePod
from vkcompose.pipeline import compose
from vkcompose.podspec.expansion import dependent_env

NS = "default"
SECRET_PASSWORD = "39528$vdg7Jb"


def configmap(name: str, data: dict[str, str], ns: str = NS) -> dict[str, Any]:
    return {"kind": "ConfigMap", "metadata": {"namespace": ns, "name": name}, "data": data}


def secret(name: str, data: dict[str, str], ns: str = NS) -> dict[str, Any]:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {"kind": "Secret", "metadata": {"namespace": ns, "name": name}, "data": encoded}


def sources() -> StaticSources:
    """The objects of the docs' "Configure a Pod to use a ConfigMap" and Secret tasks."""
    return StaticSources(
        [
            configmap(
                "special-config",
                {"special.how": "very", "SPECIAL_LEVEL": "very", "SPECIAL_TYPE": "charm"},
            ),
            configmap("env-config", {"log_level": "INFO"}),
            configmap("myconfig", {"1badkey": "a", "2alsobad": "b", "good": "c"}),
            secret("backend-user", {"backend-username": "backend-admin"}),
            secret("db-user", {"db-username": "db-admin"}),
            secret("test-secret", {"username": "my-app", "password": SECRET_PASSWORD}),
        ]
    )


def pod_with(container: dict[str, Any], ns: str = NS) -> dict[str, Any]:
    return {
        "metadata": {"name": "dapi-test-pod", "namespace": ns},
        "spec": {"containers": [{"name": "test-container", **container}]},
    }


def cm_ref(name: str, key: str, optional: bool | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": name, "key": key}
    if optional is not None:
        ref["optional"] = optional
    return {"configMapKeyRef": ref}


def secret_ref(name: str, key: str, optional: bool | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": name, "key": key}
    if optional is not None:
        ref["optional"] = optional
    return {"secretKeyRef": ref}


def resolve(container: dict[str, Any], **kwargs: Any) -> dict[str, str]:
    pod = pod_with(container)
    return resolve_env(pod, pod["spec"]["containers"][0], sources(), **kwargs).as_dict()


def test_single_and_multiple_configmap_keys() -> None:
    env = [
        {"name": "SPECIAL_LEVEL_KEY", "valueFrom": cm_ref("special-config", "special.how")},
        {"name": "LOG_LEVEL", "valueFrom": cm_ref("env-config", "log_level")},
    ]
    assert resolve({"env": env}) == {"SPECIAL_LEVEL_KEY": "very", "LOG_LEVEL": "INFO"}


def test_envfrom_configmap_and_command_expansion() -> None:
    """The docs' ``dapi-test-pod`` using ``$(SPECIAL_LEVEL_KEY) $(SPECIAL_TYPE_KEY)`` in command."""
    pod = pod_with(
        {
            "command": ["/bin/echo", "$(SPECIAL_LEVEL_KEY) $(SPECIAL_TYPE_KEY)"],
            "env": [
                {
                    "name": "SPECIAL_LEVEL_KEY",
                    "valueFrom": cm_ref("special-config", "SPECIAL_LEVEL"),
                },
                {"name": "SPECIAL_TYPE_KEY", "valueFrom": cm_ref("special-config", "SPECIAL_TYPE")},
            ],
        }
    )
    resolved = resolve_env(pod, pod["spec"]["containers"][0], sources())
    assert resolved.command == ["/bin/echo", "very charm"]
    assert resolved.args is None

    all_keys = resolve({"envFrom": [{"configMapRef": {"name": "special-config"}}]})
    assert all_keys["SPECIAL_LEVEL"] == "very" and all_keys["SPECIAL_TYPE"] == "charm"
    assert "special.how" in all_keys  # a valid (if unusual) name


def test_envfrom_prefix_and_override_order() -> None:
    container = {
        "envFrom": [
            {"prefix": "CONFIG_", "configMapRef": {"name": "special-config"}},
            {"secretRef": {"name": "test-secret"}},
            {"configMapRef": {"name": "env-config"}},
        ],
        "env": [
            {"name": "EARLY", "value": "$(username)/$(log_level)"},
            {"name": "username", "value": "override"},
            {"name": "LATE", "value": "$(username)"},
        ],
    }
    env = resolve(container)
    assert env["CONFIG_SPECIAL_LEVEL"] == "very"
    assert env["CONFIG_special.how"] == "very"
    assert env["password"] == SECRET_PASSWORD  # values from sources are never expanded
    assert env["EARLY"] == "my-app/INFO"
    assert env["username"] == "override"
    assert env["LATE"] == "override"


def test_secret_env_from_the_docs() -> None:
    env = [
        {"name": "SECRET_USERNAME", "valueFrom": secret_ref("backend-user", "backend-username")},
        {"name": "DB_USERNAME", "valueFrom": secret_ref("db-user", "db-username")},
    ]
    pod = pod_with({"env": env, "envFrom": [{"secretRef": {"name": "test-secret"}}]})
    resolved = resolve_env(pod, pod["spec"]["containers"][0], sources())
    assert resolved.as_dict() == {
        "username": "my-app",
        "password": SECRET_PASSWORD,
        "SECRET_USERNAME": "backend-admin",
        "DB_USERNAME": "db-admin",
    }
    assert resolved.secret_names == {"username", "password", "SECRET_USERNAME", "DB_USERNAME"}
    assert SECRET_PASSWORD not in repr(resolved)
    assert "backend-admin" not in repr(resolved)


def test_secret_taint_follows_references() -> None:
    pod = pod_with(
        {
            "envFrom": [{"secretRef": {"name": "test-secret"}}],
            "env": [
                {"name": "DSN", "value": "user:$(password)@db"},
                {"name": "PLAIN", "value": "$(NOPE)"},
                {"name": "password", "value": "now-public"},
            ],
        }
    )
    resolved = resolve_env(pod, pod["spec"]["containers"][0], sources())
    assert resolved.as_dict()["DSN"] == f"user:{SECRET_PASSWORD}@db"
    assert resolved.secret_names == {"username", "DSN"}


def test_invalid_envfrom_names_are_skipped_and_reported() -> None:
    pod = pod_with({"envFrom": [{"configMapRef": {"name": "myconfig"}}]})
    resolved = resolve_env(pod, pod["spec"]["containers"][0], sources())
    assert resolved.as_dict() == {"good": "c"}
    assert [s.message for s in resolved.skipped] == [
        "Keys [1badkey, 2alsobad] from the EnvFrom configMap default/myconfig were skipped "
        "since they are considered invalid environment variable names."
    ]
    relaxed = resolve_env(pod, pod["spec"]["containers"][0], sources(), strict_names=False)
    assert relaxed.as_dict() == {"1badkey": "a", "2alsobad": "b", "good": "c"}
    prefixed = pod_with({"envFrom": [{"prefix": "P_", "configMapRef": {"name": "myconfig"}}]})
    assert resolve_env(prefixed, prefixed["spec"]["containers"][0], sources()).skipped == ()


@pytest.mark.parametrize(
    ("container", "message"),
    [
        ({"envFrom": [{"configMapRef": {"name": "x"}}]}, 'configmap "x" not found'),
        ({"envFrom": [{"secretRef": {"name": "x"}}]}, 'secret "x" not found'),
        ({"env": [{"name": "A", "valueFrom": cm_ref("x", "k")}]}, 'configmap "x" not found'),
        ({"env": [{"name": "A", "valueFrom": secret_ref("x", "k")}]}, 'secret "x" not found'),
        (
            {"env": [{"name": "A", "valueFrom": cm_ref("env-config", "k")}]},
            "couldn't find key k in ConfigMap default/env-config",
        ),
        (
            {"env": [{"name": "A", "valueFrom": secret_ref("test-secret", "k")}]},
            "couldn't find key k in Secret default/test-secret",
        ),
        (
            {"env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]},
            'container "test-container": env A: its fieldRef/resourceFieldRef is not resolved',
        ),
    ],
)
def test_missing_mandatory_sources_use_the_kubelet_messages(
    container: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        resolve(container)
    assert str(info.value).startswith(message)


def test_optional_sources_leave_variables_unset() -> None:
    container = {
        "envFrom": [
            {"configMapRef": {"name": "x", "optional": True}},
            {"secretRef": {"name": "y", "optional": True}},
        ],
        "env": [
            {"name": "A", "valueFrom": cm_ref("x", "k", optional=True)},
            {"name": "B", "valueFrom": cm_ref("env-config", "nope", optional=True)},
            {"name": "C", "valueFrom": secret_ref("y", "k", optional=True)},
            {"name": "D", "valueFrom": secret_ref("test-secret", "nope", optional=True)},
            {"name": "E", "value": "$(A)$(B)"},
            {"name": "F"},
        ],
    }
    assert resolve(container) == {"E": "$(A)$(B)", "F": ""}


def test_service_env_is_referable_and_does_not_override() -> None:
    services = {"REDIS_SERVICE_HOST": "10.0.0.11", "LOG_LEVEL": "from-service"}
    env = [
        {"name": "REDIS", "value": "redis://$(REDIS_SERVICE_HOST)"},
        {"name": "LOG_LEVEL", "valueFrom": cm_ref("env-config", "log_level")},
    ]
    got = resolve({"env": env, "args": ["$(LOG_LEVEL)"]}, service_env=services)
    assert got == {
        "REDIS": "redis://10.0.0.11",
        "LOG_LEVEL": "INFO",
        "REDIS_SERVICE_HOST": "10.0.0.11",
    }


def test_secret_values_decoding() -> None:
    obj = secret("s", {"a": "x"})
    obj["stringData"] = {"b": "y"}
    obj["data"]["c"] = base64.b64encode(b"\xff").decode()
    assert secret_values(obj, NS, "s") == {"a": "x", "b": "y", "c": "\ufffd"}
    obj["data"]["bad"] = "%%%not-base64"
    with pytest.raises(ConfigError) as info:
        secret_values(obj, NS, "s")
    assert "%%%" not in str(info.value) and "key bad in Secret default/s" in str(info.value)


def test_resolve_pod_rewrites_only_what_needs_it() -> None:
    pod = {
        "metadata": {"namespace": NS},
        "spec": {
            "initContainers": [
                {"name": "i", "envFrom": [{"configMapRef": {"name": "env-config"}}]}
            ],
            "containers": [
                {"name": "plain", "env": [{"name": "A", "value": "1"}], "command": ["x"]},
                {"name": "dup", "env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]},
            ],
        },
    }
    before = copy.deepcopy(pod)
    out = resolve_pod(pod, sources()).pod
    assert pod == before
    assert out["spec"]["initContainers"][0] == {
        "name": "i",
        "env": [{"name": "log_level", "value": "INFO"}],
    }
    assert out["spec"]["containers"][0] is pod["spec"]["containers"][0]
    assert out["spec"]["containers"][1]["env"] == [{"name": "A", "value": "2"}]
    untouched = {"metadata": {}, "spec": {"containers": [{"name": "c"}]}}
    assert resolve_pod(untouched, sources()).pod is untouched


def test_spec_form_keeps_kubelet_semantics() -> None:
    container = {
        "envFrom": [{"secretRef": {"name": "test-secret"}}],
        "env": [
            {"name": "FIELD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "LEVEL", "valueFrom": cm_ref("env-config", "log_level")},
            {"name": "GONE", "valueFrom": cm_ref("env-config", "nope", optional=True)},
            {"name": "REF", "value": "$(password)"},
        ],
    }
    pod = pod_with(container)
    spec_form = resolve_env(pod, pod["spec"]["containers"][0], sources(), expand_vars=False)
    assert spec_form.env == [
        {"name": "username", "value": "my-app"},
        {"name": "password", "value": SECRET_PASSWORD.replace("$", "$$")},
        container["env"][0],
        {"name": "LEVEL", "value": "INFO"},
        container["env"][3],
    ]


@pytest.mark.anyio
async def test_middleware_missing_source_then_created() -> None:
    created: list[dict[str, Any]] = []

    class Backend:
        async def create_pod(self, pod: dict[str, Any]) -> None:
            created.append(pod)

        async def delete_pod(self, pod: dict[str, Any], grace: int | None) -> None:
            created.append({"deleted": pod["metadata"]["name"]})

    store = StaticSources()
    events = RecordingEvents()
    pipeline = compose(ResolveConfigSources(store, events), backend=Backend())
    pod = pod_with(
        {
            "envFrom": [{"configMapRef": {"name": "myconfig"}}],
            "env": [{"name": "PASS", "valueFrom": secret_ref("db", "password")}],
        }
    )
    with pytest.raises(InvalidInput) as info:
        await pipeline(CreatePod(pod=pod))
    assert info.value.reason == "CreateContainerConfigError"
    assert info.value.message == 'configmap "myconfig" not found'
    assert created == []

    store.put(configmap("myconfig", {"1badkey": "a", "2alsobad": "b", "good": "c"}))
    with pytest.raises(InvalidInput, match='secret "db" not found'):
        await pipeline(CreatePod(pod=pod))
    store.put(secret("db", {"password": SECRET_PASSWORD}))
    await pipeline(CreatePod(pod=pod))
    assert created[0]["spec"]["containers"][0]["env"] == [
        {"name": "good", "value": "c"},
        {"name": "PASS", "value": SECRET_PASSWORD},
    ]
    assert "envFrom" not in created[0]["spec"]["containers"][0]
    assert [(e.type, e.reason, e.pod_key) for e in events.events] == [
        ("Warning", "InvalidEnvironmentVariableNames", (NS, "dapi-test-pod"))
    ]
    assert all(SECRET_PASSWORD not in e.message for e in events.events)
    await pipeline(DeletePod(pod=pod))
    assert created[-1] == {"deleted": "dapi-test-pod"}


@pytest.mark.anyio
async def test_middleware_errors_never_carry_secret_values() -> None:
    store = StaticSources([secret("s", {"present": SECRET_PASSWORD})])

    class Backend:
        async def update_pod(self, pod: dict[str, Any]) -> None:
            raise AssertionError("not reached")

    pod = pod_with({"env": [{"name": "X", "valueFrom": secret_ref("s", "absent")}]})
    with pytest.raises(InvalidInput) as info:
        await compose(ResolveConfigSources(store), backend=Backend())(UpdatePod(pod=pod))
    text = f"{info.value} {info.value!r} {info.value.message} {store!r}"
    assert SECRET_PASSWORD not in text
    assert "couldn't find key absent in Secret default/s" in text


# --- properties ------------------------------------------------------------------------------

names = st.sampled_from(["A", "B", "C", "D"])
values = st.text(alphabet=st.sampled_from(list("$()ABCD-x")), max_size=12)
literal_entries = st.lists(st.fixed_dictionaries({"name": names, "value": values}), max_size=8)


@given(literal_entries, st.dictionaries(names, values, max_size=3))
def test_literal_env_equals_the_sequential_model(
    env: list[dict[str, str]], services: dict[str, str]
) -> None:
    pod = pod_with({"env": env})
    got = resolve_env(pod, pod["spec"]["containers"][0], StaticSources(), service_env=services)
    expected = dependent_env(env, outer=services)
    for name, value in services.items():
        expected.setdefault(name, value)
    assert got.as_dict() == expected


source_entries = st.lists(
    st.one_of(
        st.fixed_dictionaries({"name": names, "value": values}),
        st.builds(
            lambda n, k: {"name": n, "valueFrom": cm_ref("cm", k, optional=True)},
            names,
            st.sampled_from(["a", "b", "missing"]),
        ),
        st.builds(
            lambda n, k: {"name": n, "valueFrom": secret_ref("sec", k)},
            names,
            st.sampled_from(["a", "b"]),
        ),
    ),
    max_size=8,
)


@given(
    source_entries,
    st.dictionaries(st.sampled_from(["a", "b", "A"]), values, min_size=2, max_size=3),
    st.dictionaries(st.sampled_from(["a", "b", "C"]), values, min_size=2, max_size=3),
    st.dictionaries(names, values, max_size=3),
    st.booleans(),
)
def test_spec_form_then_expansion_equals_direct_expansion(
    env: list[dict[str, Any]],
    cm_data: dict[str, str],
    secret_data: dict[str, str],
    services: dict[str, str],
    use_env_from: bool,
) -> None:
    """Rewriting in pod-spec form first never changes what the container finally sees."""
    cm_data.setdefault("a", "1")
    cm_data.setdefault("b", "2")
    secret_data.setdefault("a", "3")
    secret_data.setdefault("b", "4")
    store = StaticSources([configmap("cm", cm_data), secret("sec", secret_data)])
    container: dict[str, Any] = {"env": env, "args": ["$(A)", "$$(B)", "$(C)"]}
    if use_env_from:
        container["envFrom"] = [
            {"configMapRef": {"name": "cm"}},
            {"prefix": "X", "secretRef": {"name": "sec"}},
        ]
    pod = pod_with(container)
    direct = resolve_env(pod, pod["spec"]["containers"][0], store, service_env=services)
    rewritten = resolve_pod(pod, store, service_env=services, expand_vars=False).pod
    again = resolve_env(rewritten, rewritten["spec"]["containers"][0], StaticSources())
    assert again.as_dict() == direct.as_dict()
    assert again.args == direct.args


@pytest.mark.anyio
async def test_middleware_reuses_converted_sources_only_for_the_same_object_and_version() -> None:
    created: list[dict[str, Any]] = []

    class Backend:
        async def create_pod(self, pod: dict[str, Any]) -> None:
            created.append(pod)

    def versioned(obj: dict[str, Any], rv: str) -> dict[str, Any]:
        return {**obj, "metadata": {**obj["metadata"], "resourceVersion": rv}}

    store = StaticSources(
        [
            versioned(configmap("cm", {"a": "1", "bad key": "x"}), "1"),
            versioned(secret("s", {"pw": "one"}), "1"),
        ]
    )
    events = RecordingEvents()
    pipeline = compose(ResolveConfigSources(store, events), backend=Backend())
    pod = pod_with(
        {
            "envFrom": [
                {"configMapRef": {"name": "cm"}, "prefix": "P_"},
                {"secretRef": {"name": "s"}},
            ],
            "env": [{"name": "S", "valueFrom": secret_ref("s", "pw")}],
        }
    )

    def env() -> dict[str, str]:
        return {e["name"]: e["value"] for e in created[-1]["spec"]["containers"][0]["env"]}

    await pipeline(CreatePod(pod=pod))
    await pipeline(CreatePod(pod=pod))
    assert env() == {"P_a": "1", "pw": "one", "S": "one"}
    assert len(events.events) == 2  # skipped keys are reported for every pod, cached or not
    # A new object with the same resourceVersion (a test store, a relisted cache): not reused.
    store.put(versioned(configmap("cm", {"a": "2"}), "1"))
    store.put(versioned(secret("s", {"pw": "two"}), "1"))
    await pipeline(CreatePod(pod=pod))
    assert env() == {"P_a": "2", "pw": "two", "S": "two"}
    assert len(events.events) == 2
    # The same object changed in place under a new resourceVersion: not reused either.
    obj = store.get_configmap(NS, "cm")
    assert obj is not None
    obj["data"] = {"a": "3"}
    obj["metadata"] = {**obj["metadata"], "resourceVersion": "2"}
    await pipeline(CreatePod(pod=pod))
    assert env()["P_a"] == "3"
    # Objects without a resourceVersion are converted for every pod.
    store.put(configmap("cm", {"a": "4"}))
    await pipeline(CreatePod(pod=pod))
    store.get_configmap(NS, "cm")["data"]["a"] = "5"  # type: ignore[index]
    await pipeline(CreatePod(pod=pod))
    assert env()["P_a"] == "5"


def test_unchanged_literal_entries_are_shared_and_output_entries_are_plain() -> None:
    plain = {"name": "A", "value": "x"}
    extra = {"name": "B", "value": "y", "valueFrom": None}
    container: dict[str, Any] = {
        "env": [plain, extra, {"name": "C", "value": "$(A)"}, {"name": "A", "value": "z"}],
        "command": ["echo", "$(C)", "$(B)", "$(S)"],
    }
    pod = pod_with(container)
    before = copy.deepcopy(pod)
    got = resolve_env(pod, pod["spec"]["containers"][0], StaticSources(), service_env={"S": "s"})
    assert got.env == [
        {"name": "A", "value": "z"},
        {"name": "B", "value": "y"},
        {"name": "C", "value": "x"},
        {"name": "S", "value": "s"},
    ]
    assert got.env[0] is container["env"][3]  # passed through as is
    assert got.command == ["echo", "x", "y", "s"]
    assert pod == before


# --- cross-pod reuse: cached resolution ≡ uncached -------------------------------------------

cached_env_entries = st.lists(
    st.one_of(
        st.fixed_dictionaries({"name": names, "value": values}),
        st.builds(
            lambda n, k, o: {"name": n, "valueFrom": cm_ref("cm", k, optional=o)},
            names,
            st.sampled_from(["a", "b", "A"]),
            st.booleans(),
        ),
        st.builds(
            lambda n, k, o: {"name": n, "valueFrom": secret_ref("sec", k, optional=o)},
            names,
            st.sampled_from(["a", "b", "C"]),
            st.booleans(),
        ),
    ),
    max_size=5,
)
env_from_sources = st.lists(
    st.builds(
        lambda kind, prefix, optional: {
            ("configMapRef" if kind == "cm" else "secretRef"): {"name": kind, "optional": optional},
            "prefix": prefix,
        },
        st.sampled_from(["cm", "sec"]),
        st.sampled_from(["", "P_", "1"]),
        st.booleans(),
    ),
    max_size=3,
)
source_data = st.dictionaries(st.sampled_from(["a", "b", "A", "C", "bad key"]), values, max_size=4)
pod_steps = st.tuples(st.just("pod"), cached_env_entries, env_from_sources, st.booleans())
resolution_steps = st.lists(
    st.one_of(
        pod_steps,
        pod_steps,
        st.tuples(st.just("put"), st.sampled_from(["cm", "sec"]), source_data, st.booleans()),
        st.tuples(st.just("delete"), st.sampled_from(["cm", "sec"])),
    ),
    min_size=1,
    max_size=12,
)


@given(resolution_steps)
@pytest.mark.anyio
async def test_middleware_with_reuse_equals_uncached_resolution(
    steps: list[tuple[Any, ...]],
) -> None:
    """Reusing converted sources and merged envFrom/service-link entries across pods never
    changes a result, whatever the sources do in between (new versions, in-place changes,
    deletions); the uncached pure core is the reference."""
    from vkcompose.middlewares.service_links import add_service_links

    seen: list[dict[str, Any]] = []

    class Backend:
        async def create_pod(self, pod: dict[str, Any]) -> None:
            seen.append(pod)

    store = StaticSources(
        [
            {**configmap("cm", {"a": "1", "A": "$(B)"}), "metadata": {"namespace": NS, "name": "cm",
                                                                 "resourceVersion": "0"}},
            {**secret("sec", {"a": "s", "C": "t"}), "metadata": {"namespace": NS, "name": "sec",
                                                               "resourceVersion": "0"}},
        ]
    )  # fmt: skip
    versions = 0
    pipeline = compose(ResolveConfigSources(store, RecordingEvents()), backend=Backend())
    links = {"SVC_SERVICE_HOST": "10.0.0.1", "A": "from-link", "D": "$(A)"}
    for step in steps:
        if step[0] == "put":
            _, kind, data, in_place = step
            versions += 1
            current = store.get_configmap(NS, kind) if kind == "cm" else store.get_secret(NS, kind)
            if in_place and current is not None:  # the same object, changed under a new version
                fresh = configmap(kind, data) if kind == "cm" else secret(kind, data)
                current["data"] = fresh["data"]
                current["metadata"]["resourceVersion"] = str(versions)
            else:
                obj = configmap(kind, data) if kind == "cm" else secret(kind, data)
                obj["metadata"]["resourceVersion"] = str(versions)
                store.put(obj)
            continue
        if step[0] == "delete":
            store.delete("ConfigMap" if step[1] == "cm" else "Secret", NS, step[1])
            continue
        _, env, env_from, with_links = step
        container: dict[str, Any] = {"env": env, "envFrom": env_from, "args": ["$(A)", "$(C)"]}
        pod = pod_with(container)
        if with_links:
            pod = add_service_links(pod, links)
        try:
            expected = resolve_pod(pod, store)
        except ConfigError as e:
            with pytest.raises(InvalidInput) as caught:
                await pipeline(CreatePod(pod=pod))
            assert str(caught.value) == str(e)
            continue
        await pipeline(CreatePod(pod=pod))
        assert seen[-1] == expected.pod
