"""Volumes: planning (pure), the atomic writer (real files) and the middleware (real dirs)."""

from __future__ import annotations

import base64
import doctest
import logging
import os
import stat
import threading
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vkcompose.errors import InvalidInput, NotFound, TemporaryError, Unsupported
from vkcompose.middlewares.config_sources import StaticSources
from vkcompose.middlewares.events import RecordingEvents
from vkcompose.middlewares.redaction import SecretRegistry
from vkcompose.middlewares.volumes import (
    DEFAULT_MODE,
    FileSpec,
    KubeTokenSource,
    Ownership,
    SourceSnapshot,
    TokenCache,
    VolumeMountError,
    Volumes,
    check_path,
    plan_volume,
    read_volume,
    volume_ownership,
    write_volume,
)
from vkcompose.middlewares.volumes import downward as downward_module
from vkcompose.middlewares.volumes import plan as plan_module
from vkcompose.ops import CreatePod, DeletePod, NodeInfo, Op, UpdatePod
from vkcompose.pipeline import compose
from vkcompose.testing.clock import FakeClock

SECRET_VALUE = "s3cr3t-hunter2-value"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def stat_of(path: str | Path) -> os.stat_result:
    return os.stat(path)


def make_pod(volumes: list[dict[str, Any]], **meta: Any) -> dict[str, Any]:
    metadata = {"name": "web", "namespace": "default", "uid": "u-1", **meta}
    return {
        "metadata": metadata,
        "spec": {"containers": [{"name": "c", "image": "busybox"}], "volumes": volumes},
    }


# ---------------------------------------------------------------- path safety (pure)

_segment = st.sampled_from(["..", ".", "", "a", "b", "..data", "...", "x y", "ä", "..a"])
_paths = st.one_of(
    st.lists(_segment, min_size=1, max_size=6).map("/".join),
    st.text(alphabet=st.sampled_from(["/", ".", "a", "b", "\x00"]), max_size=12),
)


@given(path=_paths)
def test_no_checked_path_escapes_the_volume(path: str) -> None:
    base = "/vol"
    try:
        clean = check_path("v", path)
    except InvalidInput as exc:
        assert '"v"' in exc.message
        return
    assert not clean.startswith("/")
    assert ".." not in clean.split("/")
    assert not clean.startswith("..")
    joined = os.path.normpath(os.path.join(base, clean))
    assert joined.startswith(base + "/")


@pytest.mark.parametrize(
    "path",
    ["../etc/passwd", "a/../../b", "/etc/passwd", "", "..data", "..2024_x/f", "a/..", ".", "./"],
)
def test_escaping_paths_are_rejected_naming_volume_and_path(path: str) -> None:
    volume = {"name": "cfg", "configMap": {"name": "cm", "items": [{"key": "k", "path": path}]}}
    sources = SourceSnapshot(configmaps={"cm": {"data": {"k": "v"}}})
    with pytest.raises(InvalidInput) as info:
        plan_volume(make_pod([volume]), volume, sources)
    assert 'volume "cfg"' in info.value.message
    assert repr(path) in info.value.message


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(paths=st.lists(_paths, min_size=1, max_size=5))
def test_written_files_stay_inside_the_volume(tmp_path: Path, paths: list[str]) -> None:
    target = tmp_path / "vol"
    items = [{"key": "k", "path": p} for p in paths]
    volume = {"name": "vol", "configMap": {"name": "cm", "items": items}}
    try:
        payload = plan_volume(
            make_pod([volume]), volume, SourceSnapshot(configmaps={"cm": {"data": {"k": "v"}}})
        )
    except InvalidInput:
        return
    write_volume(target, payload)
    real_target = os.path.realpath(target)
    for path in payload:
        resolved = os.path.realpath(target / path)
        assert resolved.startswith(real_target + os.sep)
        assert Path(resolved).read_bytes() == b"v"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vol"]
    assert read_volume(target) == {path: b"v" for path in payload}


# ---------------------------------------------------------------- planning (pure)


def test_configmap_all_keys_with_binary_data_and_default_mode() -> None:
    volume = {"name": "cfg", "configMap": {"name": "cm"}}
    sources = SourceSnapshot(
        configmaps={"cm": {"data": {"a": "1", "b": "2"}, "binaryData": {"bin": b64("\x00\x01")}}}
    )
    payload = plan_volume(make_pod([volume]), volume, sources)
    assert {p: (s.data, s.mode) for p, s in payload.items()} == {
        "a": (b"1", DEFAULT_MODE),
        "b": (b"2", DEFAULT_MODE),
        "bin": (b"\x00\x01", DEFAULT_MODE),
    }


def test_configmap_items_modes_and_default_mode() -> None:
    volume = {
        "name": "cfg",
        "configMap": {
            "name": "cm",
            "defaultMode": 0o400,
            "items": [{"key": "a", "path": "x/a.txt", "mode": 0o640}, {"key": "b", "path": "b"}],
        },
    }
    sources = SourceSnapshot(configmaps={"cm": {"data": {"a": "1", "b": "2", "c": "3"}}})
    payload = plan_volume(make_pod([volume]), volume, sources)
    assert payload == {"x/a.txt": FileSpec(b"1", 0o640), "b": FileSpec(b"2", 0o400)}


@pytest.mark.parametrize("mode", [0o1000, -1, "0644", True])
def test_invalid_modes_are_rejected(mode: Any) -> None:
    volume = {"name": "cfg", "configMap": {"name": "cm", "defaultMode": mode}}
    with pytest.raises(InvalidInput, match='volume "cfg"'):
        plan_volume(make_pod([volume]), volume, SourceSnapshot(configmaps={"cm": {}}))


def test_missing_mandatory_configmap_has_the_kubelet_message() -> None:
    volume = {"name": "config-volume", "configMap": {"name": "special-config"}}
    with pytest.raises(VolumeMountError) as info:
        plan_volume(make_pod([volume]), volume, SourceSnapshot())
    assert info.value.reason == "FailedMount"
    assert info.value.message == (
        'MountVolume.SetUp failed for volume "config-volume" : configmap "special-config" not found'
    )


def test_missing_optional_sources_give_empty_volumes_or_skip_items() -> None:
    missing = {"name": "v", "configMap": {"name": "nope", "optional": True}}
    assert plan_volume(make_pod([missing]), missing, SourceSnapshot()) == {}
    secret = {"name": "v", "secret": {"secretName": "nope", "optional": True}}
    assert plan_volume(make_pod([secret]), secret, SourceSnapshot()) == {}
    items = {
        "name": "v",
        "configMap": {
            "name": "cm",
            "optional": True,
            "items": [{"key": "there", "path": "t"}, {"key": "gone", "path": "g"}],
        },
    }
    sources = SourceSnapshot(configmaps={"cm": {"data": {"there": "1"}}})
    assert list(plan_volume(make_pod([items]), items, sources)) == ["t"]


def test_missing_mandatory_keys_are_errors() -> None:
    volume = {"name": "v", "configMap": {"name": "cm", "items": [{"key": "gone", "path": "g"}]}}
    with pytest.raises(
        VolumeMountError, match="configmap references non-existent config key: gone"
    ):
        plan_volume(make_pod([volume]), volume, SourceSnapshot(configmaps={"cm": {"data": {}}}))
    secret = {"name": "v", "secret": {"secretName": "s", "items": [{"key": "gone", "path": "g"}]}}
    with pytest.raises(VolumeMountError, match="references non-existent secret key: gone"):
        plan_volume(make_pod([secret]), secret, SourceSnapshot(secrets={"s": {"data": {}}}))
    with pytest.raises(VolumeMountError, match='secret "s" not found'):
        plan_volume(make_pod([secret]), secret, SourceSnapshot())


def test_secret_volume_decodes_base64_and_hides_content() -> None:
    volume = {"name": "creds", "secret": {"secretName": "s", "defaultMode": 0o400}}
    sources = SourceSnapshot(secrets={"s": {"data": {"password": b64(SECRET_VALUE)}}})
    payload = plan_volume(make_pod([volume]), volume, sources)
    assert payload["password"].data == SECRET_VALUE.encode()
    assert payload["password"].mode == 0o400
    assert SECRET_VALUE not in repr(payload) and SECRET_VALUE not in repr(sources)


def test_bad_secret_base64_does_not_leak_the_value() -> None:
    volume = {"name": "creds", "secret": {"secretName": "s"}}
    sources = SourceSnapshot(secrets={"s": {"data": {"k": SECRET_VALUE + "!"}}})
    with pytest.raises(VolumeMountError) as info:
        plan_volume(make_pod([volume]), volume, sources)
    assert SECRET_VALUE not in str(info.value)


def test_docs_configmap_volume_with_items() -> None:
    # kubernetes.io "Configure a Pod to Use a ConfigMap": items map SPECIAL_LEVEL to "keys".
    volume = {
        "name": "config-volume",
        "configMap": {
            "name": "special-config",
            "items": [{"key": "SPECIAL_LEVEL", "path": "keys"}],
        },
    }
    sources = SourceSnapshot(
        configmaps={"special-config": {"data": {"SPECIAL_LEVEL": "very", "SPECIAL_TYPE": "charm"}}}
    )
    assert plan_volume(make_pod([volume]), volume, sources) == {"keys": FileSpec(b"very")}


DOCS_DOWNWARD_POD: dict[str, Any] = {
    "metadata": {
        "name": "kubernetes-downwardapi-volume-example",
        "namespace": "default",
        "uid": "u-2",
        "labels": {"zone": "us-est-coast", "cluster": "test-cluster1", "rack": "rack-22"},
        "annotations": {"build": "two", "builder": "john-doe"},
    },
    "spec": {
        "containers": [{"name": "client-container", "image": "registry.k8s.io/busybox"}],
        "volumes": [
            {
                "name": "podinfo",
                "downwardAPI": {
                    "items": [
                        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
                    ]
                },
            }
        ],
    },
}


def test_docs_downward_api_volume_labels_and_annotations() -> None:
    pod = DOCS_DOWNWARD_POD
    payload = plan_volume(pod, pod["spec"]["volumes"][0], SourceSnapshot())
    assert payload["labels"].data == (
        b'cluster="test-cluster1"\nrack="rack-22"\nzone="us-est-coast"'
    )
    assert payload["annotations"].data == b'build="two"\nbuilder="john-doe"'


def test_downward_api_escaping_single_fields_and_unsupported_paths() -> None:
    volume = {
        "name": "info",
        "downwardAPI": {
            "items": [
                {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                {"path": "note", "fieldRef": {"fieldPath": "metadata.annotations['note']"}},
                {"path": "all", "fieldRef": {"fieldPath": "metadata.annotations"}},
            ]
        },
    }
    pod = make_pod([volume], annotations={"note": 'say "hi"\n\tbye'})
    payload = plan_volume(pod, volume, SourceSnapshot())
    assert payload["name"].data == b"web"
    assert payload["note"].data == b'say "hi"\n\tbye'
    assert payload["all"].data == b'note="say \\"hi\\"\\n\\tbye"'
    bad = {
        "name": "info",
        "downwardAPI": {"items": [{"path": "ip", "fieldRef": {"fieldPath": "status.podIP"}}]},
    }
    # the API server rejects such a pod; one that gets here fails its SetUp, as the kubelet's
    with pytest.raises(VolumeMountError, match=r"unsupported fieldPath: status\.podIP"):
        plan_volume(pod, bad, SourceSnapshot())


def test_docs_projected_volume() -> None:
    # kubernetes.io "Projected Volumes": secret + downwardAPI (labels, cpu_limit) + configMap.
    volume = {
        "name": "all-in-one",
        "projected": {
            "sources": [
                {
                    "secret": {
                        "name": "mysecret",
                        "items": [{"key": "username", "path": "my-group/my-username"}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                            {
                                "path": "cpu_limit",
                                "resourceFieldRef": {
                                    "containerName": "container-test",
                                    "resource": "limits.cpu",
                                },
                            },
                        ]
                    }
                },
                {
                    "configMap": {
                        "name": "myconfigmap",
                        "items": [{"key": "config", "path": "my-group/my-config"}],
                    }
                },
            ]
        },
    }
    pod = make_pod([volume], labels={"app": "demo"})
    pod["spec"]["containers"] = [{"name": "container-test", "image": "busybox"}]
    sources = SourceSnapshot(
        configmaps={"myconfigmap": {"data": {"config": "cfg-data"}}},
        secrets={"mysecret": {"data": {"username": b64("admin")}}},
    )
    payload = plan_volume(pod, volume, sources, allocatable={"cpu": "3500m"})
    assert {p: s.data for p, s in payload.items()} == {
        "my-group/my-username": b"admin",
        "labels": b'app="demo"',
        "cpu_limit": b"4",
        "my-group/my-config": b"cfg-data",
    }


def test_projected_collects_errors_and_skips_optional() -> None:
    volume = {
        "name": "p",
        "projected": {
            "sources": [
                {"configMap": {"name": "a"}},
                {"secret": {"name": "b"}},
                {"configMap": {"name": "c", "optional": True}},
            ]
        },
    }
    with pytest.raises(VolumeMountError) as info:
        plan_volume(make_pod([volume]), volume, SourceSnapshot())
    assert info.value.detail == '[configmap "a" not found, secret "b" not found]'


def test_projected_conflicting_paths_are_rejected() -> None:
    volume = {
        "name": "p",
        "projected": {
            "sources": [
                {"configMap": {"name": "a", "items": [{"key": "k", "path": "x"}]}},
                {"configMap": {"name": "a", "items": [{"key": "k", "path": "x/y"}]}},
            ]
        },
    }
    sources = SourceSnapshot(configmaps={"a": {"data": {"k": "v"}}})
    with pytest.raises(InvalidInput, match="conflicting paths"):
        plan_volume(make_pod([volume]), volume, sources)


def test_service_account_token_projection_modes() -> None:
    volume = {
        "name": "token",
        "projected": {
            "defaultMode": 0o420,
            "sources": [{"serviceAccountToken": {"path": "token", "audience": "vault"}}],
        },
    }
    seen: list[tuple[str, int]] = []

    def token(audience: str, expiration: int) -> str:
        seen.append((audience, expiration))
        return SECRET_VALUE

    payload = plan_volume(make_pod([volume]), volume, SourceSnapshot(), token=token)
    assert payload == {"token": FileSpec(SECRET_VALUE.encode(), 0o420)}
    assert seen == [("vault", 3600)]
    pod = make_pod([volume])
    pod["spec"]["securityContext"] = {"fsGroup": 2000, "runAsUser": 1000}
    payload = plan_volume(pod, volume, SourceSnapshot(), token="t")
    assert payload["token"].mode == 0o600 and payload["token"].owner == 1000
    with pytest.raises(VolumeMountError, match="no token source"):
        plan_volume(make_pod([volume]), volume, SourceSnapshot())


def test_volume_ownership() -> None:
    pod = make_pod([])
    assert volume_ownership(pod) == Ownership()
    pod["spec"]["securityContext"] = {"fsGroup": 5, "runAsUser": 7}
    assert volume_ownership(pod) == Ownership(7, 5)
    pod["spec"]["containers"].append(
        {"name": "d", "image": "x", "securityContext": {"runAsUser": 8}}
    )
    assert volume_ownership(pod) == Ownership(None, 5)


def test_doctests() -> None:
    for module in (plan_module, downward_module):
        assert doctest.testmod(module).failed == 0


# ---------------------------------------------------------------- atomic writer (real files)


def test_writer_layout_update_and_no_op(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    assert write_volume(target, {"a": FileSpec(b"1"), "d/e": FileSpec(b"2", 0o600)})
    data_dir = os.readlink(target / "..data")
    assert data_dir.startswith("..") and (target / data_dir).is_dir()
    assert os.readlink(target / "a") == "..data/a"
    assert os.readlink(target / "d") == "..data/d"
    assert (target / "d" / "e").read_bytes() == b"2"
    assert stat.S_IMODE((target / "d/e").stat().st_mode) == 0o600
    assert stat.S_IMODE((target / "a").stat().st_mode) == 0o644
    assert stat.S_IMODE((target / data_dir).stat().st_mode) == 0o755

    assert not write_volume(target, {"a": FileSpec(b"1"), "d/e": FileSpec(b"2", 0o600)})
    assert os.readlink(target / "..data") == data_dir

    assert write_volume(target, {"a": FileSpec(b"1"), "d/e": FileSpec(b"2", 0o640)})
    previous = os.readlink(target / "..data")
    assert previous != data_dir and (target / data_dir).exists()  # kept until the next update
    assert write_volume(target, {"a": FileSpec(b"changed"), "f": FileSpec(b"3")})
    new_dir = os.readlink(target / "..data")
    assert new_dir != previous and not (target / data_dir).exists()
    assert not os.path.lexists(target / "d")
    assert read_volume(target) == {"a": b"changed", "f": b"3"}
    assert sorted(p.name for p in target.iterdir()) == sorted(
        ["..data", new_dir, previous, "a", "f"]
    )
    assert write_volume(target, {"a": FileSpec(b"x")}, keep_previous=False)
    assert sorted(p.name for p in target.iterdir()) == sorted(
        ["..data", os.readlink(target / "..data"), "a"]
    )


def test_writer_empty_payload(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    assert write_volume(target, {})
    assert read_volume(target) == {}
    assert not write_volume(target, {})


def test_readers_never_see_a_half_written_volume(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    size = 128 * 1024
    names = ["a", "b", "sub/c"]

    def payload(version: int) -> dict[str, FileSpec]:
        return {n: FileSpec(bytes([65 + version % 26]) * size) for n in names}

    write_volume(target, payload(0))
    stop = threading.Event()
    problems: list[str] = []
    reads = 0

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            for name in names:
                try:
                    content = (target / name).read_bytes()
                except OSError as exc:
                    problems.append(f"{name}: {exc!r}")
                    continue
                if len(content) != size or len(set(content)) != 1:
                    problems.append(f"{name}: torn content")
            reads += 1

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for version in range(1, 50):
            assert write_volume(target, payload(version))
    finally:
        stop.set()
        thread.join(timeout=30)
    assert reads > 0
    assert problems == []
    assert (target / "a").read_bytes() == payload(49)["a"].data


def test_ownership_with_fs_group(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("this test needs root to chown (the suite runs as root)")
    target = tmp_path / "vol"
    write_volume(
        target,
        {"k": FileSpec(b"v", 0o400), "dir/t": FileSpec(b"t", 0o600, owner=4321)},
        owner=Ownership(uid=1234, gid=2345),
    )
    info = (target / "k").stat()
    assert (info.st_uid, info.st_gid) == (1234, 2345)
    assert stat.S_IMODE(info.st_mode) == 0o440
    token = (target / "dir" / "t").stat()
    assert (token.st_uid, token.st_gid, stat.S_IMODE(token.st_mode)) == (4321, 2345, 0o640)
    data_dir = (target / "..data").stat()
    assert data_dir.st_gid == 2345 and data_dir.st_mode & stat.S_ISGID
    assert not write_volume(
        target,
        {"k": FileSpec(b"v", 0o400), "dir/t": FileSpec(b"t", 0o600, owner=4321)},
        owner=Ownership(uid=1234, gid=2345),
    )


# ---------------------------------------------------------------- middleware (real dirs)


@attrs.define
class Recorder:
    """A backend recording the volume paths it receives."""

    created: list[dict[str, str]] = attrs.field(factory=list)
    updated: list[dict[str, str]] = attrs.field(factory=list)
    deleted: int = 0
    missing: bool = False

    async def create_pod(self, pod: dict[str, Any], /, *, volume_paths: Any = None) -> None:
        self.created.append(dict(volume_paths))

    async def update_pod(self, pod: dict[str, Any], /, *, volume_paths: Any = None) -> None:
        self.updated.append(dict(volume_paths))

    async def delete_pod(self, pod: dict[str, Any], grace: int | None, /) -> None:
        if self.missing:
            raise NotFound("no such pod")
        self.deleted += 1


@attrs.define
class Sources:
    """An async SourceReader over mutable dicts."""

    configmaps: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    secrets: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    reads: int = 0

    async def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads += 1
        return self.configmaps.get(name)

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads += 1
        return self.secrets.get(name)


@attrs.define
class Events:
    events: list[tuple[str, str, str]] = attrs.field(factory=list)

    def emit(self, pod: dict[str, Any], *, type: str, reason: str, message: str) -> None:
        self.events.append((type, reason, message))


@attrs.define
class FakeTokens:
    issued: int = 0

    async def token(
        self, namespace: str, account: str, audience: str, expiration: int, pod: Any, /
    ) -> str:
        self.issued += 1
        return f"token-{self.issued}-{namespace}-{account}-{audience}-{expiration}"


FULL_VOLUMES: list[dict[str, Any]] = [
    {"name": "config", "configMap": {"name": "cm"}},
    {"name": "creds", "secret": {"secretName": "s", "defaultMode": 0o400}},
    {
        "name": "info",
        "downwardAPI": {
            "items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]
        },
    },
    {
        "name": "proj",
        "projected": {
            "sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 600}},
                {"configMap": {"name": "cm", "items": [{"key": "a", "path": "cfg/a"}]}},
            ]
        },
    },
    {"name": "scratch", "emptyDir": {}},
]


@pytest.mark.anyio
async def test_middleware_materializes_passes_paths_and_cleans_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    registry = SecretRegistry()
    sources = Sources(
        configmaps={"cm": {"data": {"a": "1"}}}, secrets={"s": {"data": {"pw": b64(SECRET_VALUE)}}}
    )
    tokens = FakeTokens()
    events = Events()
    volumes = Volumes(tmp_path / "pods", sources, tokens, events, secrets=registry)
    backend = Recorder()
    pipeline = compose(volumes, backend=backend)
    pod = make_pod(FULL_VOLUMES, labels={"app": "web"})
    await pipeline(CreatePod(pod=pod))

    pod_dir = tmp_path / "pods" / "default_web_u-1"
    assert stat.S_IMODE(pod_dir.stat().st_mode) == 0o700
    paths = backend.created[0]
    assert paths == {v["name"]: str(pod_dir / "volumes" / v["name"]) for v in FULL_VOLUMES}
    assert read_volume(Path(paths["config"])) == {"a": b"1"}
    assert read_volume(Path(paths["creds"])) == {"pw": SECRET_VALUE.encode()}
    assert stat.S_IMODE((Path(paths["creds"]) / "pw").stat().st_mode) == 0o400
    assert (Path(paths["info"]) / "labels").read_text() == 'app="web"'
    assert (Path(paths["proj"]) / "token").read_text() == "token-1-default-default--600"
    assert (Path(paths["proj"]) / "cfg" / "a").read_text() == "1"
    scratch = Path(paths["scratch"])
    assert stat.S_IMODE(stat_of(scratch).st_mode) == 0o777
    (scratch / "keep").write_text("me")

    # Update: labels change -> downward file changes; emptyDir content survives.
    await pipeline(UpdatePod(pod=make_pod(FULL_VOLUMES, labels={"app": "api"})))
    assert (Path(paths["info"]) / "labels").read_text() == 'app="api"'
    assert (scratch / "keep").read_text() == "me"
    assert backend.updated == [paths]

    await pipeline(DeletePod(pod=pod))
    assert backend.deleted == 1 and not pod_dir.exists()

    emitted = caplog.text + repr(events.events)
    assert SECRET_VALUE not in emitted and "token-1" not in emitted
    assert SECRET_VALUE in registry and "token-1-default-default--600" in registry
    assert "1" not in registry  # ConfigMap content is not secret


@pytest.mark.anyio
async def test_missing_source_fails_mount_then_succeeds_when_created(tmp_path: Path) -> None:
    sources = Sources()
    events = Events()
    backend = Recorder()
    pipeline = compose(Volumes(tmp_path, sources, events=events), backend=backend)
    pod = make_pod([{"name": "config", "configMap": {"name": "cm"}}])
    with pytest.raises(VolumeMountError) as info:
        await pipeline(CreatePod(pod=pod))
    assert backend.created == []
    assert events.events == [
        (
            "Warning",
            "FailedMount",
            'MountVolume.SetUp failed for volume "config" : configmap "cm" not found',
        )
    ]
    assert info.value.message == events.events[0][2]
    sources.configmaps["cm"] = {"data": {"k": "v"}}
    await pipeline(CreatePod(pod=pod))
    assert read_volume(Path(backend.created[0]["config"])) == {"k": b"v"}


@pytest.mark.anyio
async def test_refresh_updates_sources_and_keeps_content_when_source_vanishes(
    tmp_path: Path,
) -> None:
    sources = Sources(configmaps={"cm": {"data": {"k": "v1"}}})
    events = Events()
    volumes = Volumes(tmp_path, sources, events=events)
    backend = Recorder()
    pod = make_pod([{"name": "config", "configMap": {"name": "cm"}}])
    await compose(volumes, backend=backend)(CreatePod(pod=pod))
    target = Path(backend.created[0]["config"])
    first = os.readlink(target / "..data")

    await volumes.refresh()
    assert os.readlink(target / "..data") == first  # unchanged: no swap

    sources.configmaps["cm"] = {"data": {"k": "v2", "new": "n"}}
    await volumes.refresh(pod)
    assert read_volume(target) == {"k": b"v2", "new": b"n"}

    del sources.configmaps["cm"]
    await volumes.refresh()
    assert read_volume(target) == {"k": b"v2", "new": b"n"}
    assert events.events[-1][1] == "FailedMount"


@pytest.mark.anyio
async def test_tokens_rotate_at_80_percent_of_their_lifetime(tmp_path: Path) -> None:
    clock = FakeClock()
    tokens = FakeTokens()
    volumes = Volumes(tmp_path, Sources(), tokens, clock=clock.time)
    pod = make_pod(
        [
            {
                "name": "t",
                "projected": {
                    "sources": [
                        {"serviceAccountToken": {"path": "token", "expirationSeconds": 1000}}
                    ]
                },
            }
        ]
    )
    paths = await volumes.materialize(pod)
    token_file = Path(paths["t"]) / "token"
    assert token_file.read_text().startswith("token-1-")
    clock.advance(799)
    await volumes.refresh()
    assert tokens.issued == 1
    clock.advance(1)
    await volumes.refresh()
    assert tokens.issued == 2 and token_file.read_text().startswith("token-2-")
    assert volumes.tokens is not None and volumes.tokens.next_refresh() == 1600

    # run(): sleeps until the next renewal is due (fake sleep), then re-syncs.
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(seconds)
        if len(sleeps) == 2:
            raise anyio.get_cancelled_exc_class()

    with pytest.raises(anyio.get_cancelled_exc_class()):
        await volumes.run(interval=60.0, sleep=fake_sleep)
    assert sleeps == [60.0, 60.0]

    await volumes.remove(pod)
    assert volumes.tokens.next_refresh() is None


@pytest.mark.anyio
async def test_token_cache_key_and_forget() -> None:
    clock = FakeClock()
    cache = TokenCache(FakeTokens(), clock=clock.time)
    pod = make_pod([])
    pod["spec"]["serviceAccountName"] = "builder"
    first = await cache.get(pod, "aud", 100)
    assert first == "token-1-default-builder-aud-100"
    assert await cache.get(pod, "aud", 100) == first
    assert await cache.get(pod, "other", 100) != first
    cache.forget("u-1")
    assert await cache.get(pod, "aud", 100) != first


@pytest.mark.anyio
async def test_a_long_lived_token_is_renewed_after_a_day() -> None:
    """The kubelet renews a token at 80 % of its lifetime or after 24 hours, whichever is
    first: a week-long token is not kept for five and a half days."""
    clock = FakeClock()
    cache = TokenCache(FakeTokens(), clock=clock.time)
    pod = make_pod([])
    week = 7 * 24 * 3600
    first = await cache.get(pod, "aud", week)
    assert cache.next_refresh() == 24 * 3600
    clock.advance(24 * 3600 - 1)
    assert await cache.get(pod, "aud", week) == first
    clock.advance(1)
    assert await cache.get(pod, "aud", week) != first
    hour = 3600
    await cache.get(pod, "short", hour)
    assert cache.next_refresh() == 24 * 3600 + 0.8 * hour  # a short-lived one: 80 %


@pytest.mark.anyio
async def test_a_downward_volume_naming_an_unknown_container_is_a_failed_mount(
    tmp_path: Path,
) -> None:
    """The API server accepts any containerName in a downwardAPI volume item; the kubelet
    fails the volume's SetUp (FailedMount, retried), not the pod."""
    events = RecordingEvents()
    volumes = Volumes(tmp_path, StaticSources(), events=events, chown=False)
    item = {"path": "cpu", "resourceFieldRef": {"containerName": "typo", "resource": "limits.cpu"}}
    pod = make_pod([{"name": "info", "downwardAPI": {"items": [item]}}])
    with pytest.raises(VolumeMountError) as info:
        await volumes.materialize(pod)
    assert info.value.message == (
        'MountVolume.SetUp failed for volume "info" : container typo not found'
    )
    assert [(e.type, e.reason, e.message) for e in events.events] == [
        ("Warning", "FailedMount", info.value.message)
    ]


@pytest.mark.anyio
async def test_ownership_and_unsupported_volumes(tmp_path: Path) -> None:
    volumes = Volumes(tmp_path, Sources(configmaps={"cm": {"data": {"k": "v"}}}), chown=True)
    pod = make_pod(
        [{"name": "config", "configMap": {"name": "cm"}}, {"name": "scratch", "emptyDir": {}}]
    )
    pod["spec"]["securityContext"] = {"runAsUser": 1500, "fsGroup": 2500}
    paths = await volumes.materialize(pod)
    pod_dir = tmp_path / "default_web_u-1"
    assert (pod_dir.stat().st_uid, pod_dir.stat().st_gid) == (1500, 2500)
    assert stat.S_IMODE(pod_dir.stat().st_mode) == 0o700
    file_info = (Path(paths["config"]) / "k").stat()
    assert (file_info.st_uid, file_info.st_gid, stat.S_IMODE(file_info.st_mode)) == (
        1500,
        2500,
        0o644,
    )
    scratch = stat_of(paths["scratch"])
    assert scratch.st_gid == 2500 and scratch.st_mode & stat.S_ISGID

    pvc = make_pod([{"name": "data", "persistentVolumeClaim": {"claimName": "c"}}])
    with pytest.raises(Unsupported, match='volume "data"'):
        await volumes.materialize(pvc)
    with pytest.raises(InvalidInput):
        await volumes.materialize(make_pod([{"name": "../x", "emptyDir": {}}]))


@pytest.mark.anyio
async def test_host_path_volumes(tmp_path: Path) -> None:
    volumes = Volumes(tmp_path / "pods", Sources())
    made = tmp_path / "made"
    pod = make_pod([{"name": "h", "hostPath": {"path": str(made), "type": "DirectoryOrCreate"}}])
    assert await volumes.materialize(pod) == {"h": str(made)}
    assert made.is_dir()
    bad = make_pod([{"name": "h", "hostPath": {"path": str(tmp_path / "no"), "type": "File"}}])
    with pytest.raises(VolumeMountError, match="hostPath type check failed"):
        await volumes.materialize(bad)
    closed = Volumes(tmp_path / "pods", Sources(), allow_host_path=False)
    with pytest.raises(Unsupported):
        await closed.materialize(pod)


@pytest.mark.anyio
async def test_delete_of_unknown_pod_still_removes_its_directory(tmp_path: Path) -> None:
    backend = Recorder(missing=True)
    volumes = Volumes(tmp_path, Sources())
    pod = make_pod([{"name": "scratch", "emptyDir": {}}])
    await volumes.materialize(pod)
    with pytest.raises(NotFound):
        await compose(volumes, backend=backend)(DeletePod(pod=pod))
    assert not (tmp_path / "default_web_u-1").exists()


@pytest.mark.anyio
async def test_other_ops_pass_through(tmp_path: Path) -> None:
    seen: list[Op] = []

    async def handler(op: Op) -> str:
        seen.append(op)
        return "ok"

    op = CreatePod(pod=make_pod([]), node=NodeInfo(name="n"))
    assert await Volumes(tmp_path, Sources())(op, handler) == "ok"
    assert seen[0].volume_paths == {}  # type: ignore[attr-defined]


# ---------------------------------------------------------------- TokenRequest over real HTTP


@pytest.mark.anyio
async def test_token_request_errors_become_failed_mount(tmp_path: Path, apiserver: Any) -> None:
    api = await apiserver.api_client()
    try:
        events = Events()
        volumes = Volumes(tmp_path, Sources(), KubeTokenSource(api), events)
        pod = make_pod(
            [{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}]
        )
        pod["spec"]["serviceAccountName"] = "nope"
        with pytest.raises(VolumeMountError) as info:
            await volumes.materialize(pod)
    finally:
        await api.close()
    assert info.value.message == (
        'MountVolume.SetUp failed for volume "t" : '
        'failed to fetch token: serviceaccounts "nope" not found'
    )
    assert events.events == [("Warning", "FailedMount", info.value.message)]


@pytest.mark.anyio
async def test_without_chown_files_keep_our_owner(tmp_path: Path) -> None:
    volumes = Volumes(tmp_path, Sources(), FakeTokens(), chown=False)
    pod = make_pod(
        [{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}]
    )
    pod["spec"]["securityContext"] = {"runAsUser": 1500, "fsGroup": 2500}
    paths = await volumes.materialize(pod)
    info = stat_of(Path(paths["t"]) / "token")
    assert (info.st_uid, info.st_gid) == (os.getuid(), os.getgid())
    assert stat.S_IMODE(info.st_mode) == 0o600


@pytest.mark.anyio
async def test_run_does_not_spin_when_a_token_cannot_be_renewed(tmp_path: Path) -> None:
    clock = FakeClock()

    @attrs.define
    class FlakyTokens:
        calls: int = 0

        async def token(self, *args: Any) -> str:
            self.calls += 1
            if self.calls > 1:
                raise TemporaryError("failed to fetch token: API unavailable")
            return "t1"

    events = Events()
    source = FlakyTokens()
    volumes = Volumes(tmp_path, Sources(), source, events, clock=clock.time)
    pod = make_pod(
        [{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}]
    )
    paths = await volumes.materialize(pod)
    clock.advance(3000)  # past 80 % of 3600 s
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(seconds)
        if len(sleeps) == 3:
            raise anyio.get_cancelled_exc_class()

    with pytest.raises(anyio.get_cancelled_exc_class()):
        await volumes.run(interval=60.0, sleep=fake_sleep)
    assert sleeps == [5.0, 5.0, 5.0]
    assert (Path(paths["t"]) / "token").read_text() == "t1"  # old token kept
    assert events.events[-1][1] == "FailedMount"
    assert "API unavailable" in events.events[-1][2]


@attrs.define
class ApiSources:
    """An async SourceReader reading straight from an API server (raw JSON)."""

    api: Any

    async def _get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        from kubernetes_asyncio import client

        core = client.CoreV1Api(self.api)
        read = core.read_namespaced_config_map if kind == "cm" else core.read_namespaced_secret
        response = await read(name, namespace, _preload_content=False)
        try:
            if response.status == 404:
                return None
            assert response.status == 200
            return dict(await response.json())
        finally:
            response.release()

    async def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._get("cm", namespace, name)

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._get("secret", namespace, name)


@pytest.mark.anyio
async def test_sources_from_the_embedded_api_server(tmp_path: Path, apiserver: Any) -> None:
    from kubernetes_asyncio import client

    api = await apiserver.api_client()
    try:
        core = client.CoreV1Api(api)
        await core.create_namespaced_config_map(
            "default",
            {
                "metadata": {"name": "game"},
                "data": {"lives": "3"},
                "binaryData": {"logo": base64.b64encode(b"\x89PNG").decode()},
            },
            _preload_content=False,
        )
        await core.create_namespaced_secret(
            "default",
            {"metadata": {"name": "creds"}, "stringData": {"password": SECRET_VALUE}},
            _preload_content=False,
        )
        volumes = Volumes(tmp_path, ApiSources(api))
        pod = make_pod(
            [
                {"name": "game", "configMap": {"name": "game"}},
                {"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o400}},
                {"name": "opt", "secret": {"secretName": "absent", "optional": True}},
            ]
        )
        paths = await volumes.materialize(pod)
    finally:
        await api.close()
    assert read_volume(Path(paths["game"])) == {"lives": b"3", "logo": b"\x89PNG"}
    assert read_volume(Path(paths["creds"])) == {"password": SECRET_VALUE.encode()}
    assert read_volume(Path(paths["opt"])) == {}


def test_config_sources_static_sources_fit_plan_volume() -> None:
    shared = StaticSources(
        [
            {
                "kind": "ConfigMap",
                "metadata": {"name": "cm", "namespace": "default"},
                "data": {"k": "v"},
            },
            {
                "kind": "Secret",
                "metadata": {"name": "s", "namespace": "default"},
                "data": {"pw": b64(SECRET_VALUE)},
            },
        ]
    )
    volume = {
        "name": "p",
        "projected": {"sources": [{"configMap": {"name": "cm"}}, {"secret": {"name": "s"}}]},
    }
    payload = plan_volume(make_pod([volume]), volume, shared)
    assert {p: s.data for p, s in payload.items()} == {"k": b"v", "pw": SECRET_VALUE.encode()}


@pytest.mark.anyio
async def test_recording_events_sink(tmp_path: Path) -> None:
    events = RecordingEvents()
    volumes = Volumes(tmp_path, Sources(), events=events)
    with pytest.raises(VolumeMountError):
        await volumes.materialize(make_pod([{"name": "c", "configMap": {"name": "x"}}]))
    assert [(e.pod_key, e.type, e.reason) for e in events.events] == [
        (("default", "web"), "Warning", "FailedMount")
    ]


@pytest.mark.anyio
async def test_kube_api_access_volume_from_the_embedded_api_server(
    tmp_path: Path, apiserver: Any
) -> None:
    """A pod as the API server defaults it (kube-api-access-*: token, ca.crt, namespace)."""
    from kubernetes_asyncio import client

    api = await apiserver.api_client()
    try:
        core = client.CoreV1Api(api)
        response = await core.create_namespaced_pod(
            "default",
            {"metadata": {"name": "web"}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
            _preload_content=False,
        )
        pod = dict(await response.json())
        [volume] = pod["spec"]["volumes"]
        assert volume["name"].startswith("kube-api-access-")
        registry = SecretRegistry()
        volumes = Volumes(tmp_path, ApiSources(api), KubeTokenSource(api), secrets=registry)
        paths = await volumes.materialize(pod)
        files = read_volume(Path(paths[volume["name"]]))
        assert sorted(files) == ["ca.crt", "namespace", "token"]
        assert files["namespace"] == b"default"
        assert files["ca.crt"].startswith(b"-----BEGIN CERTIFICATE-----")
        token = files["token"].decode()
        assert token in registry
        review = await client.AuthenticationV1Api(api).create_token_review(
            {"spec": {"token": token}}, _preload_content=False
        )
        status = (await review.json())["status"]
        assert status["authenticated"] is True
        assert status["user"]["username"] == "system:serviceaccount:default:default"
    finally:
        await api.close()
