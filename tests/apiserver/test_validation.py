"""Object validation: field paths, reasons and messages as kube-apiserver reports them."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vkcompose.apiserver.validation import Cause, invalid_message, validate, validate_causes


def pod(**spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "nginx",
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "env": [{"name": "A", "value": "1"}],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "1"}},
                }
            ],
            "volumes": [{"name": "data", "emptyDir": {}}],
            "restartPolicy": "Always",
        },
    }
    body["spec"].update(spec)
    return body


def fields(causes: list[Cause]) -> list[tuple[str, str]]:
    return [(c.field, c.reason) for c in causes]


def test_valid_pod() -> None:
    assert validate("Pod", pod(), None) == []


def test_pod_name_messages() -> None:
    # The message kubectl prints for `kubectl run Bad_Name` (DNS-1123 subdomain).
    p = pod()
    p["metadata"]["name"] = "Bad_Name"
    causes = validate("Pod", p, None)
    assert causes == [
        Cause(
            "metadata.name",
            "FieldValueInvalid",
            'Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of lower '
            "case alphanumeric characters, '-' or '.', and must start and end with an "
            "alphanumeric character (e.g. 'example.com', regex used for validation is "
            "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        )
    ]
    assert invalid_message("Pod", "Bad_Name", causes).startswith(
        'Pod "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase'
    )
    assert causes[0].as_dict()["reason"] == "FieldValueInvalid"


def test_name_required_unless_generate_name() -> None:
    p = pod()
    del p["metadata"]["name"]
    assert validate("Pod", p, None) == [
        Cause(
            "metadata.name",
            "FieldValueRequired",
            "Required value: name or generateName is required",
        )
    ]
    p["metadata"]["generateName"] = "web-"
    assert validate("Pod", p, None) == []
    p["metadata"]["generateName"] = "Web-"
    assert fields(validate("Pod", p, None)) == [("metadata.generateName", "FieldValueInvalid")]


@pytest.mark.parametrize(
    ("kind", "name", "ok"),
    [
        ("Namespace", "default", True),
        ("Namespace", "a.b", False),  # namespaces are DNS-1123 labels
        ("Namespace", "x" * 64, False),
        ("Pod", "a.b", True),
        ("Pod", "a" * 253, True),
        ("Pod", "a" * 254, False),
        ("Node", "node-1.example.com", True),
        ("Service", "web", True),
        ("Service", "1web", False),  # services are DNS-1035 labels
        ("ConfigMap", "..", False),
        ("ConfigMap", "kube-root-ca.crt", True),
        ("Lease", "node-1", True),
    ],
)
def test_name_rules_per_kind(kind: str, name: str, ok: bool) -> None:
    obj = {"metadata": {"name": name}}
    causes = [c for c in validate(kind, obj, None) if c.field == "metadata.name"]
    assert (causes == []) is ok


def test_labels_and_annotations() -> None:
    p = pod()
    p["metadata"]["labels"] = {"-bad": "ok", "good": "-bad", "example.com/x": "y"}
    p["metadata"]["annotations"] = {"Example.com/x": "fine", "a/b/c": "no", "big": "x" * 300000}
    causes = validate("Pod", p, None)
    assert fields(causes) == [
        ("metadata.labels", "FieldValueInvalid"),
        ("metadata.labels", "FieldValueInvalid"),
        ("metadata.annotations", "FieldValueInvalid"),
        ("metadata.annotations", "FieldValueTooLong"),
    ]
    assert causes[0].message.startswith('Invalid value: "-bad": name part must consist of')
    assert causes[-1].message == "Too long: must have at most 262144 bytes"


def test_cluster_scoped_namespace_forbidden() -> None:
    causes = validate("Node", {"metadata": {"name": "n", "namespace": "x"}}, None)
    assert causes == [
        Cause("metadata.namespace", "FieldValueForbidden", "Forbidden: not allowed on this type")
    ]


def test_pod_required_fields() -> None:
    assert validate("Pod", pod(containers=[]), None) == [
        Cause("spec.containers", "FieldValueRequired", "Required value")
    ]
    assert fields(validate("Pod", {"metadata": {"name": "x"}}, None)) == [
        ("spec", "FieldValueRequired")
    ]
    causes = validate("Pod", pod(containers=[{"name": "c"}], volumes=None), None)
    assert causes == [Cause("spec.containers[0].image", "FieldValueRequired", "Required value")]
    causes = validate("Pod", pod(containers=[{"image": "x"}]), None)
    assert fields(causes) == [("spec.containers[0].name", "FieldValueRequired")]


def test_container_names_unique_across_init_and_regular() -> None:
    causes = validate(
        "Pod",
        pod(
            initContainers=[{"name": "main", "image": "x"}],
            containers=[{"name": "main", "image": "x"}, {"name": "Bad", "image": "x"}],
        ),
        None,
    )
    assert fields(causes) == [
        ("spec.containers[0].name", "FieldValueDuplicate"),
        ("spec.containers[1].name", "FieldValueInvalid"),
    ]
    assert causes[0].message == 'Duplicate value: "main"'


def test_ports_env_restart_policy() -> None:
    c = {
        "name": "c",
        "image": "x",
        "ports": [
            {"containerPort": 0},
            {"containerPort": 70000, "protocol": "ICMP"},
            {"containerPort": 80, "name": "http"},
            {"containerPort": 81, "name": "http"},
            {"containerPort": 82, "name": "1234"},
        ],
        "env": [{"name": "1BAD"}, {"name": "ok.name-1"}, {"value": "x"}, {"name": ".."}],
    }
    causes = validate("Pod", pod(containers=[c], volumes=None, restartPolicy="Sometimes"), None)
    assert fields(causes) == [
        ("spec.containers[0].ports[0].containerPort", "FieldValueRequired"),
        ("spec.containers[0].ports[1].containerPort", "FieldValueInvalid"),
        ("spec.containers[0].ports[1].protocol", "FieldValueNotSupported"),
        ("spec.containers[0].ports[3].name", "FieldValueDuplicate"),
        ("spec.containers[0].ports[4].name", "FieldValueInvalid"),
        ("spec.containers[0].env[0].name", "FieldValueInvalid"),
        ("spec.containers[0].env[2].name", "FieldValueRequired"),
        ("spec.containers[0].env[3].name", "FieldValueInvalid"),
        ("spec.restartPolicy", "FieldValueNotSupported"),
    ]
    by_field = {c.field: c.message for c in causes}
    assert by_field["spec.containers[0].ports[1].containerPort"] == (
        "Invalid value: 70000: must be between 1 and 65535, inclusive"
    )
    assert by_field["spec.containers[0].ports[1].protocol"] == (
        'Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"'
    )
    assert by_field["spec.restartPolicy"] == (
        'Unsupported value: "Sometimes": supported values: "Always", "Never", "OnFailure"'
    )
    assert by_field["spec.containers[0].ports[4].name"].endswith(
        "must contain at least one letter (a-z)"
    )


def test_env_value_from() -> None:
    env = [
        {"name": "A", "valueFrom": {}},
        {"name": "B", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "C", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}},
        {"name": "D", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "E", "valueFrom": {"secretKeyRef": {"name": "s"}}},
        {
            "name": "F",
            "valueFrom": {
                "configMapKeyRef": {"name": "c", "key": "k"},
                "secretKeyRef": {"name": "s", "key": "k"},
            },
        },
    ]
    causes = validate("Pod", pod(containers=[{"name": "c", "image": "x", "env": env}]), None)
    assert fields(causes) == [
        ("spec.containers[0].env[0].valueFrom", "FieldValueInvalid"),
        ("spec.containers[0].env[1].valueFrom", "FieldValueInvalid"),
        ("spec.containers[0].env[2].valueFrom.fieldRef.fieldPath", "FieldValueNotSupported"),
        ("spec.containers[0].env[4].valueFrom.secretKeyRef.key", "FieldValueRequired"),
        ("spec.containers[0].env[5].valueFrom", "FieldValueInvalid"),
    ]


def test_volumes_and_mounts() -> None:
    c = {
        "name": "c",
        "image": "x",
        "volumeMounts": [
            {"name": "missing", "mountPath": "/a"},
            {"name": "data", "mountPath": "/a"},
            {"name": "data"},
        ],
    }
    volumes = [
        {"name": "data", "emptyDir": {}},
        {"name": "data", "emptyDir": {}},
        {"name": "none"},
        {"name": "two", "emptyDir": {}, "hostPath": {"path": "/"}},
        {"name": "Bad_Name", "emptyDir": {}},
    ]
    causes = validate("Pod", pod(containers=[c], volumes=volumes), None)
    assert fields(causes) == [
        ("spec.volumes[1].name", "FieldValueDuplicate"),
        ("spec.volumes[2]", "FieldValueRequired"),
        ("spec.volumes[3].hostPath", "FieldValueForbidden"),
        ("spec.volumes[4].name", "FieldValueInvalid"),
        ("spec.containers[0].volumeMounts[0].name", "FieldValueNotFound"),
        ("spec.containers[0].volumeMounts[1].mountPath", "FieldValueInvalid"),
        ("spec.containers[0].volumeMounts[2].mountPath", "FieldValueRequired"),
    ]
    assert causes[1].message == "Required value: must specify a volume type"
    assert causes[4].message == 'Not found: "missing"'


def test_resources() -> None:
    res = {
        "requests": {"cpu": "2", "memory": "1Gi", "bad": "1x"},
        "limits": {"cpu": "1", "memory": "-1"},
    }
    causes = validate("Pod", pod(containers=[{"name": "c", "image": "x", "resources": res}]), None)
    assert fields(causes) == [
        ("spec.containers[0].resources.limits[memory]", "FieldValueInvalid"),
        ("spec.containers[0].resources.requests[bad]", "FieldValueInvalid"),
        ("spec.containers[0].resources.requests[cpu]", "FieldValueInvalid"),
        ("spec.containers[0].resources.requests[memory]", "FieldValueInvalid"),
    ]
    by_field = {c.field: c.message for c in causes}
    assert by_field["spec.containers[0].resources.requests[cpu]"] == (
        'Invalid value: "2": must be less than or equal to cpu limit of 1'
    )
    assert by_field["spec.containers[0].resources.limits[memory]"] == (
        'Invalid value: "-1": must be greater than or equal to 0'
    )
    assert (
        "quantities must match the regular expression"
        in (by_field["spec.containers[0].resources.requests[bad]"])
    )


def test_tolerations() -> None:
    tolerations = [
        {"operator": "Exists"},
        {"key": "k", "operator": "Exists", "value": "v"},
        {"operator": "Equal", "value": "v"},
        {"key": "k", "effect": "Sometimes"},
        {"key": "k", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 5},
        {"key": "k", "operator": "Near"},
    ]
    causes = validate("Pod", pod(tolerations=tolerations), None)
    assert fields(causes) == [
        ("spec.tolerations[1].operator", "FieldValueInvalid"),
        ("spec.tolerations[2].operator", "FieldValueInvalid"),
        ("spec.tolerations[3].effect", "FieldValueNotSupported"),
        ("spec.tolerations[4].effect", "FieldValueInvalid"),
        ("spec.tolerations[5].operator", "FieldValueNotSupported"),
    ]


def test_pod_update_rules() -> None:
    old = pod(activeDeadlineSeconds=100, tolerations=[{"key": "a", "operator": "Exists"}])
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "nginx:2"
    new["spec"]["activeDeadlineSeconds"] = 50
    new["spec"]["tolerations"].append({"key": "b", "operator": "Exists"})
    new["status"] = {"phase": "Running"}
    assert validate("Pod", new, old) == []

    up = copy.deepcopy(old)
    up["spec"]["activeDeadlineSeconds"] = 200
    assert fields(validate("Pod", up, old)) == [("spec.activeDeadlineSeconds", "FieldValueInvalid")]

    gone = copy.deepcopy(old)
    gone["spec"]["tolerations"] = []
    assert fields(validate("Pod", gone, old)) == [("spec.tolerations[0]", "FieldValueForbidden")]

    moved = copy.deepcopy(old)
    moved["spec"]["nodeName"] = "other"
    moved["spec"]["containers"][0]["ports"] = []
    causes = validate("Pod", moved, old)
    assert fields(causes) == [("spec", "FieldValueForbidden")]
    assert causes[0].message.startswith(
        "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
        "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
        "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
        "(allow it to be set to 1 if it was previously negative)"
    )
    assert "spec.containers" in causes[0].message and "spec.nodeName" in causes[0].message

    renamed = copy.deepcopy(old)
    renamed["metadata"]["name"] = "other"
    assert fields(validate("Pod", renamed, old)) == [("metadata.name", "FieldValueInvalid")]

    negative = pod(terminationGracePeriodSeconds=-1)
    one = pod(terminationGracePeriodSeconds=1)
    assert validate("Pod", one, negative) == []
    assert fields(validate("Pod", pod(terminationGracePeriodSeconds=5), one)) == [
        ("spec", "FieldValueForbidden")
    ]


def test_configmap_and_secret() -> None:
    cm = {
        "metadata": {"name": "c"},
        "data": {"ok.key_1-x": "v", "bad key": "v", "..": "v"},
        "binaryData": {"ok.key_1-x": "dg=="},
    }
    causes = validate("ConfigMap", cm, None)
    assert fields(causes) == [
        ("data[bad key]", "FieldValueInvalid"),
        ("data[..]", "FieldValueInvalid"),
        ("binaryData[ok.key_1-x]", "FieldValueInvalid"),
    ]
    assert causes[2].message == 'Invalid value: "ok.key_1-x": duplicate of key present in data'

    frozen = {"metadata": {"name": "c"}, "data": {"a": "1"}, "immutable": True}
    changed = {"metadata": {"name": "c"}, "data": {"a": "2"}, "immutable": True}
    assert fields(validate("ConfigMap", changed, frozen)) == [("data", "FieldValueForbidden")]

    tls = {"metadata": {"name": "s"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}}
    causes = validate("Secret", tls, None)
    assert fields(causes) == [("data[tls.key]", "FieldValueRequired")]
    retyped = {"metadata": {"name": "s"}, "type": "Opaque", "data": {}}
    assert fields(validate("Secret", retyped, tls)) == [("type", "FieldValueInvalid")]
    sa = {"metadata": {"name": "t"}, "type": "kubernetes.io/service-account-token"}
    assert fields(validate("Secret", sa, None)) == [
        ("metadata.annotations[kubernetes.io/service-account.name]", "FieldValueRequired")
    ]
    # Secret values never appear in messages.
    leaky = {"metadata": {"name": "s"}, "data": {"k": 12345678}}
    assert all("12345678" not in c.message for c in validate("Secret", leaky, None))


def test_node_lease_namespace_service() -> None:
    node = {
        "metadata": {"name": "n"},
        "spec": {
            "unschedulable": "yes",
            "taints": [
                {"key": "a", "effect": "NoSchedule"},
                {"key": "a", "effect": "NoSchedule"},
                {"effect": "Bogus"},
            ],
        },
    }
    assert fields(validate("Node", node, None)) == [
        ("spec.unschedulable", "FieldValueInvalid"),
        ("spec.taints[1]", "FieldValueDuplicate"),
        ("spec.taints[2].key", "FieldValueRequired"),
        ("spec.taints[2].effect", "FieldValueNotSupported"),
    ]
    lease = {
        "metadata": {"name": "n", "namespace": "kube-node-lease"},
        "spec": {
            "holderIdentity": "n",
            "leaseDurationSeconds": 40,
            "renewTime": "2024-01-01T00:00:00.000000Z",
        },
    }
    assert validate("Lease", lease, None) == []
    lease["spec"] = {
        "holderIdentity": 5,
        "leaseDurationSeconds": 0,
        "leaseTransitions": -1,
        "renewTime": "yesterday",
    }
    assert fields(validate("Lease", lease, None)) == [
        ("spec.holderIdentity", "FieldValueInvalid"),
        ("spec.leaseDurationSeconds", "FieldValueInvalid"),
        ("spec.leaseTransitions", "FieldValueInvalid"),
        ("spec.renewTime", "FieldValueInvalid"),
    ]
    assert (
        validate(
            "Namespace", {"metadata": {"name": "ok"}, "spec": {"finalizers": ["kubernetes"]}}, None
        )
        == []
    )
    svc = {
        "metadata": {"name": "s"},
        "spec": {
            "type": "Weird",
            "ports": [{"port": 80}, {"port": 0, "name": "b", "targetPort": "http"}],
        },
    }
    assert fields(validate("Service", svc, None)) == [
        ("spec.type", "FieldValueNotSupported"),
        ("spec.ports[0].name", "FieldValueRequired"),
        ("spec.ports[1].port", "FieldValueInvalid"),
    ]


def test_invalid_message_aggregates() -> None:
    causes = validate("Pod", pod(containers=[{"name": "c"}, {"name": "c", "image": "x"}]), None)
    msg = invalid_message("Pod", "web", causes)
    assert msg == (
        'Pod "web" is invalid: [spec.containers[0].image: Required value, '
        'spec.containers[1].name: Duplicate value: "c"]'
    )
    assert invalid_message("Lease", "l", causes[:1], "coordination.k8s.io").startswith(
        'Lease.coordination.k8s.io "l" is invalid: spec.containers[0].image'
    )
    assert validate_causes("Pod", pod(containers=[]), None) == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.containers"}
    ]


_garbage = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=4)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(
                [
                    "name",
                    "image",
                    "containers",
                    "spec",
                    "metadata",
                    "ports",
                    "env",
                    "volumes",
                    "data",
                    "labels",
                    "tolerations",
                    "resources",
                    "limits",
                    "requests",
                    "volumeMounts",
                    "taints",
                    "valueFrom",
                ]
            ),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=20,
)


@given(
    st.sampled_from(["Pod", "ConfigMap", "Secret", "Node", "Namespace", "Service", "Lease"]),
    _garbage,
    st.one_of(st.none(), _garbage),
)
def test_garbage_never_raises(kind: str, obj: Any, old: Any) -> None:
    causes = validate(kind, obj, old if isinstance(old, dict) else None)
    assert all(isinstance(c, Cause) for c in causes)
