"""Read source files and tables into batches of raw columns with their line numbers.

Every reader yields `RawBatch`es: the source's own column names, values as found (text for
CSV/Excel, native Arrow types for Parquet and database tables), the 1-based line (or row)
number of each record, and the records that could not be split into the header's columns.
Nothing is parsed or validated here; `tierwise.services.parse` does that.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import io
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from tierwise.core.errors import SourceError
from tierwise.core.settings import SourceSettings

BATCH_ROWS = 200_000
_CHUNK = 1 << 24  # 16 MiB: decode/hash granularity, bounds memory on big files


@dataclass(frozen=True)
class StructuralReject:
    """A record that does not fit the header (wrong number of fields)."""

    line: int
    reason: str
    raw: str


@dataclass
class RawBatch:
    table: pa.Table
    lines: pa.Array
    rejects: list[StructuralReject] = field(default_factory=list)


@dataclass
class OpenedSource:
    """A readable source: what it is, its fingerprint, and an iterator of batches."""

    name: str
    sha256: str
    encoding: str | None
    columns: list[str]
    batches: Iterator[RawBatch]


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def detect_encoding(path: Path) -> str:
    """Strict UTF-8 first (BOM or not), then GB18030; anything else is undecidable.

    Returns 'utf-8', 'utf-8-sig' or 'gb18030'; raises SourceError('ambiguous_encoding').
    """
    with path.open("rb") as f:
        head = f.read(3)
    if head == codecs.BOM_UTF8:
        return "utf-8-sig"
    for encoding in ("utf-8", "gb18030"):
        if _decodes(path, encoding):
            return encoding
    raise SourceError(
        f"{path}: ambiguous_encoding: the file is neither valid UTF-8 nor GB18030; "
        "set `encoding` for this source or re-save it as UTF-8"
    )


def _decodes(path: Path, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    try:
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def expand(root: Path, pattern: str) -> list[Path]:
    """A path or a glob, relative to the configuration's directory; sorted, never empty."""
    p = Path(pattern).expanduser()
    base = p if p.is_absolute() else root / p
    if any(ch in pattern for ch in "*?["):
        anchor = Path(base.anchor)
        files = sorted(anchor.glob(str(base.relative_to(anchor))))
    else:
        files = [base] if base.exists() else []
    if not files:
        raise SourceError(f"{base}: no such file")
    return [f for f in files if f.is_file()]


def file_format(path: Path, src: SourceSettings) -> str:
    if src.format != "auto":
        return src.format
    ext = path.suffix.lower()
    formats = {".csv": "csv", ".txt": "csv", ".tsv": "csv", ".xlsx": "xlsx", ".parquet": "parquet"}
    if ext not in formats:
        raise SourceError(f"{path}: cannot tell the format from {ext!r}; set `format`")
    return formats[ext]


def open_file(path: Path, src: SourceSettings) -> OpenedSource:
    fmt = file_format(path, src)
    digest = sha256_of(path)
    if fmt == "csv":
        encoding = detect_encoding(path) if src.encoding == "auto" else src.encoding
        columns, batches = _csv(path, encoding, src.delimiter)
        return OpenedSource(str(path), digest, encoding, columns, batches)
    if fmt == "xlsx":
        columns, batches = _xlsx(path, src.sheet)
        return OpenedSource(str(path), digest, None, columns, batches)
    pf = pq.ParquetFile(path)
    return OpenedSource(str(path), digest, None, pf.schema_arrow.names, _arrow_batches(pf))


def open_table(src: SourceSettings) -> OpenedSource:
    """A table of any database Ibis can reach; fingerprinted by its content."""
    import ibis

    assert src.connection and src.table
    try:
        con = ibis.connect(src.connection)
        table = con.table(src.table)
    except Exception as e:  # the driver's own error says what is wrong with the URL
        raise SourceError(f"{src.connection} table {src.table}: {e}") from None
    data = table.to_pyarrow()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, data.schema) as w:
        w.write_table(data)
    digest = hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()
    name = f"{_redact(src.connection)}#{src.table}"
    return OpenedSource(name, digest, None, data.column_names, _table_batches(data))


def _redact(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def _arrow_batches(pf: pq.ParquetFile) -> Iterator[RawBatch]:
    start = 1
    for rb in pf.iter_batches(batch_size=BATCH_ROWS):
        table = pa.Table.from_batches([rb])
        yield RawBatch(table, pa.array(range(start, start + len(table)), pa.int64()))
        start += len(table)


def _table_batches(data: pa.Table) -> Iterator[RawBatch]:
    for offset in range(0, max(len(data), 1), BATCH_ROWS):
        part = data.slice(offset, BATCH_ROWS)
        yield RawBatch(part, pa.array(range(offset + 1, offset + 1 + len(part)), pa.int64()))


# --- CSV -------------------------------------------------------------------------------------


@contextmanager
def _utf8_copy(path: Path, encoding: str) -> Iterator[Path]:
    """pyarrow reads UTF-8 only: GB18030 files are transcoded to a temporary copy, streamed."""
    if encoding in ("utf-8", "utf-8-sig"):
        yield path
        return
    fd, tmp = tempfile.mkstemp(suffix=".csv", prefix="tierwise-")
    try:
        with (
            os.fdopen(fd, "w", encoding="utf-8", newline="") as out,
            path.open(encoding=encoding, newline="") as src,
        ):
            while chunk := src.read(_CHUNK):
                out.write(chunk)
        yield Path(tmp)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _csv_header(path: Path, encoding: str, delimiter: str) -> list[str]:
    with path.open(encoding=encoding, newline="") as f:
        header = next(csv.reader(f, delimiter=delimiter), None)
    if not header:
        raise SourceError(f"{path}: line 1: the file is empty, a header line is needed")
    return [h.strip().lstrip("\ufeff") for h in header]


def _csv(path: Path, encoding: str, delimiter: str) -> tuple[list[str], Iterator[RawBatch]]:
    header = _csv_header(path, encoding, delimiter)
    if len(set(header)) != len(header):
        dupes = sorted({h for h in header if header.count(h) > 1})
        raise SourceError(f"{path}: line 1: repeated column name(s) {', '.join(dupes)}")
    return header, _csv_batches(path, encoding, delimiter, header)


def _csv_batches(
    path: Path, encoding: str, delimiter: str, header: list[str]
) -> Iterator[RawBatch]:
    """Fast path through pyarrow when every record is one physical line with the right
    number of fields (then line = record + 1); otherwise the exact, slower csv-module path."""
    if _one_line_per_record(path, encoding, delimiter, len(header)):
        yield from _arrow_csv(path, encoding, delimiter, header)
    else:
        yield from _python_csv(path, encoding, delimiter, header)


def _one_line_per_record(path: Path, encoding: str, delimiter: str, width: int) -> bool:
    with _utf8_copy(path, encoding) as f:
        invalid: list[object] = []

        def skip(row: object) -> str:
            invalid.append(row)
            return "skip"

        reader = pacsv.open_csv(
            f,
            read_options=pacsv.ReadOptions(
                column_names=[f"c{i}" for i in range(width)], skip_rows=1
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter,
                newlines_in_values=True,
                invalid_row_handler=skip,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={f"c{i}": pa.string() for i in range(width)}, include_columns=[]
            ),
        )
        records = sum(b.num_rows for b in reader)
        if invalid:
            return False
        return _physical_lines(f) == records + 1


def _physical_lines(path: Path) -> int:
    lines, last = 0, b"\n"
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")


def _arrow_csv(path: Path, encoding: str, delimiter: str, header: list[str]) -> Iterator[RawBatch]:
    with _utf8_copy(path, encoding) as f:
        reader = pacsv.open_csv(
            f,
            read_options=pacsv.ReadOptions(column_names=header, skip_rows=1, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=False
            ),
        )
        line = 2
        for rb in reader:
            table = pa.Table.from_batches([rb])
            yield RawBatch(table, pa.array(range(line, line + len(table)), pa.int64()))
            line += len(table)


def _python_csv(path: Path, encoding: str, delimiter: str, header: list[str]) -> Iterator[RawBatch]:
    width = len(header)
    with path.open(encoding=encoding, newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        next(reader)
        rows: list[list[str]] = []
        lines: list[int] = []
        rejects: list[StructuralReject] = []
        start = reader.line_num + 1
        for record in reader:
            if record:
                if len(record) == width:
                    rows.append(record)
                    lines.append(start)
                else:
                    raw = as_csv_line(record, delimiter)
                    why = f"wrong_column_count: {len(record)} fields, header has {width}"
                    rejects.append(StructuralReject(start, why, raw))
            start = reader.line_num + 1
            if len(rows) >= BATCH_ROWS:
                yield _text_batch(header, rows, lines, rejects)
                rows, lines, rejects = [], [], []
        if rows or rejects:
            yield _text_batch(header, rows, lines, rejects)


def as_csv_line(record: list[str], delimiter: str = ",") -> str:
    """The record as one CSV line, for quarantine's raw text."""
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter, lineterminator="").writerow(record)
    return buf.getvalue()


def _text_batch(
    header: list[str], rows: list[list[str]], lines: list[int], rejects: list[StructuralReject]
) -> RawBatch:
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(header)
    table = pa.table(
        {h: pa.array(col, pa.string()) for h, col in zip(header, columns, strict=True)}
    )
    return RawBatch(table, pa.array(lines, pa.int64()), rejects)


# --- Excel -----------------------------------------------------------------------------------


def _xlsx(path: Path, sheet: str | None) -> tuple[list[str], Iterator[RawBatch]]:
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises many types for damaged files
        raise SourceError(f"{path}: not a readable .xlsx workbook ({e})") from None
    if sheet is not None and sheet not in book.sheetnames:
        raise SourceError(f"{path}: no sheet {sheet!r}; sheets: {', '.join(book.sheetnames)}")
    ws = book[sheet] if sheet else book.worksheets[0]
    rows = ws.iter_rows()
    first = next(rows, None)
    if not first:
        raise SourceError(f"{path}: line 1: the sheet is empty, a header row is needed")
    header = [_cell_text(c).strip() for c in first]
    while header and not header[-1]:
        header.pop()
    return header, _xlsx_batches(book, rows, header)


def _xlsx_batches(book: Any, rows: Iterator[Any], header: list[str]) -> Iterator[RawBatch]:
    width = len(header)
    records: list[list[str]] = []
    lines: list[int] = []
    try:
        for row in rows:
            values = [_cell_text(c) for c in row[:width]]
            if not any(values):
                continue
            values += [""] * (width - len(values))
            records.append(values)
            lines.append(row[0].row)
            if len(records) >= BATCH_ROWS:
                yield _text_batch(header, records, lines, [])
                records, lines = [], []
        if records:
            yield _text_batch(header, records, lines, [])
    finally:
        book.close()


_ZERO_PAD = re.compile(r"^0+$")


def _cell_text(cell: Any) -> str:
    """Excel cells to the text a person sees: integral numbers without '.0' or exponent,
    zero-padded number formats ('000000') honoured, dates in ISO form."""
    v = cell.value
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        if isinstance(v, float) and not v.is_integer():
            return repr(v)
        text = str(int(v))
        fmt = getattr(cell, "number_format", "") or ""
        if _ZERO_PAD.match(fmt) and len(text) < len(fmt):
            text = text.zfill(len(fmt))
        return text
    if isinstance(v, dt.datetime):
        return v.isoformat(sep=" ")
    if isinstance(v, dt.date):
        return v.isoformat()
    return str(v)
