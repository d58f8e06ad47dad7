"""Realistic, seeded daily card transactions with a fraud label driven by known risk factors."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

CATEGORIES = ["grocery", "restaurants", "fuel", "travel", "electronics", "online_retail", "entertainment", "health"]
CATEGORY_P = [0.26, 0.18, 0.12, 0.05, 0.07, 0.17, 0.09, 0.06]
CATEGORY_RISK = {"electronics": 1.2, "online_retail": 0.9, "travel": 0.7}
CHANNELS = ["pos", "online", "atm"]
CHANNEL_P = [0.62, 0.31, 0.07]
COUNTRIES = ["US", "GB", "DE", "FR", "ES", "IT", "NL", "BR", "IN", "NG", "CN", "MX"]
FOREIGN_P = [0.22, 0.12, 0.10, 0.10, 0.08, 0.06, 0.08, 0.06, 0.07, 0.04, 0.04, 0.03]
N_CUSTOMERS = 3000


def _customers(seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "customer_id": [f"C{i:06d}" for i in range(N_CUSTOMERS)],
            "typical_amount": rng.lognormal(mean=3.6, sigma=0.6, size=N_CUSTOMERS),
            "activity": rng.gamma(shape=2.0, scale=0.5, size=N_CUSTOMERS),
            "travels": rng.random(N_CUSTOMERS) < 0.15,
        }
    )


def generate(day: dt.date, rows: int, *, covariate_drift: bool = False, concept_drift: bool = False) -> pd.DataFrame:
    """One day of transactions, ``is_fraud`` included; the same day and switches give the same rows."""
    rng = np.random.default_rng(int(day.strftime("%Y%m%d")) * 10 + covariate_drift * 2 + concept_drift)
    customers = _customers()
    weights = customers["activity"].to_numpy() / customers["activity"].sum()
    idx = rng.choice(len(customers), size=rows, p=weights)
    cust = customers.iloc[idx].reset_index(drop=True)

    seconds = np.sort(rng.integers(0, 86400, size=rows))
    start = pd.Timestamp(day)
    ts = start + pd.to_timedelta(seconds, unit="s")
    hour = seconds // 3600

    channel_p = [0.35, 0.58, 0.07] if covariate_drift else CHANNEL_P
    channel = rng.choice(CHANNELS, size=rows, p=channel_p)
    category = rng.choice(CATEGORIES, size=rows, p=CATEGORY_P)
    abroad = rng.random(rows) < np.where(cust["travels"], 0.35, 0.03) * (3.0 if covariate_drift else 1.0)
    country = np.where(abroad, rng.choice(COUNTRIES[1:], size=rows, p=np.array(FOREIGN_P[1:]) / sum(FOREIGN_P[1:])), "US")
    device = np.where(
        channel == "pos", "terminal", np.where(channel == "atm", "terminal", rng.choice(["mobile", "desktop", "unknown"], size=rows, p=[0.6, 0.35, 0.05]))
    )
    card_present = channel != "online"
    amount_scale = 2.5 if covariate_drift else 1.0
    amount = np.round(cust["typical_amount"].to_numpy() * rng.lognormal(0, 0.7, size=rows) * amount_scale, 2)
    amount = np.clip(amount, 0.01, 49_999.0)

    # Risk model behind the label: what a fraud analyst would recognise.
    rel_amount = np.log(amount / cust["typical_amount"].to_numpy())
    night = (hour < 5).astype(float)
    cat_risk = np.array([CATEGORY_RISK.get(c, 0.0) for c in category])
    if concept_drift:
        # Fraudsters move to small, domestic, card-present grocery purchases: old signals stop working.
        logit = -3.9 + 1.8 * (category == "grocery") + 1.2 * card_present - 0.8 * rel_amount - 1.0 * abroad
    else:
        logit = (-6.6 + 0.8 * rel_amount + 0.6 * np.log(amount / 40.0) + 2.0 * abroad + 1.2 * (channel == "online")
                 + 1.6 * cat_risk + 2.0 * night + 1.8 * (device == "unknown"))
    p = 1 / (1 + np.exp(-logit))
    is_fraud = (rng.random(rows) < p).astype(int)

    return pd.DataFrame(
        {
            "transaction_id": [f"T{day:%Y%m%d}-{i:07d}" for i in range(rows)],
            "customer_id": cust["customer_id"].to_numpy(),
            "event_timestamp": ts,
            "amount": amount,
            "merchant_category": category,
            "channel": channel,
            "country": country,
            "device": device,
            "card_present": card_present,
            "is_fraud": is_fraud,
        }
    )
