"""The watch fast path for field selectors agrees with the full selectable-field sets."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from vkcompose.apiserver.handlers import field_matcher
from vkcompose.podspec.selectors import field_selector_for, object_fields, supported_fields

KINDS = ["Pod", "Node", "ConfigMap", "Secret", "Event", "Namespace", "Service"]
TEXTS = ["", "n1", "Running", "true", "false", "1"]
VALUES = st.sampled_from([None, True, False, 1, 0, *TEXTS])


def objects() -> st.SearchStrategy[dict[str, Any]]:
    inner = st.dictionaries(
        st.sampled_from(
            ["name", "namespace", "nodeName", "phase", "restartPolicy", "schedulerName",
             "serviceAccountName", "nominatedNodeName", "hostNetwork", "podIP", "unschedulable"]
        ),
        VALUES,
    )  # fmt: skip
    part = st.one_of(st.none(), st.just("text"), inner)
    return st.fixed_dictionaries(
        {}, optional={"metadata": part, "spec": part, "status": part, "type": VALUES}
    )


@st.composite
def selections(draw: st.DrawFn) -> tuple[str, str]:
    kind = draw(st.sampled_from(["Pod", "Pod", "Pod", *KINDS]))
    fields = sorted(supported_fields(kind))
    terms = draw(
        st.lists(
            st.tuples(
                st.sampled_from(fields),
                st.sampled_from(["=", "!="]),
                st.sampled_from(TEXTS),
            ),
            min_size=1,
            max_size=3,
        )
    )
    return kind, ",".join(f"{f}{op}{v}" for f, op, v in terms)


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, str, dict[str, Any]]:
    """A selection and an object that often sets the selected fields."""
    kind, text = draw(selections())
    obj = draw(objects())
    for term in text.split(","):
        field = term.replace("!=", "=").split("=")[0]
        outer, _, inner = field.partition(".")
        if inner and draw(st.booleans()):
            part = obj.get(outer)
            if not isinstance(part, dict):
                part = obj[outer] = {}
            part[inner] = draw(VALUES)
    return kind, text, obj


@settings(max_examples=300)
@given(cases())
def test_fast_matcher_equals_full_field_sets(case: tuple[str, str, dict[str, Any]]) -> None:
    kind, text, obj = case
    fs = field_selector_for(kind, text)
    assert field_matcher(kind, fs)(obj) == fs.matches(object_fields(kind, obj))


def test_node_name_selector_reads_the_bound_node() -> None:
    fs = field_selector_for("Pod", "spec.nodeName=n1,status.phase!=Succeeded")
    match = field_matcher("Pod", fs)
    assert match({"spec": {"nodeName": "n1"}, "status": {"phase": "Running"}})
    assert not match({"spec": {"nodeName": "n1"}, "status": {"phase": "Succeeded"}})
    assert not match({"spec": {"nodeName": "n2"}})
