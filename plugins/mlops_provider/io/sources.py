"""Readers that extract exactly one data interval from a project's source as an Arrow table.

A landing directory (embedded default) or an S3 prefix holds files named by a pattern per day
(``source.pattern``, default ``records/{date}.csv``; CSV or Parquet) and, for a label feed, by arrival
day (``source.labels_pattern``, default ``labels/{date}.csv``). A PostgreSQL source is a table queried by
its event-timestamp column, with identifiers quoted by the driver's ``sql`` module (``psycopg2.sql`` or
``psycopg.sql``, whichever the postgres provider connects with); its label feed is a second table queried
by its arrival column.

Every source hands its tables to :func:`normalize`, the one place where values are made uniform before
validation: time-zone-aware timestamps become naive UTC (naive ones are taken as UTC already),
``source.null_values`` become nulls, declared text columns that arrive as integers become text.
How to read (pattern, format, null values, declared types, the label feed's names) is a
:class:`ReadSpec`, built from the project by :meth:`ReadSpec.from_project`; the source objects only
know where (a directory, a bucket and prefix, a table and a connection).
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import re
import string
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_provider.config.failpoints import hit
from mlops_provider.config.project import schema_default
from mlops_provider.domain.layout import LABEL_TIMESTAMP, days
from mlops_provider.domain.text import printable
from mlops_provider.exceptions import SourceError

if TYPE_CHECKING:
    import pyarrow as pa

    from mlops_provider.config.project import ProjectConfig

log = logging.getLogger(__name__)

#: At most this many bytes of an unreadable file are copied into quarantine (the source keeps the whole file).
QUARANTINE_MAX_BYTES = 64 << 20
#: Rows per batch when a Parquet file is read (``ParquetFile.iter_batches``; a batch never spans row groups).
PARQUET_BATCH_ROWS = 64 * 1024
#: At most this many file names are listed to explain a missing day.
LIST_LIMIT = 1000
#: What CSV readers take as null in numeric, boolean and timestamp columns besides ``source.null_values``
#: (pyarrow's defaults: none of them can be a value of those types).
CSV_NON_TEXT_NULLS = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                      "N/A", "NA", "NULL", "NaN", "n/a", "nan", "null")
TEXT_TYPES = ("string", "category")
# Day spellings looked for in file names when a day's file is missing (the first one is {date}).
_DAY_FORMS = (("%Y-%m-%d", "{date}"), ("%Y%m%d", "{date:%Y%m%d}"), ("%Y_%m_%d", "{date:%Y_%m_%d}"),
              ("%Y/%m/%d", "{date:%Y/%m/%d}"))


class UnreadableBatchError(SourceError):
    """The day's raw file exists but cannot be parsed; ``raw`` keeps (the head of) its bytes for quarantine."""

    def __init__(self, message: str, *, raw: bytes, name: str, size: int | None = None):
        super().__init__(message)
        self.raw = raw
        self.name = name
        self.size = len(raw) if size is None else size


class OversizedFileError(UnreadableBatchError):
    """The day's file is bigger than ``source.max_file_bytes``: refused unread, and not copied into quarantine."""

    def __init__(self, message: str, *, name: str, size: int, limit: int):
        super().__init__(message, raw=b"", name=name, size=size)
        self.limit = limit


class SourceMismatchError(SourceError):
    """Files are there but none fits the configured pattern: a config problem, so no retry can help."""

    retryable = False


# -- how to read ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabelFeed:
    """The label feed's column names (``label.feed``) and the labels table's names they are renamed to."""

    record_id: str = "record_id"
    column: str = "label"
    arrived_at: str | None = LABEL_TIMESTAMP
    as_record_id: str = "record_id"
    as_column: str = "label"
    types: Mapping[str, str] = field(default_factory=dict)

    def rename(self) -> dict[str, str]:
        names = {self.record_id: self.as_record_id, self.column: self.as_column}
        if self.arrived_at:
            names[self.arrived_at] = LABEL_TIMESTAMP
        return names


@dataclass(frozen=True)
class ReadSpec:
    """How a source's files and tables are read: layout, format, null values, declared types, label feed.

    ``label_feed`` is ``None`` when the label is a column of the record (``label.from: record``).
    """

    format: str = field(default_factory=lambda: schema_default("source.format"))
    pattern: str = field(default_factory=lambda: schema_default("source.pattern"))
    labels_pattern: str = field(default_factory=lambda: schema_default("source.labels_pattern"))
    null_values: tuple[str, ...] = field(default_factory=lambda: tuple(schema_default("source.null_values")))
    max_file_bytes: int = field(default_factory=lambda: int(schema_default("source.max_file_bytes")))
    types: Mapping[str, str] = field(default_factory=dict)
    label_feed: LabelFeed | None = field(default_factory=LabelFeed)

    @classmethod
    def from_project(cls, project: ProjectConfig) -> ReadSpec:
        source = project.source
        types = {name: spec["type"] for name, spec in project.columns.items()}
        feed = None
        if not project.labels_in_record:
            names = project.label_feed
            feed = LabelFeed(
                record_id=names["record_id"], column=names["column"], arrived_at=names["arrived_at"],
                as_record_id=project.record_id, as_column=project.label_column,
                types={names["record_id"]: types[project.record_id], names["column"]: types[project.label_column],
                       **({names["arrived_at"]: "timestamp"} if names["arrived_at"] else {})},
            )
        defaults = cls()
        return cls(format=source.get("format", defaults.format), pattern=source.get("pattern", defaults.pattern),
                   labels_pattern=source.get("labels_pattern", defaults.labels_pattern),
                   null_values=tuple(project.null_values), types=types, label_feed=feed,
                   max_file_bytes=int(source.get("max_file_bytes", defaults.max_file_bytes)))


def format_pattern(pattern: str, day: dt.date, fmt: str) -> str:
    """The relative path a pattern names for ``day`` (``{date}``, ``{date:%Y%m%d}``, ``{format}``)."""
    return pattern.format(date=day, format=fmt)


def _glob_regex(text: str) -> str:
    return "".join("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in text)


def pattern_regex(pattern: str, fmt: str) -> re.Pattern[str]:
    """A regex matching the paths the pattern names for any day (used to tell 'not yet' from 'misnamed')."""
    parts = []
    for literal, name, spec, _ in string.Formatter().parse(pattern):
        parts.append(_glob_regex(literal))
        if name == "date":
            sample = format(dt.date(2000, 11, 22), spec or "")
            parts.append(".+?" if re.search(r"[A-Za-z]", sample) else re.sub(r"\d", r"\\d", re.escape(sample)))
        elif name == "format":
            parts.append(re.escape(fmt))
    return re.compile("".join(parts))


def _has_glob(text: str) -> bool:
    return "*" in text or "?" in text


# -- the one place values are normalised -----------------------------------------------------------------
_OFFSET = r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$"


def _parse_timestamps(column: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """ISO 8601 text (offsets or not, mixed) as naive UTC timestamps; ``None`` when it does not parse.

    Values with an offset and naive ones (UTC) are parsed apart: pandas would read a naive value that
    follows an offset value in that offset.
    """
    import pandas as pd
    import pyarrow as pa

    text = column.to_pandas()
    aware = text.str.contains(_OFFSET, regex=True, na=False)
    parsed = pd.Series(pd.NaT, index=text.index, dtype="datetime64[us]")
    try:
        if aware.any():
            parsed[aware] = pd.to_datetime(text[aware], utc=True, format="ISO8601").dt.tz_localize(None)
        if (~aware).any():
            parsed[~aware] = pd.to_datetime(text[~aware], format="ISO8601")
    except (ValueError, TypeError, OverflowError):
        return None
    return pa.chunked_array([pa.array(parsed, type=pa.timestamp("us"))])


def normalize(table: pa.Table | None, *, types: Mapping[str, str], null_values: tuple[str, ...] | list[str]
              ) -> pa.Table | None:
    """The table every source kind hands to staging: UTC, real nulls, text as text.

    - a time-zone-aware timestamp column becomes naive UTC (naive values are taken as UTC already): the
      form the validation suite's interval bounds and the lake use;
    - a declared ``timestamp`` column that arrived as text (mixed offsets in a CSV file, a text column in
      Postgres) is parsed as ISO 8601, else left for validation to reject;
    - a declared ``string``/``category`` column that arrived as integers or dictionary-encoded becomes text;
    - text values equal to one of ``null_values`` become nulls.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if table is None:
        return None
    tokens = pa.array(list(null_values), type=pa.string())
    for i, fld in enumerate(table.schema):
        column, kind = table.column(i), types.get(fld.name)
        if pa.types.is_dictionary(fld.type):
            column = column.cast(fld.type.value_type)
        if kind in TEXT_TYPES and pa.types.is_integer(column.type):
            column = column.cast(pa.string())
        if (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)) and len(tokens):
            found = pc.is_in(column, value_set=tokens.cast(column.type))
            if pc.any(found).as_py():  # most columns hold no token: they are not copied (10M rows, 6 text columns: ~0.8 GiB)
                column = pc.if_else(found, pa.scalar(None, column.type), column)
        if kind == "timestamp" and (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            column = _parse_timestamps(column) or column
        if pa.types.is_timestamp(column.type) and column.type.tz is not None:
            column = column.cast(pa.timestamp(column.type.unit))
        if column is not table.column(i):
            table = table.set_column(i, fld.name, column)
    # pandas' metadata (a Parquet file written by pandas) would turn the columns back into zoned ones.
    return table.replace_schema_metadata(None)


# -- parsing ---------------------------------------------------------------------------------------------
def _csv_options(spec: ReadSpec, types: Mapping[str, str]) -> tuple[Any, Any]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    read = pacsv.ReadOptions(block_size=16 << 20)
    # Declared text columns are read as text whatever they look like ("007" stays "007"); text keeps empty
    # strings and tokens as they are, normalize() turns the configured tokens into nulls.
    convert = pacsv.ConvertOptions(
        column_types={name: pa.string() for name, kind in types.items() if kind in TEXT_TYPES},
        null_values=sorted(set(CSV_NON_TEXT_NULLS) | set(spec.null_values)), strings_can_be_null=False,
    )
    return read, convert


def read_parquet(source: Any) -> pa.Table:
    """A Parquet file as one Arrow table, read batch by batch (``ParquetFile.iter_batches``).

    ``pq.read_table`` buffers the column chunks of the whole file before decoding (about the file's size
    again on top of the table: a 92 MB table peaked at 186 MB of Arrow memory); read by row group, with
    no pre-buffering, only one row group's chunks are held besides the table being built (114 MB). On S3
    the object is read by ranges (:class:`_S3Object`), never downloaded whole into memory first.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    with pq.ParquetFile(source, pre_buffer=False) as parquet:
        schema = parquet.schema_arrow
        return pa.Table.from_batches(list(parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS)), schema=schema)


def _parse(open_input: Callable[[], Any], head: Callable[[], tuple[bytes, int | None]], name: str,
           spec: ReadSpec, types: Mapping[str, str]) -> pa.Table:
    """A file as an Arrow table, streamed from ``open_input()`` (a path or a file object)."""
    import pyarrow.csv as pacsv

    stream = open_input()  # outside the try: a failing connection is an outage (retried), not a bad file
    try:
        if spec.format == "parquet":
            table = read_parquet(stream)
        else:
            read, convert = _csv_options(spec, types)
            table = pacsv.read_csv(stream, read_options=read, convert_options=convert)
        try:
            table.column_names  # noqa: B018 (names that are not UTF-8 fail here, not later in normalize)
        except UnicodeDecodeError as exc:
            raise ValueError(f"its header is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
        return table
    except (ValueError, TypeError, NotImplementedError) as exc:  # ArrowInvalid, ArrowTypeError, ...: malformed input
        raw, size = head()
        hint = ""
        if spec.format == "csv" and raw.startswith(b"PAR1"):
            hint = " (it is a Parquet file: set source.format: parquet)"
        elif spec.format == "parquet" and not raw.startswith(b"PAR1"):
            hint = " (it is not Parquet: check source.format)"
        elif raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            hint = " (it is UTF-16 text, with a byte-order mark: export it as UTF-8)"
        elif raw and not raw.strip(b"\x00"):
            hint = " (it holds only NUL bytes: a truncated, preallocated or sparse file, not an export)"
        elif b"\x00" in raw[:65536]:
            hint = " (it contains NUL bytes: a binary file, not CSV text)"
        what = "Parquet" if spec.format == "parquet" else "CSV"
        detail = printable(str(exc).splitlines()[0]) if str(exc) else type(exc).__name__
        raise UnreadableBatchError(f"{name}: not a readable {what} file{hint}: {detail}", raw=raw, name=name,
                                   size=size) from exc


def time_slices(low: dt.datetime, high: dt.datetime, count: int) -> list[tuple[dt.datetime, dt.datetime]]:
    """[low, high) cut into ``count`` adjacent half-open slices of equal length (whole microseconds)."""
    step = (high - low) / max(1, count)
    cuts = [low + step * i for i in range(max(1, count))] + [high]
    return [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if a < b]


def _concat(tables: list[pa.Table]) -> pa.Table | None:
    import pyarrow as pa

    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]


# -- sources ---------------------------------------------------------------------------------------------
class _Source:
    """What every source kind shares: records and label feed read through :func:`normalize`."""

    kind = "source"

    def read_records(self, start: dt.date, end: dt.date, spec: ReadSpec | None = None
                     ) -> tuple[pa.Table | None, list[str]]:
        """The records of days ``start``..``end`` and where they came from (``None`` if none landed)."""
        spec = spec or ReadSpec()
        table, names = self._records(start, end, spec)
        return normalize(table, types=spec.types, null_values=spec.null_values), names

    def read_labels(self, start: dt.date, end: dt.date, spec: ReadSpec | None = None
                    ) -> tuple[pa.Table | None, list[str]]:
        """The label feed of arrival days ``start``..``end``, renamed to the labels table's names
        (record id, label, ``label_timestamp``); ``None`` when nothing arrived or the labels come in the record."""
        spec = spec or ReadSpec()
        feed = spec.label_feed
        if feed is None:
            return None, []
        table, names = self._labels(start, end, spec)
        table = normalize(table, types={**spec.types, **feed.types}, null_values=spec.null_values)
        if table is not None:
            rename = feed.rename()
            table = table.rename_columns([rename.get(c, c) for c in table.column_names])
        return table, names

    def explain_missing(self, day: dt.date, spec: ReadSpec) -> tuple[str, bool]:
        """Why no records were found for ``day``: ``(message, retryable)``."""
        return f"nothing found for {day}", True

    def has_data(self, day: dt.date, spec: ReadSpec | None = None) -> bool:
        """Whether the records of ``day`` have landed: a cheap look (a listing, a ``LIMIT 1`` query), no read.

        What the ingest DAG's wait asks before extracting (``sensors/source.py``).
        """
        raise NotImplementedError

    def _records(self, start: dt.date, end: dt.date, spec: ReadSpec) -> tuple[pa.Table | None, list[str]]:
        raise NotImplementedError

    def _labels(self, start: dt.date, end: dt.date, spec: ReadSpec) -> tuple[pa.Table | None, list[str]]:
        raise NotImplementedError


class _FileSource(_Source):
    """Daily files named by a pattern under a root (a directory, an S3 prefix)."""

    @property
    def root_name(self) -> str:
        raise NotImplementedError

    def uri(self, rel: str) -> str:
        raise NotImplementedError

    def _matches(self, rel: str) -> list[str]:
        """The existing files ``rel`` names (a path, or a glob with ``*``/``?``), sorted."""
        raise NotImplementedError

    def _open(self, rel: str, fmt: str) -> Any:
        """What pyarrow reads the file from: a path or a file object."""
        raise NotImplementedError

    def _head(self, rel: str) -> tuple[bytes, int | None]:
        raise NotImplementedError

    def _size(self, rel: str) -> int | None:
        """The file's size in bytes (as stored: compressed files by their compressed size)."""
        raise NotImplementedError

    def _check_size(self, rel: str, spec: ReadSpec) -> None:
        size = self._size(rel)
        if size is not None and size > spec.max_file_bytes:
            uri = self.uri(rel)
            raise OversizedFileError(
                f"{uri}: {size:,} bytes ({size / 2**30:.2f} GiB) is over source.max_file_bytes "
                f"({spec.max_file_bytes:,} bytes, {spec.max_file_bytes / 2**30:.2f} GiB); refused unread, nothing of "
                "it is loaded or copied. Have the export split into smaller files (a source.pattern with * reads "
                "them all) or raise source.max_file_bytes if the workers have the memory",
                name=uri, size=size, limit=spec.max_file_bytes)

    def _listing(self, limit: int) -> list[str]:
        """Up to ``limit`` relative paths of the files under the root."""
        raise NotImplementedError

    def has_data(self, day: dt.date, spec: ReadSpec | None = None) -> bool:
        spec = spec or ReadSpec()
        return bool(self._matches(format_pattern(spec.pattern, day, spec.format)))

    def _read(self, pattern: str, start: dt.date, end: dt.date, spec: ReadSpec, types: Mapping[str, str],
              stamp: str | None = None) -> tuple[pa.Table | None, list[str]]:
        import pyarrow as pa

        tables, names = [], []
        for day in days(start, end):
            for rel in self._matches(format_pattern(pattern, day, spec.format)):
                self._check_size(rel, spec)
                uri = self.uri(rel)
                table = _parse(lambda rel=rel: self._open(rel, spec.format), lambda rel=rel: self._head(rel),
                               uri, spec, types)
                if stamp and stamp not in table.column_names:
                    # A feed without an arrival column: its labels are known by the end of the file's day.
                    end_of_day = dt.datetime.combine(day, dt.time.max)
                    table = table.append_column(stamp, pa.array([end_of_day] * table.num_rows, pa.timestamp("us")))
                tables.append(table)
                names.append(uri)
        return _concat(tables), names

    def _records(self, start, end, spec):
        return self._read(spec.pattern, start, end, spec, spec.types)

    def _labels(self, start, end, spec):
        feed = spec.label_feed
        stamp = LABEL_TIMESTAMP if feed.arrived_at is None else None
        return self._read(spec.labels_pattern, start, end, spec, {**spec.types, **feed.types}, stamp=stamp)

    def explain_missing(self, day: dt.date, spec: ReadSpec) -> tuple[str, bool]:
        expected = format_pattern(spec.pattern, day, spec.format)
        found = self._listing(LIST_LIMIT)
        labels = pattern_regex(spec.labels_pattern, spec.format) if spec.label_feed else None
        candidates = [f for f in found if not (labels and labels.fullmatch(f))]
        records = pattern_regex(spec.pattern, spec.format)
        matching = [f for f in candidates if records.fullmatch(f)]
        mentions = [f for f in candidates if any(day.strftime(form) in f for form, _ in _DAY_FORMS)]
        expect = f"expected pattern '{spec.pattern}' ({expected} for {day})"
        if not candidates:
            return f"no files under {self.root_name}; {expect}", True
        if matching:
            latest = max(matching)
            extra = f"; also found {_names(mentions)}, which do not fit the pattern" if mentions else ""
            return (f"{expected} is not in {self.root_name} yet ({len(matching)} files fit the pattern "
                    f"'{spec.pattern}', e.g. {latest}){extra}"), True
        shown = mentions or candidates
        return (f"found {_names(shown)} in {self.root_name}, {expect}; no file there fits the pattern"
                + _suggestion(shown, day, spec)), False


def _names(names: list[str], most: int = 5) -> str:
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more


def _suggestion(found: list[str], day: dt.date, spec: ReadSpec) -> str:
    """A pattern that would name a found file (``flights_2013-01-01.csv`` -> ``flights_{date}.csv``)."""
    for name in found:
        for form, placeholder in _DAY_FORMS:
            if day.strftime(form) in name:
                pattern = name.replace(day.strftime(form), placeholder)
                fmt = "parquet" if name.endswith((".parquet", ".pq")) else "csv" if ".csv" in name else None
                also = f" and source.format: {fmt}" if fmt and fmt != spec.format else ""
                return f". Set source.pattern: '{pattern}'{also}"
    return ""


class LandingSource(_FileSource):
    """Daily files in a local directory."""

    kind = "landing"

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @property
    def root_name(self) -> str:
        return str(self.root)

    def uri(self, rel: str) -> str:
        return (self.root / rel).as_uri() if self.root.is_absolute() else str(self.root / rel)

    def _matches(self, rel: str) -> list[str]:
        if _has_glob(rel):
            regex = re.compile(_glob_regex(rel))
            return sorted(p.relative_to(self.root).as_posix() for p in self.root.glob(rel)
                          if p.is_file() and regex.fullmatch(p.relative_to(self.root).as_posix()))
        return [rel] if (self.root / rel).is_file() else []

    def _open(self, rel: str, fmt: str) -> str:
        return str(self.root / rel)  # pyarrow reads the file block by block (and unpacks .gz/.bz2/.zst)

    def _size(self, rel: str) -> int | None:
        return (self.root / rel).stat().st_size

    def _head(self, rel: str) -> tuple[bytes, int | None]:
        path = self.root / rel
        with path.open("rb") as fh:
            return fh.read(QUARANTINE_MAX_BYTES), path.stat().st_size

    def _listing(self, limit: int) -> list[str]:
        found: list[str] = []
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if not name.startswith("."):
                    found.append(Path(folder, name).relative_to(self.root).as_posix())
                    if len(found) >= limit:
                        return found
        return found


class S3Source(_FileSource):
    """Daily objects under ``s3://bucket/prefix/`` named by the patterns."""

    kind = "s3"

    def __init__(self, client: Any, bucket: str, prefix: str):
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    @property
    def root_name(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def uri(self, rel: str) -> str:
        return f"s3://{self.bucket}/{self._key(rel)}"

    def _keys(self, prefix: str, limit: int | None = None) -> Iterator[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        count = 0
        for page in pages:
            for item in page.get("Contents", []):
                yield item["Key"]
                count += 1
                if limit is not None and count >= limit:
                    return

    def _matches(self, rel: str) -> list[str]:
        key = self._key(rel)
        if _has_glob(key):
            literal = re.split(r"[*?]", key, maxsplit=1)[0]
            regex = re.compile(_glob_regex(key))
            start = len(self._key(""))
            return sorted(k[start:] for k in self._keys(literal) if regex.fullmatch(k))
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return []
            raise
        return [rel]

    def _open(self, rel: str, fmt: str) -> Any:
        if fmt == "parquet":
            # Parquet needs random access (the footer comes last): read by ranges, one column chunk at a time.
            return _S3Object(self.client, self.bucket, self._key(rel), self._size(rel) or 0)
        return self.client.get_object(Bucket=self.bucket, Key=self._key(rel))["Body"]  # a CSV body streams in

    def _size(self, rel: str) -> int | None:
        return self.client.head_object(Bucket=self.bucket, Key=self._key(rel)).get("ContentLength")

    def _head(self, rel: str) -> tuple[bytes, int | None]:
        try:
            reply = self.client.get_object(Bucket=self.bucket, Key=self._key(rel),
                                           Range=f"bytes=0-{QUARANTINE_MAX_BYTES - 1}")
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":  # an empty object
                return b"", 0
            raise
        total = reply.get("ContentRange", "").rpartition("/")[2]
        return reply["Body"].read(), int(total) if total.isdigit() else None

    def _listing(self, limit: int) -> list[str]:
        start = len(self._key(""))
        return [k[start:] for k in self._keys(self._key(""), limit) if not k.endswith("/")]


class _S3Object(io.RawIOBase):
    """A seekable, read-only S3 object whose reads are ranged GETs: what a Parquet reader needs
    (the footer first, then each column chunk it decodes) without the whole object in memory."""

    def __init__(self, client: Any, bucket: str, key: str, size: int):
        super().__init__()
        self.client, self.bucket, self.key, self.size = client, bucket, key, size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self.size - self._pos)
        if want <= 0:
            return 0
        reply = self.client.get_object(Bucket=self.bucket, Key=self.key,
                                       Range=f"bytes={self._pos}-{self._pos + want - 1}")
        data = reply["Body"].read()
        buffer[:len(data)] = data
        self._pos += len(data)
        return len(data)


#: SQLSTATE of a statement cancelled by the server (statement_timeout, pg_cancel_backend).
QUERY_CANCELED = "57014"


def _sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a psycopg2 (``pgcode``), psycopg 3 or ADBC (``sqlstate``) error."""
    return getattr(exc, "pgcode", None) or getattr(exc, "sqlstate", None)


def _quote_identifier(*parts: str) -> str:
    """``schema.table`` (or a column) as a quoted PostgreSQL identifier: what ``sql.Identifier`` renders."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in parts)


def _db_api_types(table: pa.Table) -> pa.Table:
    """ADBC's Arrow types made the ones the DB-API path gives, so both extract the same staged batch:
    narrow integers and floats widen to 64 bits; uuids become text; ``numeric(p, s)`` becomes
    ``decimal128(p, s)`` (the DB-API path infers a narrower precision from the values; an unconstrained
    ``numeric`` becomes float64); other server types ADBC passes as opaque text (json, inet) stay text."""
    import pyarrow as pa

    columns, fields = [], []
    for fld, column in zip(table.schema, table.columns, strict=True):
        kind = fld.type
        if pa.types.is_integer(kind) and kind.bit_width < 64:
            column = column.cast(pa.int64() if pa.types.is_signed_integer(kind) else pa.uint64())
        elif pa.types.is_floating(kind) and kind.bit_width < 64:
            column = column.cast(pa.float64())
        elif isinstance(kind, pa.UuidType):  # the DB-API driver hands out uuids as text
            column = pa.chunked_array([_uuid_text(chunk.storage) for chunk in column.chunks], pa.string())
        elif isinstance(kind, pa.BaseExtensionType):
            column = pa.chunked_array([c.storage for c in column.chunks], kind.storage_type)
            if getattr(kind, "type_name", "") == "numeric":
                column = column.cast(_numeric_type(fld))
        columns.append(column)
        fields.append(pa.field(fld.name, column.type, fld.nullable))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def _uuid_text(raw: pa.FixedSizeBinaryArray) -> pa.Array:
    """16-byte uuids as their canonical text (``str(uuid.UUID(bytes=...))``), in numpy instead of a Python
    object per value (1M uuids: ~0.3 s instead of ~6 s): each byte becomes two hex digits, with dashes after
    the 4th, 6th, 8th and 10th byte; the 36-byte strings are laid out as one Arrow string array."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(raw)
    data = np.frombuffer(raw.buffers()[1], dtype=np.uint8)[raw.offset * 16:(raw.offset + n) * 16].reshape(n, 16)
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    text = np.full((n, 36), ord("-"), dtype=np.uint8)
    at = 0
    for byte in range(16):
        at += byte in (4, 6, 8, 10)  # the dash before this byte's digits
        text[:, at], text[:, at + 1] = digits[data[:, byte] >> 4], digits[data[:, byte] & 15]
        at += 2
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int32)
    out = pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text))
    return out if not raw.null_count else pc.if_else(raw.is_valid(), out, pa.scalar(None, pa.string()))


def _numeric_type(fld: pa.Field) -> pa.DataType:
    """``numeric(p, s)``'s Arrow type from the type modifier ADBC reports (``(p << 16 | s) + 4``)."""
    import pyarrow as pa

    typmod = int((fld.metadata or {}).get(b"POSTGRESQL:typmod", b"-1"))
    if typmod < 4:
        return pa.float64()
    precision, scale = (typmod - 4) >> 16, (typmod - 4) & 0xFFFF
    return pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)


class PostgresSource(_Source):
    """A table with one row per record, extracted by ``event_timestamp`` in [start, end + 1 day)."""

    kind = "postgres"

    def __init__(self, connect: Callable[[], Any], table: str, event_timestamp: str,
                 labels_table: str | None = None, batch_rows: int = 100_000,
                 statement_timeout_s: float | None = None, arrow_uri: str | None = None,
                 read_streams: int | None = None):
        self.connect = connect
        #: A libpq URI of the same database: the extraction then goes through ADBC (the server streams COPY
        #: BINARY straight into Arrow: about a quarter of the client CPU of rows through the DB-API cursor).
        #: ``None``: the DB-API connection ``connect`` reads the rows.
        self.arrow_uri = arrow_uri
        self.table = table
        self.labels_table = labels_table
        self.event_timestamp = event_timestamp
        self.batch_rows = batch_rows
        #: The server cancels a statement of the extraction running longer (``source.statement_timeout_seconds``).
        self.statement_timeout_s = (float(schema_default("source.statement_timeout_seconds"))
                                    if statement_timeout_s is None else float(statement_timeout_s))
        #: ADBC: the interval is read as this many time slices at once, each over its own connection, all in
        #: one snapshot (``source.read_streams``).
        self.read_streams = max(1, int(schema_default("source.read_streams") if read_streams is None else read_streams))

    @property
    def location(self) -> str:
        return f"postgres table {self.table} by {self.event_timestamp}"

    @staticmethod
    def _sql(conn: Any):
        """The ``sql`` composition module of the connection's driver.

        The postgres provider hands out psycopg (3) connections when psycopg 3 and SQLAlchemy 2 are
        installed, psycopg2 ones otherwise; a psycopg 3 cursor rejects psycopg2's composed objects.
        """
        if type(conn).__module__.startswith("psycopg2"):
            from psycopg2 import sql
        else:
            from psycopg import sql
        return sql

    @staticmethod
    def _identifier(sql: Any, name: str):
        """``schema.table`` from the config as a quoted identifier (never pasted into the SQL text)."""
        return sql.Identifier(*name.split("."))

    @staticmethod
    def _bounds(start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
        return dt.datetime.combine(start, dt.time()), dt.datetime.combine(end + dt.timedelta(days=1), dt.time())

    def _session(self, cur: Any) -> None:
        """UTC day bounds and the statement timeout, on a fresh connection of either kind."""
        # Intervals are UTC days: the naive bounds must mean UTC for both ``timestamp`` and
        # ``timestamptz`` columns, whatever the server's or the database's TimeZone setting is.
        cur.execute("SET TIME ZONE 'UTC'")
        # One hung statement (a lock, a scan gone wrong) must not block the DAG forever: the server
        # cancels it, the task fails and is retried.
        cur.execute(f"SET statement_timeout = {max(1, round(self.statement_timeout_s * 1000))}")

    def _query(self, table: str, ts_column: str, start: dt.date, end: dt.date) -> tuple[pa.Table | None, list[str]]:
        bounds = self._bounds(start, end)
        try:
            fetch = self._fetch_arrow if self.arrow_uri else self._fetch_rows
            table_arrow = _concat([b for b in fetch(table, ts_column, bounds) if b.num_rows])
        except Exception as exc:
            if _sqlstate(exc) == QUERY_CANCELED:
                raise SourceError(
                    f"postgres table {table}: the extraction of [{bounds[0].isoformat()}, {bounds[1].isoformat()}) "
                    f"ran longer than source.statement_timeout_seconds ({self.statement_timeout_s:g} s) and the "
                    f"server cancelled it; the task is retried. If the table is slow to read by {ts_column}, index "
                    f"that column or raise source.statement_timeout_seconds ({str(exc).strip().splitlines()[0]})"
                ) from exc
            raise
        where = f"postgres://{table}?{ts_column}=[{bounds[0].isoformat()},{bounds[1].isoformat()})"
        return table_arrow, [where] if table_arrow is not None else []

    def _fetch_rows(self, table: str, ts_column: str, bounds: tuple[dt.datetime, dt.datetime]) -> list[pa.Table]:
        """The interval through the DB-API connection, in batches of ``batch_rows`` rows."""
        import pyarrow as pa

        conn = self.connect()
        try:
            sql = self._sql(conn)
            query = sql.SQL("SELECT * FROM {table} WHERE {ts} >= %s AND {ts} < %s ORDER BY {ts}").format(
                table=self._identifier(sql, table), ts=sql.Identifier(ts_column)
            )
            with conn.cursor() as cur:
                self._session(cur)
            # A named (server-side) cursor streams the interval instead of loading it in one piece;
            # both drivers quote its name as an identifier.
            with conn.cursor(name=f"mlops_extract_{table.replace('.', '_')}") as cur:
                cur.itersize = self.batch_rows
                cur.execute(query, bounds)
                batches, names = [], None
                while rows := cur.fetchmany(self.batch_rows):
                    names = names or [d[0] for d in cur.description]
                    hit("source.postgres.batch")  # mid-read
                    # Column by column: the same Arrow types as row dicts through from_pylist, ~5x faster.
                    batches.append(pa.table(dict(zip(names, map(pa.array, zip(*rows, strict=True)), strict=True))))
            conn.commit()
        finally:
            conn.close()
        return batches

    def _fetch_arrow(self, table: str, ts_column: str, bounds: tuple[dt.datetime, dt.datetime]) -> list[pa.Table]:
        """The interval through ADBC, in ``read_streams`` time slices read at once, with the DB-API path's types.

        One connection per slice, each a REPEATABLE READ transaction in the first one's snapshot (PostgreSQL's
        ``pg_export_snapshot``, as ``pg_dump --jobs`` does): the slices together are the interval as one
        query would have read it, in the same order. One stream keeps the server's CPU at ~0.6 cores while the
        client waits for it (10M rows: 15 s of a 23 s extract); two use both cores of a 2-core host.
        """
        import adbc_driver_postgresql.dbapi as adbc

        ts = _quote_identifier(ts_column)
        source = _quote_identifier(*table.split("."))

        def query(low: dt.datetime, high: dt.datetime) -> str:
            # The bounds are literals, as psycopg renders them, not bind parameters: with parameters the driver
            # runs a prepared statement and libpq holds the whole result in its own form first (2M rows x 11
            # columns: 939 MiB peak); without, it reads the server's binary COPY stream (340 MiB, the table is
            # 163 MiB). Both bounds are datetimes built here from dates, never text from outside.
            return (f"SELECT * FROM {source} WHERE {ts} >= '{low.isoformat()}'::timestamp "
                    f"AND {ts} < '{high.isoformat()}'::timestamp ORDER BY {ts}")

        slices = time_slices(*bounds, self.read_streams)
        connections, cursors = [], []
        try:
            for _ in slices:
                connections.append(adbc.connect(self.arrow_uri))
                cursors.append(connections[-1].cursor())
                self._session(cursors[-1])
            if len(cursors) > 1:
                for cur in cursors:
                    cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cursors[0].execute("SELECT pg_export_snapshot()")
                snapshot = str(cursors[0].fetchone()[0])
                if not re.fullmatch(r"[0-9A-Fa-f-]+", snapshot):
                    raise SourceError(f"postgres table {table}: unexpected snapshot id {snapshot!r} from the server")
                for cur in cursors[1:]:
                    cur.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
                hit("source.postgres.snapshot")  # every slice in the snapshot, none read yet

            def read(index: int) -> pa.Table:
                cursors[index].execute(query(*slices[index]))
                # The whole stream as one table: the driver raises a reading error with its SQLSTATE here (a
                # statement timeout is 57014), where a record batch reader would raise a bare OSError.
                return cursors[index].fetch_arrow_table()

            if len(cursors) == 1:
                streamed = [read(0)]
            else:
                from concurrent.futures import ThreadPoolExecutor

                with ThreadPoolExecutor(len(cursors), thread_name_prefix="source-read") as pool:
                    streamed = list(pool.map(read, range(len(cursors))))
        finally:
            for cur in cursors:
                cur.close()
            for conn in connections:
                conn.close()
        hit("source.postgres.batch")  # read, not yet staged
        return [_db_api_types(part) for part in streamed]

    def _records(self, start, end, spec):
        return self._query(self.table, self.event_timestamp, start, end)

    def _labels(self, start, end, spec):
        if not self.labels_table:
            return None, []
        return self._query(self.labels_table, spec.label_feed.arrived_at or LABEL_TIMESTAMP, start, end)

    def has_data(self, day: dt.date, spec: ReadSpec | None = None) -> bool:
        """One ``SELECT 1 ... LIMIT 1`` on the day's [start, end + 1 day) (an index on the column makes it instant)."""
        low, high = self._bounds(day, day)
        conn = self.connect()
        try:
            sql = self._sql(conn)
            query = sql.SQL("SELECT 1 FROM {table} WHERE {ts} >= %s AND {ts} < %s LIMIT 1").format(
                table=self._identifier(sql, self.table), ts=sql.Identifier(self.event_timestamp))
            with conn.cursor() as cur:
                self._session(cur)
                cur.execute(query, (low, high))
                found = cur.fetchone() is not None
            conn.commit()
        finally:
            conn.close()
        return found

    def explain_missing(self, day: dt.date, spec: ReadSpec) -> tuple[str, bool]:
        low, high = self._bounds(day, day)
        return (f"no rows in table {self.table} with {self.event_timestamp} in [{low.isoformat()}, "
                f"{high.isoformat()}) UTC"), True
