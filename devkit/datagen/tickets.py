"""Realistic, seeded customer-support tickets routed to a team: a multiclass example.

Accounts (the entity) open tickets through a channel about a product; which team resolves it (billing,
technical, account, shipping) depends on the product, the words the ticket mentions, the plan and the
account's history. The team is known once the ticket is closed, a few days later, and arrives in a
separate feed with columns named the helpdesk's way (``ticket``, ``resolved_by``, ``closed_at``).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

TEAMS = ["billing", "technical", "account", "shipping"]
PRODUCTS = ["router", "subscription", "phone", "accessory"]
CHANNELS = ["email", "chat", "phone", "web_form"]
PLANS = ["free", "plus", "business"]
N_ACCOUNTS = 1500


def _accounts(seed: int = 23) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "account_id": [f"A{i:05d}" for i in range(N_ACCOUNTS)],
        "plan": rng.choice(PLANS, size=N_ACCOUNTS, p=[0.5, 0.35, 0.15]),
        "tenure_days": rng.integers(1, 2000, size=N_ACCOUNTS),
        "activity": rng.gamma(2.0, 1.0, size=N_ACCOUNTS),
    })


def generate(day: dt.date, rows: int, *, covariate_drift: bool = False, concept_drift: bool = False) -> pd.DataFrame:
    """One day of tickets, ``team`` included; the same day and switches give the same rows."""
    rng = np.random.default_rng(int(day.strftime("%Y%m%d")) * 10 + covariate_drift * 2 + concept_drift + 7)
    accounts = _accounts()
    idx = rng.choice(len(accounts), size=rows, p=(accounts["activity"] / accounts["activity"].sum()).to_numpy())
    who = accounts.iloc[idx].reset_index(drop=True)
    seconds = np.sort(rng.integers(0, 86400, size=rows))
    product = rng.choice(PRODUCTS, size=rows, p=[0.3, 0.35, 0.25, 0.1] if not covariate_drift else [0.6, 0.2, 0.15, 0.05])
    channel = rng.choice(CHANNELS, size=rows, p=[0.35, 0.3, 0.2, 0.15])
    mentions_invoice = rng.random(rows) < np.where(product == "subscription", 0.55, 0.12)
    mentions_error = rng.random(rows) < np.where(np.isin(product, ["router", "phone"]), 0.6, 0.15)
    mentions_delivery = rng.random(rows) < np.where(product == "accessory", 0.6, 0.08)
    words = rng.integers(10, 400, size=rows)
    # Team scores (a multinomial logit a support lead would recognise).
    scores = np.column_stack([
        2.2 * mentions_invoice + 0.8 * (product == "subscription") + 0.5 * (who["plan"] == "business"),
        2.0 * mentions_error + 0.9 * np.isin(product, ["router", "phone"]) + 0.002 * words,
        0.9 * (channel == "phone") + 0.6 * (who["tenure_days"] < 60) + 0.4 * (who["plan"] == "free"),
        2.4 * mentions_delivery + 0.7 * (product == "accessory"),
    ]).astype(float)
    if concept_drift:
        scores = scores[:, [1, 0, 2, 3]]  # a reorganisation: invoice questions now go to technical and back
    p = np.exp(scores - scores.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    team = np.array([rng.choice(TEAMS, p=row) for row in p])
    return pd.DataFrame({
        "ticket_id": [f"TK{day:%Y%m%d}-{i:06d}" for i in range(rows)],
        "account_id": who["account_id"],
        "event_timestamp": pd.Timestamp(day) + pd.to_timedelta(seconds, unit="s"),
        "channel": channel,
        "product": product,
        "plan": who["plan"],
        "words": words.astype(int),
        "mentions_invoice": mentions_invoice,
        "mentions_error": mentions_error,
        "mentions_delivery": mentions_delivery,
        "team": team,
    })
