"""Money is integer atomic units from parse to signature; Decimal appears only
for catalog prices (the API publishes USD numbers) and for display."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Any

from .validate import bad_response

MICROS = 10**6


def to_decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        d = Decimal(str(value))
    except Exception:
        return None
    return d if d.is_finite() else None


MAX_PLACES = 18  # finer than any price or spec; more digits is no number a catalog means
MAX_DIGITS = 40


def server_number(value: Any, field: str, *, maximum: int) -> Decimal | None:
    """A number the server sent (catalog price or spec, credit balance) as a Decimal, None when
    absent; ``bad_response`` when it is no sane number: not numeric, NaN or infinite, negative,
    above ``maximum``, or with more than ``MAX_PLACES`` decimals (``1e999999`` would otherwise
    overflow Decimal arithmetic, ``1e-999999`` print a million zeros)."""
    if value is None or value == "":
        return None
    expected = f"a number from 0 to {maximum}"
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, str)):
        raise bad_response(field, value, expected)
    try:
        d = Decimal(value.strip()) if isinstance(value, str) else Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except (ArithmeticError, ValueError):
        raise bad_response(field, value, expected) from None
    if not d.is_finite() or d < 0 or d > maximum or len(d.as_tuple().digits) > MAX_DIGITS or (d and d.normalize().as_tuple().exponent < -MAX_PLACES):
        raise bad_response(field, value, expected)
    return d


def usd(value: Decimal | None, places: int = 2) -> str | None:
    """A display string; more places for sub-cent hourly rates."""
    if value is None:
        return None
    q = Decimal(1).scaleb(-places)
    return str(value.quantize(q, rounding=ROUND_HALF_UP))


def plain(value: Decimal) -> str:
    """Exact dollars without trailing zeros or exponent: 0.249600 -> "0.2496"."""
    return format(value.normalize(), "f")


def price_usd_micros(hourly: Decimal, hours: int) -> int:
    """Catalog price of ``hours`` at ``hourly`` USD, rounded up to a micro-dollar."""
    return int((hourly * hours * MICROS).to_integral_value(rounding=ROUND_CEILING))


def micros_to_atomic(micros: int, decimals: int) -> int:
    if decimals >= 6:
        return micros * 10 ** (decimals - 6)
    # Round up: never under-state what a quote will cost.
    q, r = divmod(micros, 10 ** (6 - decimals))
    return q + (1 if r else 0)


def atomic_to_usd(atomic: int, decimals: int) -> Decimal:
    return Decimal(atomic).scaleb(-decimals)


def usd_to_micros(value: Decimal) -> int:
    return int((value * MICROS).to_integral_value(rounding=ROUND_CEILING))
