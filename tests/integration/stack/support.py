"""What only the stack tests use: their days and row counts, and the source data they seed."""

from __future__ import annotations

import datetime as dt
import io

from devkit.stack import Stack, append_fraud_days, day_frames, project, source_engine

UP_TIMEOUT = 420
FRAUD_ROWS = 1500
CHURN_ROWS = 600
# The scheduler creates a run for the latest complete interval when an ingest DAG is unpaused, so the
# sources hold data for yesterday (scheduled run) and the days before it (triggered runs).
YESTERDAY = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
DAYS = [YESTERDAY - dt.timedelta(days=n) for n in (3, 2, 1, 0)]
# A session collected before midnight UTC may start the stack after it: the scheduler's latest interval is
# then today's date as of import, so the sources hold that day too (else its sensor waits, and with one
# active run per ingest DAG every triggered run stays queued behind it).
SPARE_DAY = YESTERDAY + dt.timedelta(days=1)
SOURCE_DAYS = [*DAYS, SPARE_DAY]
# The model half (train -> promote -> score -> monitor) needs labelled history: fraud days before DAYS, the
# last one with covariate drift. Training as of DRIFT_DAY sees the labels that arrived by then (delay 3
# days): 6 labelled days, enough for train / validation / holdout; the drift day itself is only scored.
HISTORY_DAYS = [YESTERDAY - dt.timedelta(days=n) for n in range(12, 3, -1)]
DRIFT_DAY = HISTORY_DAYS[-1]
# The generators seed a day's rows from its date, and whether the first model beats its baseline depends on
# the rows (the fraud label is close to linear in its features). Each day gets the rows of the day as far
# before SEED_YESTERDAY as it is before YESTERDAY: the same data whatever day the tests run.
SEED_YESTERDAY = dt.date(2026, 12, 3)


def seed_day(day: dt.date) -> dt.date:
    """The date whose generated rows ``day`` holds in the stack tests' sources."""
    return SEED_YESTERDAY - (YESTERDAY - day)


def seed_history(stack: Stack) -> None:
    """Append HISTORY_DAYS (DRIFT_DAY with covariate drift) to the fraud tables of the PostgreSQL source."""
    append_fraud_days(stack, {day: "covariate_drift" if day == DRIFT_DAY else "clean" for day in HISTORY_DAYS},
                      FRAUD_ROWS, seed_day)


def seed_sources(stack: Stack) -> None:
    """SOURCE_DAYS: the fraud days into PostgreSQL tables, the churn days as CSV objects under ``s3://mlops/sources/churn``."""
    import pandas as pd
    import sqlalchemy

    fraud, churn = project(stack, "fraud"), project(stack, "churn")
    records, labels = zip(*(day_frames(fraud, day, FRAUD_ROWS, seed_day=seed_day(day)) for day in SOURCE_DAYS), strict=True)
    engine = source_engine(stack)
    with engine.begin() as conn:
        pd.concat(records).to_sql("fraud_transactions", conn, index=False, if_exists="replace", chunksize=5000)
        pd.concat(labels).to_sql("fraud_labels", conn, index=False, if_exists="replace", chunksize=5000)
        conn.execute(sqlalchemy.text("CREATE INDEX ON fraud_transactions (event_timestamp)"))
    engine.dispose()

    s3 = stack.s3()
    for day in SOURCE_DAYS:
        rec, lab = day_frames(churn, day, CHURN_ROWS, seed_day=seed_day(day))
        arrival = day + dt.timedelta(days=churn.label_delay_days)
        for key, frame in ((f"sources/churn/records/{day.isoformat()}.csv", rec),
                           (f"sources/churn/labels/{arrival.isoformat()}.csv", lab)):
            buffer = io.StringIO()
            frame.to_csv(buffer, index=False, date_format="%Y-%m-%dT%H:%M:%S")
            s3.put_object(Bucket=stack.bucket, Key=key, Body=buffer.getvalue().encode())
