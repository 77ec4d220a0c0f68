"""Service-link env vars as the kubelet makes them."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vkcompose.middlewares.config_sources import (
    ResolveConfigSources,
    StaticSources,
    resolve_env,
    resolve_pod,
)
from vkcompose.middlewares.service_links import (
    ServiceLinks,
    StaticServices,
    add_service_links,
    link_block,
    service_env,
    services_for_pod,
)
from vkcompose.ops import CreatePod, ListPods
from vkcompose.pipeline import compose


def svc(
    name: str,
    ns: str,
    ip: str | None,
    ports: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"ports": ports if ports is not None else [{"port": 80}]}
    if ip is not None:
        spec["clusterIP"] = ip
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


KUBERNETES = svc("kubernetes", "default", "10.96.0.1", [{"name": "https", "port": 443}])


def test_the_kubernetes_service_vars() -> None:
    assert service_env([KUBERNETES], "anything") == {
        "KUBERNETES_SERVICE_HOST": "10.96.0.1",
        "KUBERNETES_SERVICE_PORT": "443",
        "KUBERNETES_SERVICE_PORT_HTTPS": "443",
        "KUBERNETES_PORT": "tcp://10.96.0.1:443",
        "KUBERNETES_PORT_443_TCP": "tcp://10.96.0.1:443",
        "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
        "KUBERNETES_PORT_443_TCP_PORT": "443",
        "KUBERNETES_PORT_443_TCP_ADDR": "10.96.0.1",
    }


def test_named_ports_protocols_and_ipv6() -> None:
    dns = svc(
        "kube-dns",
        "ns",
        "fd00::a",
        [
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
            {"name": "metrics", "port": 9153},
        ],
    )
    env = service_env([dns], "ns")
    assert env["KUBE_DNS_SERVICE_HOST"] == "fd00::a"
    assert env["KUBE_DNS_SERVICE_PORT"] == "53"
    assert env["KUBE_DNS_SERVICE_PORT_DNS"] == "53"
    assert env["KUBE_DNS_SERVICE_PORT_DNS_TCP"] == "53"
    assert env["KUBE_DNS_SERVICE_PORT_METRICS"] == "9153"
    assert env["KUBE_DNS_PORT"] == "udp://[fd00::a]:53"
    assert env["KUBE_DNS_PORT_53_UDP"] == "udp://[fd00::a]:53"
    assert env["KUBE_DNS_PORT_53_UDP_PROTO"] == "udp"
    assert env["KUBE_DNS_PORT_53_TCP"] == "tcp://[fd00::a]:53"
    assert env["KUBE_DNS_PORT_9153_TCP_ADDR"] == "fd00::a"
    assert len(env) == 1 + 1 + 3 + 1 + 3 * 4


def test_selection_rules() -> None:
    services = [
        KUBERNETES,
        svc("web", "ns", "10.0.0.5"),
        svc("headless", "ns", "None"),
        svc("external", "ns", None),
        svc("other", "elsewhere", "10.0.0.6"),
        svc("db", "default", "10.0.0.7"),
    ]
    env = service_env(services, "ns")
    prefixes = {k.split("_")[0] for k in env}
    assert prefixes == {"KUBERNETES", "WEB"}
    only_masters = service_env(services, "ns", enable_service_links=False)
    assert {k.split("_")[0] for k in only_masters} == {"KUBERNETES"}
    in_default = service_env(services, "default")
    assert {k.split("_")[0] for k in in_default} == {"KUBERNETES", "DB"}
    shadow = svc("kubernetes", "ns", "10.0.0.99")
    assert service_env([shadow, KUBERNETES], "ns")["KUBERNETES_SERVICE_HOST"] == "10.0.0.99"
    assert service_env([KUBERNETES, shadow], "ns")["KUBERNETES_SERVICE_HOST"] == "10.0.0.99"


def test_services_for_pod_reads_own_namespace_and_masters() -> None:
    reader = StaticServices(
        [KUBERNETES, svc("web", "ns", "10.0.0.5"), svc("db", "default", "1.1.1.1")]
    )
    pod = {"metadata": {"namespace": "ns"}, "spec": {}}
    assert {s["metadata"]["name"] for s in services_for_pod(reader, pod)} == {"kubernetes", "web"}
    pod["spec"]["enableServiceLinks"] = False
    assert {s["metadata"]["name"] for s in services_for_pod(reader, pod)} == {"kubernetes"}
    default_pod = {"metadata": {"namespace": "default"}, "spec": {"enableServiceLinks": False}}
    assert [s["metadata"]["name"] for s in services_for_pod(reader, default_pod)] == ["kubernetes"]


@pytest.mark.anyio
async def test_middleware_links_then_expansion() -> None:
    created: list[dict[str, Any]] = []

    class Backend:
        async def create_pod(self, pod: dict[str, Any]) -> None:
            created.append(pod)

        async def list_pods(self) -> list[dict[str, Any]]:
            return []

    reader = StaticServices(
        [KUBERNETES, svc("redis-primary", "shop", "10.0.0.11", [{"port": 6379}])]
    )
    pipeline = compose(
        ServiceLinks(reader), ResolveConfigSources(StaticSources()), backend=Backend()
    )
    pod = {
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "initContainers": [{"name": "init"}],
            "containers": [
                {
                    "name": "app",
                    "env": [
                        {"name": "REDIS", "value": "$(REDIS_PRIMARY_SERVICE_HOST):6379"},
                        {"name": "KUBERNETES_SERVICE_HOST", "value": "overridden"},
                    ],
                    "args": ["--api=$(KUBERNETES_PORT)"],
                }
            ],
        },
    }
    before = copy.deepcopy(pod)
    await pipeline(CreatePod(pod=pod))
    assert pod == before
    app = created[0]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in app["env"]}
    assert len(env) == len(app["env"])
    assert env["REDIS"] == "10.0.0.11:6379"
    assert env["KUBERNETES_SERVICE_HOST"] == "overridden"
    assert env["REDIS_PRIMARY_PORT_6379_TCP"] == "tcp://10.0.0.11:6379"
    assert app["args"] == ["--api=tcp://10.96.0.1:443"]
    init_env = {e["name"] for e in created[0]["spec"]["initContainers"][0]["env"]}
    assert "KUBERNETES_SERVICE_HOST" in init_env
    assert await pipeline(ListPods()) == []


ips = st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str))
service_names = st.from_regex(r"[a-z]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)


@given(
    st.lists(
        st.tuples(service_names, ips, st.lists(st.integers(1, 65535), min_size=1, max_size=3)),
        max_size=4,
    ),
    st.lists(
        st.fixed_dictionaries(
            {
                "name": st.sampled_from(["A", "KUBERNETES_SERVICE_HOST", "X_PORT"]),
                "value": st.sampled_from(["$(KUBERNETES_SERVICE_HOST)", "v", "$$(A)"]),
            }
        ),
        max_size=4,
    ),
)
def test_rewrite_equals_kubelet_merge(
    specs: list[tuple[str, str, list[int]]], env: list[dict[str, str]]
) -> None:
    """Injecting links into the pod then expanding equals the kubelet's map-based merge."""
    services = [KUBERNETES] + [
        svc(n, "ns", ip, [{"port": p} for p in ports]) for n, ip, ports in specs
    ]
    links = service_env(services, "ns")
    pod = {"metadata": {"namespace": "ns"}, "spec": {"containers": [{"name": "c", "env": env}]}}
    direct = resolve_env(pod, pod["spec"]["containers"][0], StaticSources(), service_env=links)
    rewritten = add_service_links(pod, links)
    again = resolve_env(rewritten, rewritten["spec"]["containers"][0], StaticSources())
    assert again.as_dict() == direct.as_dict()
    assert all("=" not in k and k == k.upper() for k in links)


def test_links_are_memoized_until_the_services_change() -> None:
    reader = StaticServices([KUBERNETES])
    links = ServiceLinks(reader)
    pod = {"metadata": {"namespace": "ns"}, "spec": {}}
    first = links.links_for(pod)
    assert links.links_for(pod) is first
    reader.set([KUBERNETES, svc("web", "ns", "10.0.0.5")])
    second = links.links_for(pod)
    assert second is not first
    assert {e["name"] for e in second} > {e["name"] for e in first}
    assert links.links_for({"metadata": {"namespace": "ns"}, "spec": {"enableServiceLinks": False}})
    assert {
        e["name"].split("_")[0]
        for e in links.links_for(
            {"metadata": {"namespace": "ns"}, "spec": {"enableServiceLinks": False}}
        )
    } == {"KUBERNETES"}


@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "name": st.sampled_from(["A", "KUBERNETES_SERVICE_HOST", "KUBERNETES_PORT"]),
                "value": st.sampled_from(["$(KUBERNETES_SERVICE_HOST)", "v", "$$(A)", "$(A)"]),
            }
        ),
        max_size=4,
    ),
    st.sampled_from(["", "10.96.0.1", "a$b"]),
    st.booleans(),
    st.booleans(),
)
def test_link_block_matches_the_kubelet_merge(
    env: list[dict[str, str]], ip: str, with_env_from: bool, expand_vars: bool
) -> None:
    """Prepended links are recognized as one block and rank below envFrom and env."""
    services = [svc("kubernetes", "default", ip or "10.0.0.1", [{"name": "https", "port": 443}])]
    links = service_env(services, "ns")
    container: dict[str, Any] = {"name": "c", "env": env, "args": ["$(KUBERNETES_PORT)"]}
    sources = StaticSources()
    if with_env_from:
        container["envFrom"] = [{"configMapRef": {"name": "cm"}}]
        sources.put(
            {
                "kind": "ConfigMap",
                "metadata": {"namespace": "ns", "name": "cm"},
                "data": {"KUBERNETES_SERVICE_HOST": "from-cm", "B": "$(A)"},
            }
        )
    pod = {"metadata": {"namespace": "ns"}, "spec": {"containers": [container]}}
    direct = resolve_env(pod, container, sources, service_env=links, expand_vars=expand_vars)
    rewritten = add_service_links(pod, links)
    assert link_block(rewritten["spec"]["containers"][0]["env"]) is not None
    again = resolve_env(
        rewritten, rewritten["spec"]["containers"][0], sources, expand_vars=expand_vars
    )
    assert again.as_dict() == direct.as_dict()
    assert again.args == direct.args
    if with_env_from and expand_vars and "KUBERNETES_SERVICE_HOST" not in {e["name"] for e in env}:
        assert again.as_dict()["KUBERNETES_SERVICE_HOST"] == "from-cm"
    # an equal but hand-written list is explicit env, not a block
    assert link_block([dict(e) for e in rewritten["spec"]["containers"][0]["env"]]) is None


@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "name": st.sampled_from(["A", "KUBERNETES_SERVICE_HOST", "B"]),
                "value": st.sampled_from(["$(KUBERNETES_SERVICE_HOST)", "v", "$$(A)"]),
            }
        ),
        max_size=3,
    ),
    st.sampled_from(["10.96.0.1", "a$b"]),
)
def test_resolve_pod_with_link_block(env: list[dict[str, str]], ip: str) -> None:
    """resolve_pod on a linked pod equals the kubelet merge, also when no rewrite is needed."""
    services = [svc("kubernetes", "default", ip, [{"name": "https", "port": 443}])]
    links = service_env(services, "ns")
    pod = {"metadata": {"namespace": "ns"}, "spec": {"containers": [{"name": "c", "env": env}]}}
    direct = resolve_env(pod, pod["spec"]["containers"][0], StaticSources(), service_env=links)
    resolved = resolve_pod(add_service_links(pod, links), StaticSources()).pod
    out = resolved["spec"]["containers"][0]["env"]
    assert len({e["name"] for e in out}) == len(out)
    assert {e["name"]: e["value"] for e in out} == direct.as_dict()


def test_memoized_links_stay_recognized() -> None:
    links = ServiceLinks(StaticServices([KUBERNETES]))
    pod = {"metadata": {"namespace": "ns"}, "spec": {}}
    first = links.links_for(pod)
    for _ in range(5000):  # other link lists push the memoized one out of the registry
        add_service_links(pod, {"X": "1"})
    assert link_block(first) is None
    assert links.links_for(pod) is first
    block = link_block([*first, {"name": "A", "value": "b"}])
    assert block is not None and block.entries is first
