"""Label selectors, field selectors, node-selector terms and taint tolerations.

Pure re-implementations of the Kubernetes semantics:

- label selectors: ``k8s.io/apimachinery/pkg/labels/selector.go`` (parser, ``String()``,
  matching) and ``metav1.LabelSelectorAsSelector`` for the structured form;
- field selectors: ``k8s.io/apimachinery/pkg/fields/selector.go`` (``=``, ``==``, ``!=``,
  comma = AND, backslash escaping) and the per-kind selectable fields of kube-apiserver's
  registries (``pkg/registry/core/*/strategy.go``);
- node affinity terms: ``k8s.io/component-helpers/scheduling/corev1/nodeaffinity``;
- tolerations: ``Toleration.ToleratesTaint`` from ``k8s.io/api/core/v1/toleration.go``.

It also carries the name validators those grammars rely on (qualified names, label values,
DNS-1123 labels and subdomains), with kube-apiserver's error messages.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

import attrs

__all__ = [
    "EVERYTHING",
    "NOTHING",
    "FieldSelector",
    "LabelSelector",
    "Requirement",
    "SelectorError",
    "check_field_selector",
    "escape_field_value",
    "field_selector_for",
    "field_text",
    "is_dns1123_label",
    "is_dns1123_subdomain",
    "is_qualified_name",
    "is_valid_label_value",
    "label_selector_from_dict",
    "node_selector_term_matches",
    "node_selector_terms_match",
    "object_fields",
    "parse_field_selector",
    "parse_label_selector",
    "supported_fields",
    "tolerates",
    "untolerated_taint",
]


class SelectorError(ValueError):
    """A label or field selector (or a structured selector) that cannot be parsed or used."""


# --------------------------------------------------------------------------------------------
# Name validation (k8s.io/apimachinery/pkg/util/validation/validation.go)
# --------------------------------------------------------------------------------------------

_QUALIFIED_NAME_FMT: Final = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QUALIFIED_NAME_ERR: Final = (
    "must consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_QUALIFIED_NAME_RE: Final = re.compile(_QUALIFIED_NAME_FMT)
_QUALIFIED_NAME_MAX: Final = 63
_LABEL_VALUE_FMT: Final = "(" + _QUALIFIED_NAME_FMT + ")?"
_LABEL_VALUE_ERR: Final = (
    "a valid label must be an empty string or consist of alphanumeric characters, "
    "'-', '_' or '.', and must start and end with an alphanumeric character"
)
_LABEL_VALUE_RE: Final = re.compile(_LABEL_VALUE_FMT)
_DNS1123_LABEL_FMT: Final = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_ERR: Final = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
_DNS1123_LABEL_RE: Final = re.compile(_DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN_FMT: Final = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_ERR: Final = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_RE: Final = re.compile(_DNS1123_SUBDOMAIN_FMT)


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    # validation.RegexError: "<msg> (e.g. 'a', or 'b', regex used for validation is '<fmt>')"
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    shown = "".join(("" if i == 0 else " or ") + f"'{e}', " for i, e in enumerate(examples))
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


_CACHE_MAX_LEN: Final = 300  # longer values are checked without being cached


def _cached(fn: Callable[[str], tuple[str, ...]], value: str) -> tuple[str, ...]:
    if len(value) > _CACHE_MAX_LEN:
        return fn.__wrapped__(value)  # type: ignore[attr-defined,no-any-return]
    return fn(value)


def _max_len_error(n: int) -> str:
    return f"must be no more than {n} characters"


def is_dns1123_label(value: str) -> list[str]:
    """Errors (empty if valid) of ``value`` as an RFC 1123 label (namespace, container names)."""
    return list(_cached(_is_dns1123_label, value))


@functools.lru_cache(maxsize=4096)
def _is_dns1123_label(value: str) -> tuple[str, ...]:
    errs: list[str] = []
    if len(value) > 63:
        errs.append(_max_len_error(63))
    if not _DNS1123_LABEL_RE.fullmatch(value):
        errs.append(_regex_error(_DNS1123_LABEL_ERR, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return tuple(errs)


def is_dns1123_subdomain(value: str) -> list[str]:
    """Errors (empty if valid) of ``value`` as an RFC 1123 subdomain (most object names)."""
    return list(_cached(_is_dns1123_subdomain, value))


@functools.lru_cache(maxsize=4096)
def _is_dns1123_subdomain(value: str) -> tuple[str, ...]:
    errs: list[str] = []
    if len(value) > 253:
        errs.append(_max_len_error(253))
    if not _DNS1123_SUBDOMAIN_RE.fullmatch(value):
        errs.append(_regex_error(_DNS1123_SUBDOMAIN_ERR, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return tuple(errs)


def is_qualified_name(value: str) -> list[str]:
    """Errors (empty if valid) of ``value`` as a qualified name (label/annotation keys).

    ``[prefix/]name``: the optional prefix is a DNS-1123 subdomain, the name at most 63
    characters of alphanumerics, ``-``, ``_`` and ``.``, starting and ending alphanumeric.
    """
    return list(_cached(_is_qualified_name, value))


@functools.lru_cache(maxsize=4096)
def _is_qualified_name(value: str) -> tuple[str, ...]:
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in is_dns1123_subdomain(prefix))
    else:
        return (
            "a qualified name "
            + _regex_error(_QUALIFIED_NAME_ERR, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
        )
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > _QUALIFIED_NAME_MAX:
        errs.append("name part " + _max_len_error(_QUALIFIED_NAME_MAX))
    if name and not _QUALIFIED_NAME_RE.fullmatch(name):
        errs.append(
            "name part "
            + _regex_error(_QUALIFIED_NAME_ERR, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
        )
    return tuple(errs)


def is_valid_label_value(value: str) -> list[str]:
    """Errors (empty if valid) of ``value`` as a label value (may be empty, at most 63 chars)."""
    return list(_cached(_is_valid_label_value, value))


@functools.lru_cache(maxsize=4096)
def _is_valid_label_value(value: str) -> tuple[str, ...]:
    errs: list[str] = []
    if len(value) > 63:
        errs.append(_max_len_error(63))
    if not _LABEL_VALUE_RE.fullmatch(value):
        errs.append(
            _regex_error(_LABEL_VALUE_ERR, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345")
        )
    return tuple(errs)


def _check_key(key: str) -> None:
    errs = is_qualified_name(key)
    if errs:
        raise SelectorError(f"invalid label key {key!r}: {'; '.join(errs)}")


def _check_value(value: str) -> None:
    errs = is_valid_label_value(value)
    if errs:
        raise SelectorError(f"invalid label value: {value!r}: {'; '.join(errs)}")


# --------------------------------------------------------------------------------------------
# Label selectors
# --------------------------------------------------------------------------------------------

_OPERATORS: Final = frozenset({"=", "==", "!=", "in", "notin", "exists", "!", "gt", "lt"})


_INT_RE: Final = re.compile(r"[-+]?[0-9]+")


def _as_int(s: str) -> int | None:
    # strconv.ParseInt(s, 10, 64): optional sign, decimal digits, 64-bit range.
    if not _INT_RE.fullmatch(s):
        return None
    n = int(s, 10)
    return n if -(2**63) <= n < 2**63 else None


def _value_set(values: Iterable[str]) -> tuple[str, ...]:
    # Values form a set; keep them sorted so equal requirements compare equal.
    return tuple(sorted(set(values)))


@attrs.frozen
class Requirement:
    """One term of a label selector: ``key <operator> values``.

    ``operator`` uses apimachinery's ``selection.Operator`` spellings: ``=``, ``==``, ``!=``,
    ``in``, ``notin``, ``exists``, ``!`` (does not exist), ``gt`` and ``lt``.
    """

    key: str
    operator: str
    values: tuple[str, ...] = attrs.field(default=(), converter=_value_set)

    def __attrs_post_init__(self) -> None:
        if self.operator not in _OPERATORS:
            raise SelectorError(f"{self.operator!r} is not a valid label selector operator")
        _check_key(self.key)
        n = len(self.values)
        if self.operator in ("in", "notin") and n == 0:
            raise SelectorError("for 'in', 'notin' operators, values set can't be empty")
        if self.operator in ("=", "==", "!=") and n != 1:
            raise SelectorError("exact-match compatibility requires one single value")
        if self.operator in ("exists", "!") and n != 0:
            raise SelectorError("values set must be empty for exists and does not exist")
        if self.operator in ("gt", "lt"):
            if n != 1:
                raise SelectorError("for 'Gt', 'Lt' operators, exactly one value is required")
            if _as_int(self.values[0]) is None:
                raise SelectorError("for 'Gt', 'Lt' operators, the value must be an integer")
        for v in self.values:
            _check_value(v)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this requirement (apimachinery ``Requirement.Matches``)."""
        op = self.operator
        if op in ("=", "==", "in"):
            return self.key in labels and labels[self.key] in self.values
        if op in ("!=", "notin"):
            return self.key not in labels or labels[self.key] not in self.values
        if op == "exists":
            return self.key in labels
        if op == "!":
            return self.key not in labels
        # gt / lt: the label must exist and parse as an integer.
        if self.key not in labels:
            return False
        have = _as_int(labels[self.key])
        want = _as_int(self.values[0])
        if have is None or want is None:
            return False
        return have > want if op == "gt" else have < want

    def __str__(self) -> str:
        op = self.operator
        if op == "!":
            return "!" + self.key
        if op == "exists":
            return self.key
        if op in ("in", "notin"):
            return f"{self.key} {op} ({','.join(self.values)})"
        sym = {"gt": ">", "lt": "<"}.get(op, op)
        return f"{self.key}{sym}{self.values[0]}"


@attrs.frozen
class LabelSelector:
    """A parsed label selector: an AND of requirements.

    A selector with no requirements matches everything (its ``empty`` is true), except the
    special :data:`NOTHING` selector (a nil ``metav1.LabelSelector``), which matches nothing.
    """

    requirements: tuple[Requirement, ...] = ()
    match_nothing: bool = False

    @property
    def empty(self) -> bool:
        """True if the selector has no requirements and therefore matches every label set."""
        return not self.requirements and not self.match_nothing

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether ``labels`` (``None`` is treated as no labels) satisfy every requirement."""
        if self.match_nothing:
            return False
        lab: Mapping[str, str] = labels if labels is not None else {}
        return all(r.matches(lab) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    def requires_exact(self, key: str) -> str | None:
        """The value ``key`` must equal (``=``, ``==`` or a one-value ``in``), if any."""
        for r in self.requirements:
            if r.key == key and r.operator in ("=", "==", "in") and len(r.values) == 1:
                return r.values[0]
        return None


EVERYTHING: Final = LabelSelector()
"""The selector that matches every label set (the empty selector)."""

NOTHING: Final = LabelSelector(match_nothing=True)
"""The selector that matches no label set (a nil structured selector)."""


def _sorted_selector(reqs: Iterable[Requirement]) -> LabelSelector:
    # labels.Parse sorts requirements by key (stable), so String() is canonical.
    return LabelSelector(tuple(sorted(reqs, key=lambda r: r.key)))


# Lexer: apimachinery labels.Lexer. Special symbols end identifiers; whitespace separates.
_SPECIAL: Final = frozenset("=!(),<>")
_TOKEN_IDENT, _TOKEN_OP, _TOKEN_END = "ident", "op", "end"


def _tokenize(s: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c.isspace():
            i += 1
            continue
        if c in _SPECIAL:
            two = s[i : i + 2]
            if two in ("!=", "=="):
                tokens.append((_TOKEN_OP, two))
                i += 2
            else:
                tokens.append((_TOKEN_OP, c))
                i += 1
            continue
        j = i
        while j < n and not s[j].isspace() and s[j] not in _SPECIAL:
            j += 1
        tokens.append((_TOKEN_IDENT, s[i:j]))
        i = j
    tokens.append((_TOKEN_END, ""))
    return tokens


class _LabelParser:
    def __init__(self, s: str) -> None:
        self.s = s
        self.tokens = _tokenize(s)
        self.pos = 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.pos]

    def take(self) -> tuple[str, str]:
        tok = self.tokens[self.pos]
        if tok[0] != _TOKEN_END:
            self.pos += 1
        return tok

    def fail(self, found: str, expected: str) -> SelectorError:
        return SelectorError(f"unable to parse requirement: found '{found}', expected: {expected}")

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        if self.peek()[0] == _TOKEN_END:
            return reqs
        while True:
            kind, lit = self.peek()
            if kind == _TOKEN_IDENT or (kind == _TOKEN_OP and lit == "!"):
                reqs.append(self.requirement())
                kind, lit = self.take()
                if kind == _TOKEN_END:
                    return reqs
                if not (kind == _TOKEN_OP and lit == ","):
                    raise self.fail(lit, "',' or 'end of string'")
                nkind, nlit = self.peek()
                if not (nkind == _TOKEN_IDENT or (nkind == _TOKEN_OP and nlit == "!")):
                    raise self.fail(nlit, "identifier after ','")
            else:
                raise self.fail(lit, "! or identifier")

    def requirement(self) -> Requirement:
        kind, lit = self.take()
        if kind == _TOKEN_OP and lit == "!":
            kind, key = self.take()
            if kind != _TOKEN_IDENT:
                raise self.fail(key, "identifier")
            nxt_kind, nxt = self.peek()
            if not (nxt_kind == _TOKEN_END or (nxt_kind == _TOKEN_OP and nxt == ",")):
                raise self.fail(nxt, "',' or 'end of string'")
            return Requirement(key, "!")
        key = lit
        _check_key(key)
        nxt_kind, nxt = self.peek()
        if nxt_kind == _TOKEN_END or (nxt_kind == _TOKEN_OP and nxt == ","):
            return Requirement(key, "exists")
        op = self.operator()
        if op in ("in", "notin"):
            return Requirement(key, op, self.value_set())
        # =, ==, !=, >, <: one (possibly empty) value.
        vkind, value = self.peek()
        if vkind == _TOKEN_IDENT:
            self.take()
        elif vkind == _TOKEN_END or (vkind == _TOKEN_OP and value == ","):
            value = ""
        else:
            raise self.fail(value, "identifier")
        if op in ("gt", "lt") and _as_int(value) is None:
            raise SelectorError(
                f"unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an "
                f"integer: {value!r}"
            )
        return Requirement(key, op, (value,))

    def operator(self) -> str:
        kind, lit = self.take()
        if kind == _TOKEN_OP and lit in ("=", "==", "!="):
            return lit
        if kind == _TOKEN_OP and lit in (">", "<"):
            return "gt" if lit == ">" else "lt"
        if kind == _TOKEN_IDENT and lit in ("in", "notin"):
            return lit
        raise self.fail(lit, "[=, ==, !=, in, notin, >, <]")

    def value_set(self) -> tuple[str, ...]:
        kind, lit = self.take()
        if not (kind == _TOKEN_OP and lit == "("):
            raise self.fail(lit, "'('")
        values: list[str] = []
        kind, lit = self.peek()
        if kind == _TOKEN_OP and lit == ")":
            self.take()
            return ("",)
        # identifier list: identifiers separated by commas; empty elements mean "".
        expect_value = True
        while True:
            kind, lit = self.take()
            if kind == _TOKEN_IDENT and expect_value:
                values.append(lit)
                expect_value = False
            elif kind == _TOKEN_OP and lit == ",":
                if expect_value:
                    values.append("")
                expect_value = True
            elif kind == _TOKEN_OP and lit == ")":
                if expect_value:
                    values.append("")
                break
            else:
                raise self.fail(lit, "',', ')' or identifier")
        return tuple(dict.fromkeys(values))


def parse_label_selector(s: str) -> LabelSelector:
    """Parse a label selector string (the ``labelSelector`` query parameter).

    Grammar as ``labels.Parse``: ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``,
    ``k notin (a,b)``, ``k`` (exists), ``!k`` (does not exist), ``k>1``, ``k<1``; terms are
    ANDed with commas; whitespace between tokens is ignored. Requirements come back sorted by
    key, as upstream. Raises :class:`SelectorError` on bad syntax or invalid keys/values.
    """
    if not s.strip():
        return EVERYTHING
    return _sorted_selector(_LabelParser(s).parse())


_MATCH_EXPRESSION_OPS: Final = {
    "In": "in",
    "NotIn": "notin",
    "Exists": "exists",
    "DoesNotExist": "!",
}


def label_selector_from_dict(d: Mapping[str, Any] | None) -> LabelSelector:
    """Convert a structured ``metav1.LabelSelector`` (``matchLabels``/``matchExpressions``).

    As ``metav1.LabelSelectorAsSelector``: ``None`` selects nothing, ``{}`` selects
    everything. Operators ``In``, ``NotIn``, ``Exists`` and ``DoesNotExist``.
    """
    if d is None:
        return NOTHING
    if not isinstance(d, Mapping):
        raise SelectorError("a label selector must be an object")
    reqs: list[Requirement] = []
    match_labels = d.get("matchLabels") or {}
    if not isinstance(match_labels, Mapping):
        raise SelectorError("matchLabels must be an object")
    for k, v in match_labels.items():
        if not isinstance(v, str):
            raise SelectorError(f"matchLabels[{k!r}] must be a string")
        reqs.append(Requirement(str(k), "=", (v,)))
    for expr in d.get("matchExpressions") or []:
        if not isinstance(expr, Mapping):
            raise SelectorError("matchExpressions entries must be objects")
        op_name = expr.get("operator")
        op = _MATCH_EXPRESSION_OPS.get(str(op_name))
        if op is None:
            raise SelectorError(f'"{op_name}" is not a valid label selector operator')
        values = expr.get("values") or []
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise SelectorError("matchExpressions values must be a list of strings")
        reqs.append(Requirement(str(expr.get("key", "")), op, tuple(dict.fromkeys(values))))
    return _sorted_selector(reqs)


# --------------------------------------------------------------------------------------------
# Node selector terms (node affinity)
# --------------------------------------------------------------------------------------------


def _node_requirement_matches(expr: Mapping[str, Any], values_of: Mapping[str, str]) -> bool:
    key = expr.get("key")
    op = expr.get("operator")
    raw_values = expr.get("values") or []
    if not isinstance(key, str) or not isinstance(raw_values, list):
        return False
    values = [str(v) for v in raw_values]
    present = key in values_of
    if op == "In":
        return bool(values) and present and values_of[key] in values
    if op == "NotIn":
        return bool(values) and (not present or values_of[key] not in values)
    if op == "Exists":
        return not values and present
    if op == "DoesNotExist":
        return not values and not present
    if op in ("Gt", "Lt"):
        if len(values) != 1 or not present:
            return False
        want, have = _as_int(values[0]), _as_int(values_of[key])
        if want is None or have is None:
            return False
        return have > want if op == "Gt" else have < want
    return False


def node_selector_term_matches(
    term: Mapping[str, Any],
    labels: Mapping[str, str] | None,
    *,
    fields: Mapping[str, str] | None = None,
) -> bool:
    """Whether a ``NodeSelectorTerm`` matches a node's labels (and fields).

    ``matchExpressions`` are evaluated against ``labels`` (operators ``In``, ``NotIn``,
    ``Exists``, ``DoesNotExist``, ``Gt``, ``Lt``) and ``matchFields`` against ``fields``
    (e.g. ``{"metadata.name": node_name}``). All requirements must hold. As in the
    scheduler, a term with no requirements matches nothing, and an invalid requirement makes
    the term not match (rather than raising).
    """
    exprs = term.get("matchExpressions") or []
    field_exprs = term.get("matchFields") or []
    if not exprs and not field_exprs:
        return False
    lab: Mapping[str, str] = labels or {}
    fld: Mapping[str, str] = fields or {}
    for e in exprs:
        if not isinstance(e, Mapping) or not _node_requirement_matches(e, lab):
            return False
    for e in field_exprs:
        if not isinstance(e, Mapping) or e.get("operator") not in ("In", "NotIn"):
            return False
        if len(e.get("values") or []) != 1 or not _node_requirement_matches(e, fld):
            return False
    return True


def node_selector_terms_match(
    terms: Sequence[Mapping[str, Any]],
    labels: Mapping[str, str] | None,
    *,
    fields: Mapping[str, str] | None = None,
) -> bool:
    """Whether any of ``nodeSelectorTerms`` matches (terms are ORed, as upstream)."""
    return any(node_selector_term_matches(t, labels, fields=fields) for t in terms)


# --------------------------------------------------------------------------------------------
# Field selectors
# --------------------------------------------------------------------------------------------


def escape_field_value(s: str) -> str:
    """Escape ``\\``, ``,`` and ``=`` in a field selector value (``fields.EscapeValue``)."""
    return s.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _unescape_field_value(s: str) -> str:
    if not any(c in s for c in "\\,="):
        return s
    out: list[str] = []
    in_slash = False
    for c in s:
        if in_slash:
            if c in "\\,=":
                out.append(c)
            else:
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{c}")
            in_slash = False
            continue
        if c == "\\":
            in_slash = True
        elif c in ",=":
            raise SelectorError(f"invalid field selector: unescaped character: {c}")
        else:
            out.append(c)
    if in_slash:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_terms(s: str) -> list[str]:
    terms: list[str] = []
    start = 0
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c == ",":
            terms.append(s[start:i])
            start = i + 1
        i += 1
    terms.append(s[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    i, n = 0, len(term)
    while i < n:
        if term[i] == "\\":
            i += 2
            continue
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op) :]
        i += 1
    return None


@attrs.frozen
class FieldSelector:
    """A parsed field selector: an AND of ``(field, op, value)`` with op ``=`` or ``!=``.

    ``==`` is normalised to ``=``. A missing field reads as the empty string, as upstream.
    """

    requirements: tuple[tuple[str, str, str], ...] = ()

    @property
    def empty(self) -> bool:
        """True if the selector has no requirements (matches everything)."""
        return not self.requirements

    def matches(self, fields: Mapping[str, str]) -> bool:
        """Whether the ``fields`` of an object (see :func:`object_fields`) satisfy it."""
        for field, op, value in self.requirements:
            have = fields.get(field, "")
            if (have == value) != (op == "="):
                return False
        return True

    def requires_exact(self, field: str) -> str | None:
        """The value ``field`` must equal, if an ``=`` requirement names it (for indexing)."""
        for f, op, v in self.requirements:
            if f == field and op == "=":
                return v
        return None

    def __str__(self) -> str:
        return ",".join(f"{f}{op}{escape_field_value(v)}" for f, op, v in self.requirements)


def parse_field_selector(s: str) -> FieldSelector:
    """Parse a field selector string (the ``fieldSelector`` query parameter).

    As ``fields.ParseSelector``: terms separated by unescaped commas, each ``field=value``,
    ``field==value`` or ``field!=value``; values may escape ``\\``, ``,`` and ``=`` with a
    backslash. Raises :class:`SelectorError` on a malformed term or escape.
    """
    if not s:
        return FieldSelector()
    reqs: list[tuple[str, str, str]] = []
    for term in _split_terms(s):
        if not term:
            continue
        parts = _split_term(term)
        if parts is None:
            raise SelectorError(f"invalid selector: '{s}'; can't understand '{term}'")
        field, op, raw = parts
        value = _unescape_field_value(raw)
        reqs.append((field.strip(), "!=" if op == "!=" else "=", value))
    return FieldSelector(tuple(reqs))


_CLUSTER_SCOPED: Final = frozenset(
    {"Node", "Namespace", "PersistentVolume", "StorageClass", "ClusterRole",
     "ClusterRoleBinding", "CustomResourceDefinition", "PriorityClass", "RuntimeClass",
     "APIService", "CertificateSigningRequest", "TokenReview", "SubjectAccessReview",
     "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "CSINode",
     "CSIDriver", "VolumeAttachment", "IngressClass"}
)  # fmt: skip

_KIND_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "Pod": (
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    "Node": ("spec.unschedulable",),
    "Event": (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
    "Secret": ("type",),
    "Namespace": ("status.phase",),
}

_RESOURCE_KINDS: Final = {
    "pods": "Pod",
    "nodes": "Node",
    "events": "Event",
    "secrets": "Secret",
    "namespaces": "Namespace",
    "configmaps": "ConfigMap",
    "services": "Service",
    "serviceaccounts": "ServiceAccount",
    "leases": "Lease",
}


def _kind(kind: str) -> str:
    return _RESOURCE_KINDS.get(kind.lower(), kind)


def supported_fields(kind: str) -> frozenset[str]:
    """Field labels kube-apiserver accepts in a field selector for ``kind``.

    ``kind`` is a kind (``Pod``) or a resource name (``pods``). Every kind has
    ``metadata.name``; namespaced kinds also ``metadata.namespace`` (cluster-scoped ones do
    not, as upstream's ``generic.ObjectMetaFieldsSet``).
    """
    k = _kind(kind)
    base = ("metadata.name",) if k in _CLUSTER_SCOPED else ("metadata.name", "metadata.namespace")
    return frozenset(base + _KIND_FIELDS.get(k, ()))


def check_field_selector(kind: str, selector: FieldSelector) -> None:
    """Raise :class:`SelectorError` (``field label not supported: X``) for unknown fields."""
    allowed = supported_fields(kind)
    for field, _, _ in selector.requirements:
        if field not in allowed:
            raise SelectorError(f"field label not supported: {field}")


def field_selector_for(kind: str, s: str) -> FieldSelector:
    """Parse ``s`` and check its fields are selectable for ``kind``."""
    sel = parse_field_selector(s)
    check_field_selector(kind, sel)
    return sel


def _get(obj: Mapping[str, Any], *path: str) -> Any:
    cur: Any = obj
    for p in path:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(p)
    return cur


def field_text(v: Any) -> str:
    """A value as field selectors compare it: missing is empty, booleans are lowercase.

    >>> field_text(None), field_text(True), field_text(3)
    ('', 'true', '3')
    """
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


_s = field_text


def object_fields(kind: str, obj: Mapping[str, Any]) -> dict[str, str]:
    """The selectable fields of ``obj`` (a JSON object of ``kind``), as kube-apiserver builds
    them in each registry's ``ToSelectableFields``/``GetAttrs``.
    """
    k = _kind(kind)
    fields = {"metadata.name": _s(_get(obj, "metadata", "name"))}
    if k not in _CLUSTER_SCOPED:
        fields["metadata.namespace"] = _s(_get(obj, "metadata", "namespace"))
    if k == "Pod":
        pod_ips = _get(obj, "status", "podIPs")
        pod_ip = ""
        if isinstance(pod_ips, list) and pod_ips and isinstance(pod_ips[0], Mapping):
            pod_ip = _s(pod_ips[0].get("ip"))
        elif _get(obj, "status", "podIP"):
            pod_ip = _s(_get(obj, "status", "podIP"))
        fields.update(
            {
                "spec.nodeName": _s(_get(obj, "spec", "nodeName")),
                "spec.restartPolicy": _s(_get(obj, "spec", "restartPolicy")),
                "spec.schedulerName": _s(_get(obj, "spec", "schedulerName")),
                "spec.serviceAccountName": _s(_get(obj, "spec", "serviceAccountName")),
                "spec.hostNetwork": "true" if _get(obj, "spec", "hostNetwork") else "false",
                "status.phase": _s(_get(obj, "status", "phase")),
                "status.podIP": pod_ip,
                "status.nominatedNodeName": _s(_get(obj, "status", "nominatedNodeName")),
            }
        )
    elif k == "Node":
        unsched = _get(obj, "spec", "unschedulable")
        fields["spec.unschedulable"] = "true" if unsched else "false"
    elif k == "Event":
        for f in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion",
                  "fieldPath"):  # fmt: skip
            fields["involvedObject." + f] = _s(_get(obj, "involvedObject", f))
        fields["reason"] = _s(obj.get("reason"))
        fields["reportingComponent"] = _s(obj.get("reportingComponent"))
        fields["source"] = _s(_get(obj, "source", "component"))
        fields["type"] = _s(obj.get("type"))
    elif k == "Secret":
        fields["type"] = _s(obj.get("type"))
    elif k == "Namespace":
        fields["status.phase"] = _s(_get(obj, "status", "phase"))
    return fields


# --------------------------------------------------------------------------------------------
# Taints and tolerations
# --------------------------------------------------------------------------------------------


def _tolerates_one(t: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    effect = t.get("effect") or ""
    if effect and effect != (taint.get("effect") or ""):
        return False
    key = t.get("key") or ""
    if key and key != (taint.get("key") or ""):
        return False
    op = t.get("operator") or "Equal"
    if op == "Equal":
        return (t.get("value") or "") == (taint.get("value") or "")
    return op == "Exists"


def tolerates(tolerations: Sequence[Mapping[str, Any]] | None, taint: Mapping[str, Any]) -> bool:
    """Whether any of ``tolerations`` tolerates ``taint`` (``Toleration.ToleratesTaint``).

    A toleration matches when its effect is empty or equal to the taint's, its key is empty
    or equal, and either its operator is ``Exists`` or it is ``Equal`` (the default) with an
    equal value. An empty key with ``Exists`` therefore tolerates every taint.
    """
    return any(isinstance(t, Mapping) and _tolerates_one(t, taint) for t in tolerations or ())


def untolerated_taint(
    tolerations: Sequence[Mapping[str, Any]] | None,
    taints: Sequence[Mapping[str, Any]] | None,
    effects: Iterable[str] = ("NoSchedule", "NoExecute"),
) -> Mapping[str, Any] | None:
    """The first taint with one of ``effects`` that ``tolerations`` do not tolerate, if any.

    With the default effects this is the scheduler's TaintToleration filter
    (``PreferNoSchedule`` taints never block scheduling).
    """
    wanted = frozenset(effects)
    for taint in taints or ():
        if taint.get("effect") in wanted and not tolerates(tolerations, taint):
            return taint
    return None
