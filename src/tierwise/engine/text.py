"""Reason text built inside the engine, identical on every backend.

Casting a float to text differs between backends (DuckDB "10000000.0", Spark "1.0E7"), so numbers
are rounded to two decimals and spelled out from integers.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

Part = str | int | ir.Value


def num(x: ir.NumericValue) -> ir.StringValue:
    """A number with at most two decimals and no trailing zeros: 45.333 → "45.33", 2.0 → "2"."""
    cents = (x.cast("float64") * 100).round().cast("int64")
    whole = (cents.abs() // 100).cast("string")
    frac = cents.abs() % 100
    decimals = ibis.cases(
        (frac == 0, ""),
        (frac % 10 == 0, "." + (frac // 10).cast("string")),
        else_="." + frac.cast("string").lpad(2, "0"),
    )
    return ibis.ifelse(cents < 0, "-", "") + whole + decimals


def pct(share: float) -> str:
    """A settings share as a percentage for static reason text: 0.7 → "70%"."""
    return f"{share * 100:g}%"


def join(*parts: Part) -> ir.StringValue:
    """Concatenate literal text and values; integers are spelled as integers, floats via `num`."""
    out: ir.StringValue = ibis.literal("")
    for p in parts:
        if isinstance(p, str | int):
            out = out + str(p)
        elif isinstance(p, ir.FloatingValue):
            out = out + num(p)
        else:
            out = out + p.cast("string")
    return out
