"""Turn raw source columns into typed canonical columns, row by row accepted or rejected.

Vectorised with pyarrow.compute. A row is rejected for the first column (in canonical order)
that fails; the reject keeps the column, a reason code and the raw value.

Reason codes: missing_value, bad_date, bad_number, bad_bool, future_date (and, from the
readers, wrong_column_count).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from tierwise.core.contracts import ATTRIBUTES, Column, TableContract
from tierwise.services.readers import as_csv_line

ARROW_TYPES = {
    "id": pa.string(),
    "text": pa.string(),
    "timestamp": pa.timestamp("us"),
    "number": pa.float64(),
    "bool": pa.bool_(),
}

_DATE_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d",
    "%Y.%m.%d",
    "%Y%m%d",
    "%Y年%m月%d日",
    "%Y年%m月%d日 %H:%M:%S",
)
_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_NUMBER_NOISE = r"[,\s¥￥$元]"
_TRUE = ["1", "true", "t", "yes", "y", "是", "同意", "已同意"]
_FALSE = ["0", "false", "f", "no", "n", "否", "不同意", "未同意"]


@dataclass
class Parsed:
    """Accepted rows as canonical typed columns, and the rejects of the batch."""

    accepted: pa.Table
    accepted_lines: pa.Array
    rejected_lines: list[int]
    rejected_columns: list[str]
    rejected_reasons: list[str]
    rejected_values: list[str]
    rejected_raw: list[str]


def parse_batch(
    raw: pa.Table,
    lines: pa.Array,
    contract: TableContract,
    mapping: dict[str, str],
    *,
    timezone: str,
    load_date: datetime,
) -> Parsed:
    """Parse one batch; `mapping` is canonical name -> source column (already checked)."""
    n = len(raw)
    typed: dict[str, pa.Array] = {}
    reason = pa.nulls(n, pa.string())
    failed_col = pa.nulls(n, pa.string())
    failed_val = pa.nulls(n, pa.string())
    for col in contract.columns:
        source = mapping.get(col.name)
        if source is None:
            typed[col.name] = pa.nulls(n, ARROW_TYPES[col.kind])
            continue
        values, bad = _parse(raw.column(source).combine_chunks(), col, timezone)
        if col.required:
            missing = pc.and_(pc.is_null(values), pc.is_null(bad))
            bad = pc.if_else(missing, pa.scalar("missing_value"), bad)
        if col.name == contract.time_column:
            future = pc.greater_equal(values, pa.scalar(load_date, pa.timestamp("us")))
            bad = pc.if_else(pc.fill_null(future, False), pa.scalar("future_date"), bad)
        first = pc.and_(pc.is_null(reason), pc.is_valid(bad))
        reason = pc.if_else(first, bad, reason)
        failed_col = pc.if_else(first, pa.scalar(col.name), failed_col)
        failed_val = pc.if_else(first, _as_text(raw.column(source).combine_chunks()), failed_val)
        typed[col.name] = values
    typed[ATTRIBUTES] = _attributes(raw, set(mapping.values()))
    ok = pc.is_null(reason)
    table = pa.table(typed)
    bad_rows = pc.invert(ok)
    return Parsed(
        accepted=table.filter(ok),
        accepted_lines=pc.filter(lines, ok),
        rejected_lines=pc.filter(lines, bad_rows).to_pylist(),
        rejected_columns=pc.filter(failed_col, bad_rows).to_pylist(),
        rejected_reasons=pc.filter(reason, bad_rows).to_pylist(),
        rejected_values=pc.filter(failed_val, bad_rows).to_pylist(),
        rejected_raw=_raw_rows(raw.filter(bad_rows)),
    )


def load_cutoff(timezone: str) -> datetime:
    """Start of tomorrow in business-local time: anything at or after it is in the future."""
    today = datetime.now(ZoneInfo(timezone)).date()
    return datetime.combine(today + timedelta(days=1), datetime.min.time())


def _as_text(arr: pa.Array) -> pa.Array:
    return arr if pa.types.is_string(arr.type) else pc.cast(arr, pa.string())


def _blank_to_null(arr: pa.Array) -> pa.Array:
    s = pc.utf8_trim_whitespace(arr)
    return pc.if_else(pc.equal(s, ""), pa.scalar(None, pa.string()), s)


def _parse(arr: pa.Array, col: Column, timezone: str) -> tuple[pa.Array, pa.Array]:
    """Typed values, and per row a reason code where a non-empty value failed to parse."""
    target = ARROW_TYPES[col.kind]
    none = pa.nulls(len(arr), pa.string())
    if not pa.types.is_string(arr.type) and not pa.types.is_large_string(arr.type):
        return _from_typed(arr, col, timezone), none
    text = _blank_to_null(pc.cast(arr, pa.string()))
    if col.kind in ("id", "text"):
        return text, none
    if col.kind == "number":
        cleaned = pc.replace_substring_regex(text, _NUMBER_NOISE, "")
        good = pc.match_substring_regex(cleaned, _NUMBER)
        values = pc.cast(pc.if_else(good, cleaned, pa.scalar(None, pa.string())), target)
        return values, _reason(text, good, "bad_number")
    if col.kind == "bool":
        lowered = pc.utf8_lower(text)
        is_true = pc.is_in(lowered, pa.array(_TRUE))
        is_false = pc.is_in(lowered, pa.array(_FALSE))
        values = pc.if_else(is_true, True, pc.if_else(is_false, False, pa.scalar(None, target)))
        return values, _reason(text, pc.or_(is_true, is_false), "bad_bool")
    values = parse_timestamps(text, timezone)
    return values, _reason(text, pc.is_valid(values), "bad_date")


def _reason(text: pa.Array, good: pa.Array, code: str) -> pa.Array:
    bad = pc.and_(pc.is_valid(text), pc.invert(pc.fill_null(good, False)))
    return pc.if_else(bad, pa.scalar(code), pa.scalar(None, pa.string()))


def _from_typed(arr: pa.Array, col: Column, timezone: str) -> pa.Array:
    """Parquet / database columns already carry types: convert without a text round trip."""
    if col.kind in ("id", "text"):
        if pa.types.is_floating(arr.type):
            # a float id column would print 12.0; integral floats become integers first
            arr = pc.cast(arr, pa.int64(), safe=False)
        return _blank_to_null(pc.cast(arr, pa.string()))
    if col.kind == "timestamp":
        if pa.types.is_timestamp(arr.type) and arr.type.tz:
            return pc.cast(
                pc.local_timestamp(pc.cast(arr, pa.timestamp("us", timezone))), pa.timestamp("us")
            )
        return pc.cast(arr, pa.timestamp("us"))
    return pc.cast(arr, ARROW_TYPES[col.kind])


_OFFSET = r"(?P<off>Z|[+-]\d{2}:?\d{2})$"
_FRACTION = r"(?P<hms>\d{2}:\d{2}:\d{2})\.(?P<frac>\d{1,6})\d*"


def parse_timestamps(text: pa.Array, timezone: str) -> pa.Array:
    """Several common layouts; fractions of a second kept; values with a UTC offset are
    converted to business-local time, values without one are taken as local and never shifted."""
    s = pc.replace_substring_regex(text, r"^(\d{4}-\d{2}-\d{2})T", r"\1 ")
    offset_text = pc.struct_field(pc.extract_regex(s, _OFFSET), [0])
    s = pc.utf8_rtrim_whitespace(pc.replace_substring_regex(s, _OFFSET, ""))
    micros = pc.struct_field(pc.extract_regex(s, _FRACTION), [1])
    s = pc.replace_substring_regex(s, _FRACTION, r"\1")
    parsed = pa.nulls(len(s), pa.timestamp("us"))
    for fmt in _DATE_FORMATS:
        parsed = pc.coalesce(parsed, pc.strptime(s, format=fmt, unit="us", error_is_null=True))
    parsed = _drop_rolled_over(parsed, s)
    micro_values = pc.cast(pc.utf8_rpad(micros, 6, "0"), pa.int64())
    parsed = pc.add(parsed, pc.cast(pc.fill_null(micro_values, 0), pa.duration("us")))
    if pc.any(pc.is_valid(offset_text)).as_py():
        parsed = _shift_offsets(parsed, offset_text, timezone)
    return parsed


_YMD = r"^(?P<y>\d{4})[-/.年]?(?P<m>\d{1,2})[-/.月]?(?P<d>\d{1,2})"


def _drop_rolled_over(parsed: pa.Array, text: pa.Array) -> pa.Array:
    """Arrow's strptime rolls 2024-02-30 over to March 1st; such dates are bad, not moved."""
    parts = pc.extract_regex(text, _YMD)
    same = pc.and_(
        pc.and_(
            pc.equal(pc.year(parsed), pc.cast(pc.struct_field(parts, [0]), pa.int64())),
            pc.equal(pc.month(parsed), pc.cast(pc.struct_field(parts, [1]), pa.int64())),
        ),
        pc.equal(pc.day(parsed), pc.cast(pc.struct_field(parts, [2]), pa.int64())),
    )
    return pc.if_else(pc.fill_null(same, False), parsed, pa.scalar(None, pa.timestamp("us")))


def _shift_offsets(local: pa.Array, offset_text: pa.Array, timezone: str) -> pa.Array:
    zone = ZoneInfo(timezone)
    out = []
    for value, off in zip(local.to_pylist(), offset_text.to_pylist(), strict=True):
        if value is None or off is None:
            out.append(value)
            continue
        minutes = 0 if off == "Z" else int(off[0] + "1") * (int(off[1:3]) * 60 + int(off[-2:]))
        utc = value - timedelta(minutes=minutes)
        out.append(utc.replace(tzinfo=ZoneInfo("UTC")).astimezone(zone).replace(tzinfo=None))
    return pa.array(out, pa.timestamp("us"))


def _attributes(raw: pa.Table, mapped: set[str]) -> pa.Array:
    """Unmapped source columns as one JSON object per row (null when there are none)."""
    extra = [c for c in raw.column_names if c not in mapped]
    if not extra:
        return pa.nulls(len(raw), pa.string())
    cols = [_as_text(raw.column(c).combine_chunks()).to_pylist() for c in extra]
    return pa.array(
        [
            json.dumps(dict(zip(extra, vals, strict=True)), ensure_ascii=False)
            for vals in zip(*cols, strict=True)
        ],
        pa.string(),
    )


def _raw_rows(bad: pa.Table) -> list[str]:
    if not len(bad):
        return []
    cols = [_as_text(bad.column(c).combine_chunks()).to_pylist() for c in bad.column_names]
    return [as_csv_line(["" if v is None else v for v in vals]) for vals in zip(*cols, strict=True)]
