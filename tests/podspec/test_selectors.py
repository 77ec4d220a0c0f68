"""Label/field selectors, node-selector terms and tolerations against upstream semantics."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vkcompose.podspec.selectors import (
    EVERYTHING,
    NOTHING,
    FieldSelector,
    Requirement,
    SelectorError,
    check_field_selector,
    escape_field_value,
    field_selector_for,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_qualified_name,
    is_valid_label_value,
    label_selector_from_dict,
    node_selector_term_matches,
    node_selector_terms_match,
    object_fields,
    parse_field_selector,
    parse_label_selector,
    supported_fields,
    tolerates,
    untolerated_taint,
)

# --- label selectors: documented examples ----------------------------------------------------
# https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("environment = production", {"environment": "production"}, True),
        ("environment = production", {"environment": "qa"}, False),
        ("tier != frontend", {"tier": "backend"}, True),
        ("tier != frontend", {}, True),  # != also selects objects without the key
        ("tier != frontend", {"tier": "frontend"}, False),
        ("environment=production,tier!=frontend", {"environment": "production"}, True),
        (
            "environment=production,tier!=frontend",
            {"environment": "production", "tier": "frontend"},
            False,
        ),
        ("environment in (production, qa)", {"environment": "qa"}, True),
        ("environment in (production, qa)", {"environment": "dev"}, False),
        ("environment in (production, qa)", {}, False),
        ("tier notin (frontend, backend)", {"tier": "cache"}, True),
        ("tier notin (frontend, backend)", {}, True),
        ("tier notin (frontend, backend)", {"tier": "backend"}, False),
        ("partition", {"partition": ""}, True),
        ("partition", {}, False),
        ("!partition", {}, True),
        ("!partition", {"partition": "a"}, False),
        ("partition in (customerA, customerB),environment!=qa", {"partition": "customerA"}, True),
        ("x==a", {"x": "a"}, True),
        ("x=", {"x": ""}, True),
        ("x=", {}, False),
        ("x>1", {"x": "2"}, True),
        ("x>1", {"x": "1"}, False),
        ("x>1", {"x": "abc"}, False),
        ("x<5", {"x": "-3"}, True),
        ("x<5", {}, False),
        ("", {"anything": "x"}, True),
        ("example.com/app=web", {"example.com/app": "web"}, True),
    ],
)
def test_label_selector_documented_examples(
    selector: str, labels: dict[str, str], expected: bool
) -> None:
    assert parse_label_selector(selector).matches(labels) is expected


# Good and bad strings from k8s.io/apimachinery/pkg/labels/selector_test.go (TestSelectorParse,
# TestLexerSequence, TestParserLookahead).
@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("x=a,y=b,z=c", "x=a,y=b,z=c"),
        ("", ""),
        ("x!=a,y=b", "x!=a,y=b"),
        ("x=,z= ", "x=,z="),
        ("x= ,z= ", "x=,z="),
        ("!x", "!x"),
        ("x>1", "x>1"),
        ("x>1,z<5", "x>1,z<5"),
        ("x in (a)", "x in (a)"),
        ("x in (b,a)", "x in (a,b)"),
        ("x notin ( a , b )", "x notin (a,b)"),
        ("x in ()", "x in ()"),
        ("x in (,a)", "x in (,a)"),
        ("z=c,x=a", "x=a,z=c"),  # sorted by key, as upstream
        ("  w   ,   !v  ", "!v,w"),
        ("x==a", "x==a"),
    ],
)
def test_label_selector_parse_and_string(text: str, canonical: str) -> None:
    sel = parse_label_selector(text)
    assert str(sel) == canonical
    assert parse_label_selector(str(sel)) == sel


@pytest.mark.parametrize(
    "text",
    [
        "x=a||y=b",
        "x==a==b",
        "!x=a",
        "x<a",
        "x>1.5",
        "x in (a b)",
        "x in a",
        "x in (a",
        "x=a,",
        ",x=a",
        "x=a,,y=b",
        "x notin",
        "x=a b",
        "-x=a",
        "x=-a",
        "a/b/c=d",
        "x=" + "v" * 64,
        "k" * 64 + "=v",
        "Example.com/x=a",
        "x in (a,-b)",
        "x!",
    ],
)
def test_label_selector_rejects(text: str) -> None:
    with pytest.raises(SelectorError):
        parse_label_selector(text)


def test_empty_and_nothing() -> None:
    assert EVERYTHING.empty and EVERYTHING.matches({}) and EVERYTHING.matches(None)
    assert parse_label_selector("   ").empty
    assert not NOTHING.empty and not NOTHING.matches({})
    assert not parse_label_selector("a").empty
    assert parse_label_selector("a=b,c in (d)").requires_exact("a") == "b"
    assert parse_label_selector("a=b,c in (d)").requires_exact("c") == "d"
    assert parse_label_selector("a!=b").requires_exact("a") is None


def test_requirement_validation() -> None:
    with pytest.raises(SelectorError):
        Requirement("a", "in", ())
    with pytest.raises(SelectorError):
        Requirement("a", "exists", ("x",))
    with pytest.raises(SelectorError):
        Requirement("a", "=", ("x", "y"))
    with pytest.raises(SelectorError):
        Requirement("a", "gt", ("x",))
    with pytest.raises(SelectorError):
        Requirement("a", "~", ("x",))


# --- hypothesis: round trip and semantics ------------------------------------------------------

_name_chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_names = st.one_of(
    st.sampled_from(_name_chars),
    st.builds(
        lambda a, mid, b: a + mid + b,
        st.sampled_from(_name_chars),
        st.text(alphabet=_name_chars + "-_.", max_size=6),
        st.sampled_from(_name_chars),
    ),
)
_dns_label = st.builds(
    lambda a, mid: a + mid, st.sampled_from("abcz09"), st.text(alphabet="abz09", max_size=4)
)
_prefixes = st.lists(_dns_label, min_size=1, max_size=3).map(".".join)
_keys = st.one_of(_names, st.builds(lambda p, n: f"{p}/{n}", _prefixes, _names))
_values = st.one_of(st.just(""), _names)


@st.composite
def _requirements(draw: st.DrawFn) -> Requirement:
    key = draw(_keys)
    op = draw(st.sampled_from(["=", "==", "!=", "in", "notin", "exists", "!", "gt", "lt"]))
    if op in ("exists", "!"):
        return Requirement(key, op)
    if op in ("gt", "lt"):
        return Requirement(key, op, (str(draw(st.integers(0, 1000))),))
    if op in ("in", "notin"):
        vals = draw(st.lists(_values, min_size=1, max_size=4, unique=True))
        return Requirement(key, op, tuple(vals))
    return Requirement(key, op, (draw(_values),))


@given(st.lists(_requirements(), max_size=5))
def test_label_selector_string_round_trip(reqs: list[Requirement]) -> None:
    text = ",".join(str(r) for r in reqs)
    sel = parse_label_selector(text)
    assert len(sel.requirements) == len(reqs)
    again = parse_label_selector(str(sel))
    assert str(again) == str(sel)
    assert [(r.key, r.operator, sorted(r.values)) for r in again.requirements] == [
        (r.key, r.operator, sorted(r.values)) for r in sel.requirements
    ]


def _oracle(r: Requirement, labels: dict[str, str]) -> bool:
    has = r.key in labels
    v = labels.get(r.key)
    if r.operator in ("=", "==", "in"):
        return has and v in r.values
    if r.operator in ("!=", "notin"):
        return not has or v not in r.values
    if r.operator == "exists":
        return has
    if r.operator == "!":
        return not has
    if not has or v is None or not v.lstrip("-").isdigit():
        return False
    return int(v) > int(r.values[0]) if r.operator == "gt" else int(v) < int(r.values[0])


@given(
    st.lists(_requirements(), max_size=4),
    st.dictionaries(_keys, st.one_of(_values, st.integers(-5, 5).map(str)), max_size=5),
)
def test_label_selector_matches_is_conjunction(
    reqs: list[Requirement], labels: dict[str, str]
) -> None:
    # Bias towards keys the labels carry so matches are exercised, not only misses.
    sel = parse_label_selector(",".join(str(r) for r in reqs))
    assert sel.matches(labels) == all(_oracle(r, labels) for r in reqs)


# --- structured selectors ---------------------------------------------------------------------


def test_label_selector_from_dict() -> None:
    # metav1.LabelSelectorAsSelector: nil selects nothing, empty selects everything.
    assert label_selector_from_dict(None).matches({}) is False
    assert label_selector_from_dict({}).matches({"a": "b"}) is True
    sel = label_selector_from_dict(
        {
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["a", "b"]},
                {"key": "env", "operator": "NotIn", "values": ["prod"]},
                {"key": "team", "operator": "Exists"},
                {"key": "legacy", "operator": "DoesNotExist"},
            ],
        }
    )
    assert sel.matches({"app": "web", "tier": "a", "team": "x"})
    assert not sel.matches({"app": "web", "tier": "a", "team": "x", "legacy": "1"})
    assert not sel.matches({"app": "web", "tier": "a", "team": "x", "env": "prod"})
    assert not sel.matches({"app": "web", "tier": "c", "team": "x"})
    assert str(sel) == "app=web,env notin (prod),!legacy,team,tier in (a,b)"


@pytest.mark.parametrize(
    "bad",
    [
        {"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]},
        {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
        {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
        {"matchLabels": {"a": 1}},
        {"matchLabels": {"-a": "b"}},
    ],
)
def test_label_selector_from_dict_rejects(bad: dict[str, object]) -> None:
    with pytest.raises(SelectorError):
        label_selector_from_dict(bad)


def test_node_selector_terms() -> None:
    labels = {"kubernetes.io/os": "linux", "cpus": "8", "zone": "a"}
    term = {
        "matchExpressions": [
            {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
            {"key": "cpus", "operator": "Gt", "values": ["4"]},
            {"key": "gpu", "operator": "DoesNotExist"},
            {"key": "zone", "operator": "NotIn", "values": ["b"]},
            {"key": "zone", "operator": "Exists"},
        ]
    }
    assert node_selector_term_matches(term, labels)
    assert not node_selector_term_matches(
        {"matchExpressions": [{"key": "cpus", "operator": "Lt", "values": ["4"]}]}, labels
    )
    # an empty term matches nothing; invalid requirements do not match
    assert not node_selector_term_matches({}, labels)
    assert not node_selector_term_matches(
        {"matchExpressions": [{"key": "cpus", "operator": "Gt", "values": ["x"]}]}, labels
    )
    assert not node_selector_term_matches(
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": []}]}, labels
    )
    assert not node_selector_term_matches(
        {"matchExpressions": [{"key": "zone", "operator": "Bogus", "values": ["a"]}]}, labels
    )
    by_name = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}
    assert node_selector_term_matches(by_name, {}, fields={"metadata.name": "n1"})
    assert not node_selector_term_matches(by_name, {}, fields={"metadata.name": "n2"})
    terms = [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}, term]
    assert node_selector_terms_match(terms, labels)
    assert not node_selector_terms_match(terms[:1], labels)


# --- field selectors --------------------------------------------------------------------------
# Cases from k8s.io/apimachinery/pkg/fields/selector_test.go (TestSelectorParse, TestEscape).


@pytest.mark.parametrize(
    ("text", "reqs", "canonical"),
    [
        ("", [], ""),
        ("x=a", [("x", "=", "a")], "x=a"),
        ("x=a,y=b,z=c", [("x", "=", "a"), ("y", "=", "b"), ("z", "=", "c")], "x=a,y=b,z=c"),
        ("x!=a,y=b", [("x", "!=", "a"), ("y", "=", "b")], "x!=a,y=b"),
        ("x==a", [("x", "=", "a")], "x=a"),
        ("x=", [("x", "=", "")], "x="),
        ("x=a\\,b", [("x", "=", "a,b")], "x=a\\,b"),
        ("x=a\\=b\\\\c", [("x", "=", "a=b\\c")], "x=a\\=b\\\\c"),
        ("spec.nodeName=,status.phase!=Failed",
         [("spec.nodeName", "=", ""), ("status.phase", "!=", "Failed")],
         "spec.nodeName=,status.phase!=Failed"),
    ],
)  # fmt: skip
def test_field_selector_parse(text: str, reqs: list[tuple[str, str, str]], canonical: str) -> None:
    sel = parse_field_selector(text)
    assert list(sel.requirements) == reqs
    assert str(sel) == canonical
    assert parse_field_selector(str(sel)) == sel


@pytest.mark.parametrize(
    "text", ["x=a||y=b", "x==a==b", "x=a,b", "x=a=b", "x", "x=a\\b", "x=a\\", "x=a,y"]
)
def test_field_selector_rejects(text: str) -> None:
    with pytest.raises(SelectorError):
        parse_field_selector(text)


def test_field_selector_escape() -> None:
    # fields.EscapeValue examples: `\` -> `\\`, `,` -> `\,`, `=` -> `\=`
    assert escape_field_value("") == ""
    assert escape_field_value("a") == "a"
    assert escape_field_value("=") == "\\="
    assert escape_field_value(",") == "\\,"
    assert escape_field_value("\\") == "\\\\"
    assert escape_field_value("\\=\\,") == "\\\\\\=\\\\\\,"


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["metadata.name", "spec.nodeName", "status.phase", "x"]),
            st.sampled_from(["=", "!="]),
            st.text(alphabet="ab\\,= .-", max_size=8),
        ),
        max_size=4,
    )
)
def test_field_selector_round_trip(reqs: list[tuple[str, str, str]]) -> None:
    sel = FieldSelector(tuple(reqs))
    assert parse_field_selector(str(sel)) == sel


def test_field_selector_matches() -> None:
    sel = parse_field_selector("spec.nodeName=n1,status.phase!=Succeeded")
    assert sel.matches({"spec.nodeName": "n1", "status.phase": "Running"})
    assert not sel.matches({"spec.nodeName": "n1", "status.phase": "Succeeded"})
    assert not sel.matches({"spec.nodeName": "n2"})
    # a missing field reads as the empty string
    assert parse_field_selector("spec.nodeName=").matches({})
    assert sel.requires_exact("spec.nodeName") == "n1"
    assert sel.requires_exact("status.phase") is None


POD = {
    "metadata": {"name": "p", "namespace": "ns"},
    "spec": {"nodeName": "n1", "restartPolicy": "Always", "schedulerName": "default-scheduler",
             "serviceAccountName": "default", "hostNetwork": True},
    "status": {"phase": "Running", "podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}]},
}  # fmt: skip


def test_object_fields_pod() -> None:
    assert object_fields("Pod", POD) == {
        "metadata.name": "p",
        "metadata.namespace": "ns",
        "spec.nodeName": "n1",
        "spec.restartPolicy": "Always",
        "spec.schedulerName": "default-scheduler",
        "spec.serviceAccountName": "default",
        "spec.hostNetwork": "true",
        "status.phase": "Running",
        "status.podIP": "10.0.0.1",
        "status.nominatedNodeName": "",
    }
    assert object_fields("pods", {"metadata": {"name": "x"}})["spec.hostNetwork"] == "false"
    assert set(object_fields("Pod", POD)) == supported_fields("Pod")


def test_object_fields_other_kinds() -> None:
    node = {"metadata": {"name": "n"}, "spec": {"unschedulable": True}}
    assert object_fields("Node", node) == {"metadata.name": "n", "spec.unschedulable": "true"}
    event = {
        "metadata": {"name": "e", "namespace": "ns"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "ns", "uid": "u"},
        "reason": "Started",
        "source": {"component": "kubelet"},
        "type": "Normal",
    }
    ef = object_fields("Event", event)
    assert ef["involvedObject.kind"] == "Pod" and ef["source"] == "kubelet"
    assert ef["involvedObject.fieldPath"] == "" and set(ef) == supported_fields("Event")
    assert (
        object_fields("Secret", {"metadata": {"name": "s"}, "type": "Opaque"})["type"] == "Opaque"
    )
    ns = object_fields("Namespace", {"metadata": {"name": "d"}, "status": {"phase": "Active"}})
    assert ns == {"metadata.name": "d", "status.phase": "Active"}
    assert object_fields("ConfigMap", {"metadata": {"name": "c", "namespace": "n"}}) == {
        "metadata.name": "c",
        "metadata.namespace": "n",
    }


def test_unsupported_field_label() -> None:
    with pytest.raises(SelectorError, match=r"^field label not supported: spec\.foo$"):
        field_selector_for("Pod", "spec.foo=bar")
    with pytest.raises(SelectorError, match=r"field label not supported: spec\.nodeName"):
        check_field_selector("ConfigMap", parse_field_selector("spec.nodeName=x"))
    # cluster-scoped kinds have no metadata.namespace field (generic.ObjectMetaFieldsSet)
    with pytest.raises(SelectorError):
        field_selector_for("Node", "metadata.namespace=x")
    assert field_selector_for("pods", "status.phase!=Failed").requirements


# --- name validators (k8s.io/apimachinery/pkg/util/validation/validation_test.go) ------------


def test_name_validators() -> None:
    for good in ["a", "ab", "abc", "a1", "a-1", "a--1--2--b", "0", "01", "a" * 63]:
        assert is_dns1123_label(good) == [], good
    for bad in ["", "A", "ABC", "a.b", "-1", "1-", "a_", "a" * 64]:
        assert is_dns1123_label(bad), bad
    for good in ["a.b", "a.b.c.d.e", "aa.bb.cc", "a" * 253, "11.22.33"]:
        assert is_dns1123_subdomain(good) == [], good
    for bad in ["", "A", "a..b", ".a", "a.", "a_b", "a" * 254]:
        assert is_dns1123_subdomain(bad), bad
    for good in [
        "simple",
        "now-with-dashes",
        "1-starts-with-num",
        "1234",
        "simple/simple",
        "now-with-dashes/simple",
        "now-with-dashes/now-with-dashes",
        "now.with.dots/simple",
        "now-with.dashes-and.dots/simple",
        "1-num.2-num/3-num",
        "1234/5678",
        "1.2.3.4/5678",
        "Uppercase_Is_OK_123",
        "example.com/Uppercase_Is_OK_123",
        "a" * 63,
        "a" * 253 + "/" + "b" * 63,
    ]:
        assert is_qualified_name(good) == [], good
    for bad in ["nospecialchars%^=@", "cantendwithadash-", "-cantstartwithadash-",
                "only/one/slash", "Example.com/abc", "example_com/abc", "example.com/",
                "/simple", "a" * 64, "a" * 254 + "/abc"]:  # fmt: skip
        assert is_qualified_name(bad), bad
    assert is_valid_label_value("") == []
    assert is_valid_label_value("a_b.c-d") == []
    assert is_valid_label_value("-a")
    assert is_valid_label_value("a" * 64)
    assert is_qualified_name("-a") == [
        "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
        "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', "
        "regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
    ]


# --- tolerations ------------------------------------------------------------------------------
# Table after k8s.io/api/core/v1/toleration_test.go (TestTolerationToleratesTaint).


@pytest.mark.parametrize(
    ("toleration", "taint", "expected"),
    [
        ({"key": "foo", "operator": "Exists", "effect": "NoSchedule"},
         {"key": "foo", "value": "bar", "effect": "NoSchedule"}, True),
        ({"key": "foo", "operator": "Equal", "value": "bar", "effect": "NoSchedule"},
         {"key": "foo", "value": "bar", "effect": "NoSchedule"}, True),
        ({"key": "foo", "operator": "Equal", "value": "bar", "effect": "NoSchedule"},
         {"key": "foo", "value": "baz", "effect": "NoSchedule"}, False),
        ({"key": "foo", "operator": "Exists", "effect": "NoExecute"},
         {"key": "foo", "value": "bar", "effect": "NoSchedule"}, False),
        ({"key": "foo", "operator": "Exists"},
         {"key": "foo", "value": "bar", "effect": "NoExecute"}, True),
        ({"operator": "Exists"}, {"key": "anything", "effect": "NoSchedule"}, True),
        ({"key": "foo", "value": "bar"}, {"key": "foo", "value": "bar", "effect": "NoSchedule"},
         True),  # empty operator means Equal
        ({"key": "foo"}, {"key": "foo", "value": "bar", "effect": "NoSchedule"}, False),
        ({"key": "other", "operator": "Exists"}, {"key": "foo", "effect": "NoSchedule"}, False),
        ({"key": "foo", "operator": "Bogus"}, {"key": "foo", "effect": "NoSchedule"}, False),
    ],
)  # fmt: skip
def test_tolerates(toleration: dict[str, str], taint: dict[str, str], expected: bool) -> None:
    assert tolerates([toleration], taint) is expected


def test_untolerated_taint() -> None:
    taints = [
        {"key": "soft", "effect": "PreferNoSchedule"},
        {"key": "virtual-kubelet.io/provider", "value": "mock", "effect": "NoSchedule"},
    ]
    assert untolerated_taint([], taints) == taints[1]
    assert untolerated_taint(None, taints[:1]) is None
    ok = [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}]
    assert untolerated_taint(ok, taints) is None
    assert not tolerates(None, taints[1])
