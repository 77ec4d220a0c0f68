"""``$(VAR)`` expansion: the Kubernetes table, the docs example and properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vkcompose.podspec.expansion import chained, dependent_env, escape, expand, expand_command

CONTEXT = {
    "VAR_A": "A",
    "VAR_B": "B",
    "VAR_C": "C",
    "VAR_REF": "$(VAR_A)",
    "VAR_EMPTY": "",
}

# The cases Kubernetes' own expansion tests pin (third_party/forked/golang/expansion).
TABLE = [
    ("$(VAR_A)", "A"),
    ("$(VAR_A)-$(VAR_A)", "A-A"),
    ("$(VAR_A)-1", "A-1"),
    ("___$(VAR_B)___", "___B___"),
    ("___$(VAR_C)", "___C"),
    ("$(VAR_A)_$(VAR_B)_$(VAR_C)", "A_B_C"),
    ("$$(VAR_B)_$(VAR_A)", "$(VAR_B)_A"),
    ("$$(VAR_A)_$$(VAR_B)", "$(VAR_A)_$(VAR_B)"),
    ("f000-$$VAR_A", "f000-$VAR_A"),
    ("foo\\$(VAR_C)bar", "foo\\Cbar"),
    ("foo\\\\$(VAR_C)bar", "foo\\\\Cbar"),
    ("foo\\\\\\\\$(VAR_A)bar", "foo\\\\\\\\Abar"),
    ("$(VAR_A$(VAR_B))", "$(VAR_A$(VAR_B))"),
    ("$(VAR_A$(VAR_B)", "$(VAR_A$(VAR_B)"),
    ("$(VAR_REF)", "$(VAR_A)"),
    ("%%$(VAR_REF)--$(VAR_REF)%%", "%%$(VAR_A)--$(VAR_A)%%"),
    ("foo$(VAR_EMPTY)bar", "foobar"),
    ("foo$(VAR_Awhoops!", "foo$(VAR_Awhoops!"),
    ("f00__(VAR_A)__", "f00__(VAR_A)__"),
    ("$?_boo_$!", "$?_boo_$!"),
    ("$VAR_A", "$VAR_A"),
    ("$(VAR_DNE)", "$(VAR_DNE)"),
    ("$$$$$$(BIG_MONEY)", "$$$(BIG_MONEY)"),
    ("$$$$$$(VAR_A)", "$$$(VAR_A)"),
    ("$$$$$$$(GOOD_ODDS)", "$$$$(GOOD_ODDS)"),
    ("$$$$$$$(VAR_A)", "$$$A"),
    ("$VAR_A)", "$VAR_A)"),
    ("${VAR_A}", "${VAR_A}"),
    ("$(VAR_B)_______$(A", "B_______$(A"),
    ("$(VAR_C)_______$(", "C_______$("),
    ("$(VAR_A)foobarzab$", "Afoobarzab$"),
    ("foo-\\$(VAR_A", "foo-\\$(VAR_A"),
    ("--$($($($($--", "--$($($($($--"),
    ("$($($($($--foo$(", "$($($($($--foo$("),
    ("foo0--$($($($(", "foo0--$($($($("),
    ("$(foo$$var)", "$(foo$$var)"),
    ("\n", "\n"),
    ("$é$(VAR_A)", "$éA"),
]


@pytest.mark.parametrize(("text", "expected"), TABLE)
def test_kubernetes_table(text: str, expected: str) -> None:
    assert expand(text, CONTEXT) == expected
    # The same through a chained lookup of two mappings and through a function.
    first = {k: v for k, v in CONTEXT.items() if k in ("VAR_A", "VAR_EMPTY")}
    second = {k: v for k, v in CONTEXT.items() if k not in first}
    assert expand(text, chained(first, second)) == expected


def test_dependent_environment_variables_docs_example() -> None:
    """https://kubernetes.io/docs/tasks/inject-data-application/define-interdependent-environment-variables/"""
    env = [
        {"name": "SERVICE_PORT", "value": "80"},
        {"name": "SERVICE_IP", "value": "172.17.0.1"},
        {"name": "UNCHANGED_REFERENCE", "value": "$(PROTOCOL)://$(SERVICE_IP):$(SERVICE_PORT)"},
        {"name": "PROTOCOL", "value": "https"},
        {"name": "SERVICE_ADDRESS", "value": "$(PROTOCOL)://$(SERVICE_IP):$(SERVICE_PORT)"},
        {"name": "ESCAPED_REFERENCE", "value": "$$(PROTOCOL)://$(SERVICE_IP):$(SERVICE_PORT)"},
    ]
    result = dependent_env(env)
    assert result["UNCHANGED_REFERENCE"] == "$(PROTOCOL)://172.17.0.1:80"
    assert result["SERVICE_ADDRESS"] == "https://172.17.0.1:80"
    assert result["ESCAPED_REFERENCE"] == "$(PROTOCOL)://172.17.0.1:80"


def test_dependent_env_chain_initial_and_outer() -> None:
    env = [
        {"name": "FOO", "value": "bar"},
        {"name": "ZOO", "value": "$(FOO)-1"},
        {"name": "BLU", "value": "$(ZOO)-2-$(FROM_FILE)-$(SVC)"},
        {"name": "FOO", "value": "$(FOO)$(FOO)"},
        {"name": "EMPTY"},
    ]
    result = dependent_env(env, initial={"FROM_FILE": "f", "SVC": "mine"}, outer={"SVC": "s"})
    assert result == {
        "FROM_FILE": "f",
        "SVC": "mine",
        "FOO": "barbar",
        "ZOO": "bar-1",
        "BLU": "bar-1-2-f-mine",
        "EMPTY": "",
    }
    assert dependent_env([{"name": "X", "value": "$(SVC)"}], outer={"SVC": "s"}) == {"X": "s"}


def test_expand_command() -> None:
    env = {"MESSAGE": "hello", "NAME": "$(NOT)"}
    assert expand_command(["echo", "$(MESSAGE)", "$$(MESSAGE)", "$(NAME)", "$(NONE)"], env) == [
        "echo",
        "hello",
        "$(MESSAGE)",
        "$(NOT)",
        "$(NONE)",
    ]
    assert expand_command(None, env) is None


names = st.text(alphabet="ABC_$()x", min_size=0, max_size=5)
texts = st.text(alphabet=st.sampled_from(list("$()ABx_\\é ")), max_size=40)
mappings = st.dictionaries(names, st.text(alphabet="$()ab", max_size=6), max_size=4)


@given(texts, mappings)
def test_escape_round_trips(text: str, mapping: dict[str, str]) -> None:
    assert expand(escape(text), mapping) == text


@given(texts)
def test_empty_mapping_changes_only_escapes(text: str) -> None:
    """Without variables, expansion only collapses ``$$``: never loses other text."""
    out = expand(text, {})
    assert out.replace("$", "") == text.replace("$", "")
    assert "$" not in text or len(out) <= len(text)
    if "$$" not in text:
        assert out == text


@given(st.text(alphabet=st.characters(blacklist_characters="$"), max_size=30), mappings)
def test_text_without_operator_is_unchanged(text: str, mapping: dict[str, str]) -> None:
    assert expand(text, mapping) == text


@given(st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True), st.text(max_size=10))
def test_known_reference_is_replaced(name: str, value: str) -> None:
    assert expand(f"<$({name})>", {name: value}) == f"<{value}>"
    assert expand(f"<$$({name})>", {name: value}) == f"<$({name})>"


def _reference_expand(s: str, mapping: dict[str, str]) -> str:
    """Kubernetes' scanner transcribed character by character (the oracle for ``expand``)."""
    out, checkpoint, cursor, n = [], 0, 0, len(s)
    while cursor < n:
        if s[cursor] == "$" and cursor + 1 < n:
            out.append(s[checkpoint:cursor])
            nxt, advance = s[cursor + 1], 1
            if nxt == "$":
                out.append("$")
            elif nxt == "(":
                close = s.find(")", cursor + 2)
                if close < 0:
                    out.append("$(")
                else:
                    name = s[cursor + 2 : close]
                    out.append(mapping.get(name, f"$({name})"))
                    advance = close - cursor
            else:
                out.append("$" + nxt)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    out.append(s[checkpoint:])
    return "".join(out)


@given(
    s=st.text(alphabet=st.sampled_from(list("$()AB_x\\é")), max_size=40),
    mapping=st.dictionaries(st.sampled_from(["A", "B", "A_B", "", "x$"]), st.text(max_size=4)),
)
def test_expand_matches_the_character_scanner(s: str, mapping: dict[str, str]) -> None:
    assert expand(s, mapping) == _reference_expand(s, mapping)
    assert expand(s, mapping.get) == _reference_expand(s, mapping)


def test_expand_accepts_dicts_mappings_functions_and_methods() -> None:
    from types import MappingProxyType

    env = {"A": "x"}

    class Lookup:
        def get(self, name: str) -> str | None:
            return env.get(name)

    def function(name: str) -> str | None:
        return env.get(name)

    for mapping in (env, MappingProxyType(env), function, Lookup().get, env.get):
        assert expand("$(A)-$(B)", mapping) == "x-$(B)"


@given(
    s=st.text(alphabet=st.sampled_from(list("$()AB_x")), max_size=30),
    first=st.dictionaries(st.sampled_from(["A", "B", ""]), st.text(alphabet="$(a", max_size=3)),
    second=st.dictionaries(st.sampled_from(["A", "B", ""]), st.text(alphabet="$(b", max_size=3)),
)
def test_a_string_compiled_once_expands_right_for_every_mapping(
    s: str, first: dict[str, str], second: dict[str, str]
) -> None:
    """Compiled strings are cached by text alone: the second expansion (a cache hit, with
    another mapping) is exact too."""
    from vkcompose.podspec import expansion

    expansion._COMPILED.clear()
    assert expand(s, first) == _reference_expand(s, first)
    assert expand(s, second) == _reference_expand(s, second)
    assert expand(s, first.get) == _reference_expand(s, first)
