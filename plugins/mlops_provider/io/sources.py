"""Readers that extract exactly one data interval from a project's source as an Arrow table.

The landing directory (embedded default) and an S3 prefix hold one CSV file per day under
``records/<YYYY-MM-DD>.csv`` and ``labels/<YYYY-MM-DD>.csv`` (labels by arrival day). A PostgreSQL
source is a table queried by its event-timestamp column, with identifiers quoted by the driver's ``sql``
module (``psycopg2.sql`` or ``psycopg.sql``, whichever the postgres provider connects with).
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_provider.domain.layout import days
from mlops_provider.exceptions import SourceError

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)


class UnreadableBatchError(SourceError):
    """The day's raw file exists but cannot be parsed; ``raw`` keeps its bytes for quarantine."""

    def __init__(self, message: str, *, raw: bytes, name: str):
        super().__init__(message)
        self.raw = raw
        self.name = name


def _read_csv(payload: bytes, name: str) -> pa.Table:
    import pyarrow.csv as pacsv

    try:
        return pacsv.read_csv(io.BytesIO(payload), read_options=pacsv.ReadOptions(block_size=64 << 20))
    except Exception as exc:  # pyarrow raises ArrowInvalid and friends for malformed input
        raise UnreadableBatchError(f"{name}: not a readable CSV file: {exc}", raw=payload, name=name) from exc


def _concat(tables: list[pa.Table]) -> pa.Table | None:
    import pyarrow as pa

    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]


def _naive_utc(table: pa.Table | None) -> pa.Table | None:
    """``timestamptz`` values as naive UTC timestamps, the form file sources and the suites use."""
    import pyarrow as pa

    if table is None:
        return None
    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) and field.type.tz is not None:
            table = table.set_column(i, field.name, table.column(i).cast(pa.timestamp(field.type.unit)))
    return table


class LandingSource:
    """Daily CSV files in a local directory."""

    kind = "landing"

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @property
    def location(self) -> str:
        return f"{self.root}/records/<day>.csv"

    def _read(self, folder: str, start: dt.date, end: dt.date) -> tuple[pa.Table | None, list[str]]:
        tables, names = [], []
        for day in days(start, end):
            path = self.root / folder / f"{day.isoformat()}.csv"
            if path.exists():
                tables.append(_read_csv(path.read_bytes(), str(path)))
                names.append(path.as_uri())
        return _concat(tables), names

    def read_records(self, start: dt.date, end: dt.date) -> tuple[pa.Table | None, list[str]]:
        """The records of days ``start``..``end`` and the files they came from (``None`` if none landed)."""
        return self._read("records", start, end)

    def read_labels(self, start: dt.date, end: dt.date) -> tuple[pa.Table | None, list[str]]:
        return self._read("labels", start, end)


class S3Source:
    """Daily CSV objects under ``s3://bucket/prefix/{records,labels}/<day>.csv``."""

    kind = "s3"

    def __init__(self, client: Any, bucket: str, prefix: str):
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}/records/<day>.csv"

    def _read(self, folder: str, start: dt.date, end: dt.date) -> tuple[pa.Table | None, list[str]]:
        tables, names = [], []
        for day in days(start, end):
            key = f"{self.prefix}/{folder}/{day.isoformat()}.csv"
            try:
                body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            except self.client.exceptions.NoSuchKey:
                continue
            uri = f"s3://{self.bucket}/{key}"
            tables.append(_read_csv(body, uri))
            names.append(uri)
        return _concat(tables), names

    def read_records(self, start: dt.date, end: dt.date):
        return self._read("records", start, end)

    def read_labels(self, start: dt.date, end: dt.date):
        return self._read("labels", start, end)


class PostgresSource:
    """A table with one row per record, extracted by ``event_timestamp`` in [start, end + 1 day)."""

    kind = "postgres"

    def __init__(self, connect: Callable[[], Any], table: str, event_timestamp: str,
                 labels_table: str | None = None, batch_rows: int = 100_000):
        self.connect = connect
        self.table = table
        self.labels_table = labels_table
        self.event_timestamp = event_timestamp
        self.batch_rows = batch_rows

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

    def _query(self, table: str, ts_column: str, start: dt.date, end: dt.date) -> tuple[pa.Table | None, list[str]]:
        import pyarrow as pa

        bounds = (dt.datetime.combine(start, dt.time()), dt.datetime.combine(end + dt.timedelta(days=1), dt.time()))
        conn = self.connect()
        try:
            sql = self._sql(conn)
            query = sql.SQL("SELECT * FROM {table} WHERE {ts} >= %s AND {ts} < %s ORDER BY {ts}").format(
                table=self._identifier(sql, table), ts=sql.Identifier(ts_column)
            )
            # Intervals are UTC days: the naive bounds must mean UTC for both ``timestamp`` and
            # ``timestamptz`` columns, whatever the server's or the database's TimeZone setting is.
            with conn.cursor() as cur:
                cur.execute("SET TIME ZONE 'UTC'")
            # A named (server-side) cursor streams the interval instead of loading it in one piece;
            # both drivers quote its name as an identifier.
            with conn.cursor(name=f"mlops_extract_{table.replace('.', '_')}") as cur:
                cur.itersize = self.batch_rows
                cur.execute(query, bounds)
                batches, names = [], None
                while rows := cur.fetchmany(self.batch_rows):
                    names = names or [d[0] for d in cur.description]
                    batches.append(pa.Table.from_pylist([dict(zip(names, r, strict=True)) for r in rows]))
            conn.commit()
        finally:
            conn.close()
        table_arrow = _naive_utc(_concat(batches))
        where = f"postgres://{table}?{ts_column}=[{bounds[0].isoformat()},{bounds[1].isoformat()})"
        return table_arrow, [where] if table_arrow is not None else []

    def read_records(self, start: dt.date, end: dt.date):
        return self._query(self.table, self.event_timestamp, start, end)

    def read_labels(self, start: dt.date, end: dt.date):
        if not self.labels_table:
            return None, []
        return self._query(self.labels_table, "label_timestamp", start, end)
