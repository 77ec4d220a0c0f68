"""Kubernetes resource quantities (``k8s.io/apimachinery/pkg/api/resource/quantity.go``).

Grammar::

    <quantity>        ::= <signedNumber><suffix>
    <signedNumber>    ::= <number> | <sign><number>
    <number>          ::= <digits> | <digits>.<digits> | <digits>. | .<digits>
    <suffix>          ::= <binarySI> | <decimalExponent> | <decimalSI>
    <binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei
    <decimalSI>       ::= n | u | m | "" | k | M | G | T | P | E
    <decimalExponent> ::= "e" <signedNumber> | "E" <signedNumber>

Values are exact :class:`fractions.Fraction`. :func:`format_quantity` writes the canonical
form kube-apiserver stores (integer mantissa, largest suffix, sub-nano values rounded up).
"""

from __future__ import annotations

import functools
import math
import re
from decimal import Decimal
from fractions import Fraction
from typing import Final, Literal

__all__ = [
    "QuantityFormat",
    "canonicalize_quantity",
    "format_quantity",
    "parse_quantity",
    "parse_quantity_with_format",
]

QuantityFormat = Literal["DecimalSI", "BinarySI", "DecimalExponent"]

_FORMAT_ERROR: Final = (
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)
_NUMBER_RE: Final = re.compile(r"([+-]?)([0-9]+\.?[0-9]*|\.[0-9]+)(.*)", re.DOTALL)
_EXPONENT_RE: Final = re.compile(r"[eE]([+-]?[0-9]+)")
_DECIMAL_SI: Final = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12,
                      "P": 15, "E": 18}  # fmt: skip
_BINARY_SI: Final = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_MAX_EXPONENT: Final = 1000  # far beyond any real quantity; bounds the work per parse


def parse_quantity_with_format(s: str) -> tuple[Fraction, QuantityFormat]:
    """Parse a quantity and report the format its suffix implies (as ``ParseQuantity``).

    Raises :class:`ValueError` with kube-apiserver's messages on malformed input.
    """
    if not isinstance(s, str) or not s:
        raise ValueError("quantities must be a non-empty string")
    if len(s) > 64:  # not worth caching (and not letting odd inputs fill the cache)
        return _parse.__wrapped__(s)
    return _parse(s)


@functools.lru_cache(maxsize=4096)
def _parse(s: str) -> tuple[Fraction, QuantityFormat]:
    # Pods repeat the same few quantities; Fractions are immutable, so results are shared.
    m = _NUMBER_RE.fullmatch(s)
    if m is None:
        raise ValueError(_FORMAT_ERROR)
    sign, number, suffix = m.groups()
    value = Fraction(number)
    fmt: QuantityFormat
    if suffix in _DECIMAL_SI:
        value *= Fraction(10) ** _DECIMAL_SI[suffix]
        fmt = "DecimalSI"
    elif suffix in _BINARY_SI:
        value *= 2 ** _BINARY_SI[suffix]
        fmt = "BinarySI"
    else:
        em = _EXPONENT_RE.fullmatch(suffix)
        if em is None:
            if re.fullmatch(r"[eEinumkKMGTP]*[-+]?[0-9]*", suffix):
                raise ValueError("unable to parse quantity's suffix")
            raise ValueError(_FORMAT_ERROR)
        exp = int(em.group(1))
        if abs(exp) > _MAX_EXPONENT:
            raise ValueError("unable to parse quantity's suffix")
        value *= Fraction(10) ** exp
        fmt = "DecimalExponent"
    return (-value if sign == "-" else value), fmt


def parse_quantity(s: str) -> Fraction:
    """Parse a Kubernetes quantity (``"250m"``, ``"1.5Gi"``, ``"2e3"``) to an exact value.

    Raises :class:`ValueError` on bad input.
    """
    return parse_quantity_with_format(s)[0]


def _round_up_nano(q: Fraction) -> Fraction:
    scaled = q * 10**9
    if scaled.denominator == 1:
        return q
    mag = math.ceil(abs(scaled))
    return Fraction(mag if q > 0 else -mag, 10**9)


_DECIMAL_SUFFIX: Final = {-9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T",
                          15: "P", 18: "E"}  # fmt: skip
_BINARY_SUFFIX: Final = {0: "", 10: "Ki", 20: "Mi", 30: "Gi", 40: "Ti", 50: "Pi", 60: "Ei"}


def format_quantity(q: Fraction | Decimal | int, fmt: QuantityFormat = "DecimalSI") -> str:
    """Canonical string of ``q`` in ``fmt`` (``Quantity.String()``).

    The mantissa is an integer and the suffix as large as possible; values that are not a
    whole number of nano-units are rounded up (away from zero). ``BinarySI`` falls back to
    ``DecimalSI`` for values below 1024 in magnitude or with a fractional part, as upstream.
    """
    value = Fraction(q) if not isinstance(q, Fraction) else q
    value = _round_up_nano(value)
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    mag = abs(value)
    if fmt == "BinarySI" and mag >= 1024 and mag.denominator == 1:
        n = mag.numerator
        bits = 0
        while bits < 60 and n % 1024 == 0:
            n //= 1024
            bits += 10
        return f"{sign}{n}{_BINARY_SUFFIX[bits]}"
    # Decimal: find the largest exponent (multiple of 3) leaving an integer mantissa.
    exp = -9
    scaled = mag * 10**9
    mantissa = scaled.numerator  # a whole number after rounding to nano-units
    while mantissa % 1000 == 0 and (exp < 18 or fmt == "DecimalExponent"):
        mantissa //= 1000
        exp += 3
    if fmt == "DecimalExponent":
        return f"{sign}{mantissa}" + (f"e{exp}" if exp else "")
    return f"{sign}{mantissa}{_DECIMAL_SUFFIX[exp]}"


def canonicalize_quantity(s: str) -> str:
    """Parse ``s`` and write it back canonically in the format its suffix implies
    (``"0.5"`` → ``"500m"``, ``"1024Mi"`` → ``"1Gi"``, ``"1000"`` → ``"1k"``)."""
    value, fmt = parse_quantity_with_format(s)
    return format_quantity(value, fmt)
