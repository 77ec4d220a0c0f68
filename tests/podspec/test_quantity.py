"""Kubernetes quantities: parsing, canonical formatting and round trips."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vkcompose.podspec.quantity import (
    canonicalize_quantity,
    format_quantity,
    parse_quantity,
    parse_quantity_with_format,
)

# Canonical forms from k8s.io/apimachinery/pkg/api/resource/quantity_test.go
# (TestQuantityParse / TestQuantityString) and the "Resource units" docs page
# (https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/).


@pytest.mark.parametrize(
    ("text", "value", "canonical"),
    [
        ("0", Fraction(0), "0"),
        ("0n", Fraction(0), "0"),
        ("0Ki", Fraction(0), "0"),
        ("1n", Fraction(1, 10**9), "1n"),
        ("1u", Fraction(1, 10**6), "1u"),
        ("1m", Fraction(1, 1000), "1m"),
        ("100m", Fraction(1, 10), "100m"),
        ("0.1", Fraction(1, 10), "100m"),
        ("0.5", Fraction(1, 2), "500m"),
        ("1", Fraction(1), "1"),
        ("1k", Fraction(1000), "1k"),
        ("1000", Fraction(1000), "1k"),
        ("1500", Fraction(1500), "1500"),
        ("1.5k", Fraction(1500), "1500"),
        ("1M", Fraction(10**6), "1M"),
        ("1G", Fraction(10**9), "1G"),
        ("1T", Fraction(10**12), "1T"),
        ("1P", Fraction(10**15), "1P"),
        ("1E", Fraction(10**18), "1E"),
        ("1Ki", Fraction(1024), "1Ki"),
        ("1Mi", Fraction(2**20), "1Mi"),
        ("1Gi", Fraction(2**30), "1Gi"),
        ("1Ti", Fraction(2**40), "1Ti"),
        ("1Pi", Fraction(2**50), "1Pi"),
        ("1Ei", Fraction(2**60), "1Ei"),
        ("1024Mi", Fraction(2**30), "1Gi"),
        ("1.5Gi", Fraction(3 * 2**29), "1536Mi"),
        ("1.5Ki", Fraction(1536), "1536"),
        ("0.5Ki", Fraction(512), "512"),
        ("129e6", Fraction(129 * 10**6), "129e6"),
        ("128974848", Fraction(128974848), "128974848"),
        ("123Mi", Fraction(123 * 2**20), "123Mi"),
        ("1e3", Fraction(1000), "1e3"),
        ("1E3", Fraction(1000), "1e3"),
        ("12e-3", Fraction(12, 1000), "12e-3"),
        ("1.", Fraction(1), "1"),
        (".5", Fraction(1, 2), "500m"),
        ("+1", Fraction(1), "1"),
        ("-1", Fraction(-1), "-1"),
        ("-100m", Fraction(-1, 10), "-100m"),
        ("0.1n", Fraction(1, 10**10), "1n"),  # sub-nano values round up
        ("1.1n", Fraction(11, 10**10), "2n"),
        ("-0.1n", Fraction(-1, 10**10), "-1n"),
    ],
)
def test_documented_quantities(text: str, value: Fraction, canonical: str) -> None:
    assert parse_quantity(text) == value
    assert canonicalize_quantity(text) == canonical
    assert parse_quantity(canonical) == parse_quantity(canonicalize_quantity(canonical))


@pytest.mark.parametrize(
    "bad",
    ["", " ", "1 ", " 1", "abc", "1.2.3", "1Qi", "1ki", "1e", "e3", ".", "--1", "1e3.5", "1KiB",
     "1e1001", "Ki", "1i", "0x10"],
)  # fmt: skip
def test_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_quantity(bad)


def test_formats() -> None:
    assert parse_quantity_with_format("1Gi")[1] == "BinarySI"
    assert parse_quantity_with_format("1G")[1] == "DecimalSI"
    assert parse_quantity_with_format("1e9")[1] == "DecimalExponent"
    assert format_quantity(Fraction(1, 2), "BinarySI") == "500m"
    assert format_quantity(1023, "BinarySI") == "1023"
    assert format_quantity(2048, "BinarySI") == "2Ki"
    assert format_quantity(Decimal("0.25")) == "250m"
    assert format_quantity(10**21) == "1000E"
    assert format_quantity(10**21, "DecimalExponent") == "1e21"
    assert format_quantity(Fraction(1, 1000), "DecimalExponent") == "1e-3"


_nano = st.integers(-(10**22), 10**22).map(lambda n: Fraction(n, 10**9))


@given(_nano, st.sampled_from(["DecimalSI", "BinarySI", "DecimalExponent"]))
def test_format_parse_round_trip(value: Fraction, fmt: str) -> None:
    text = format_quantity(value, fmt)  # type: ignore[arg-type]
    assert parse_quantity(text) == value
    assert canonicalize_quantity(text) == text or fmt == "BinarySI"


@given(
    st.integers(0, 10**6),
    st.sampled_from(["", "n", "u", "m", "k", "M", "G", "Ki", "Mi", "Gi", "e2", "e-2"]),
)
def test_parse_format_parse(number: int, suffix: str) -> None:
    text = f"{number}{suffix}"
    value = parse_quantity(text)
    assert parse_quantity(canonicalize_quantity(text)) == value
    assert canonicalize_quantity(canonicalize_quantity(text)) == canonicalize_quantity(text)


@given(st.fractions(min_value=-(10**6), max_value=10**6, max_denominator=10**12))
def test_rounding_never_goes_down(value: Fraction) -> None:
    rounded = parse_quantity(format_quantity(value))
    assert abs(rounded) >= abs(value)
    assert abs(rounded - value) < Fraction(1, 10**9)
