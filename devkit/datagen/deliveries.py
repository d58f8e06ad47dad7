"""Realistic, seeded parcel deliveries with their duration (minutes): a regression example.

Couriers (the main entity) ride bikes, cars or vans out of depots (a second entity); a delivery takes
longer with distance, parcels, weight, rush hours, rain and a slow courier, and shorter for a courier
who knows the area. The duration is known once the parcel is delivered: it is a column of the record
itself (``label.from: record``), held back by the platform until ``label.delay_days`` later.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

DEPOTS = ["north", "south", "east", "west", "central"]
DEPOT_TRAFFIC = {"central": 1.35, "north": 1.0, "south": 1.05, "east": 0.95, "west": 1.1}
VEHICLES = ["bike", "car", "van"]
WEATHER = ["clear", "cloudy", "rain"]
N_COURIERS = 400


def _couriers(seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "courier_id": [f"K{i:04d}" for i in range(N_COURIERS)],
        "depot": rng.choice(DEPOTS, size=N_COURIERS),
        "vehicle": rng.choice(VEHICLES, size=N_COURIERS, p=[0.3, 0.45, 0.25]),
        "pace": rng.lognormal(0.0, 0.18, size=N_COURIERS),  # > 1: slower than typical
        "activity": rng.gamma(3.0, 1.0, size=N_COURIERS),
    })


def generate(day: dt.date, rows: int, *, covariate_drift: bool = False, concept_drift: bool = False) -> pd.DataFrame:
    """One day of deliveries, ``duration_minutes`` included; the same day and switches give the same rows."""
    rng = np.random.default_rng(int(day.strftime("%Y%m%d")) * 10 + covariate_drift * 2 + concept_drift + 5)
    couriers = _couriers()
    idx = rng.choice(len(couriers), size=rows, p=(couriers["activity"] / couriers["activity"].sum()).to_numpy())
    who = couriers.iloc[idx].reset_index(drop=True)
    seconds = np.sort(rng.integers(7 * 3600, 21 * 3600, size=rows))
    hour = seconds // 3600
    distance = np.round(rng.gamma(2.0, 2.2 if not covariate_drift else 4.0, size=rows) + 0.3, 2)
    parcels = rng.integers(1, 6, size=rows)
    weight = np.round(parcels * rng.gamma(2.0, 1.5, size=rows), 2)
    weather = rng.choice(WEATHER, size=rows, p=[0.5, 0.3, 0.2] if not covariate_drift else [0.2, 0.3, 0.5])
    speed = np.select([who["vehicle"] == "bike", who["vehicle"] == "car"], [14.0, 26.0], 22.0)  # km/h
    traffic = who["depot"].map(DEPOT_TRAFFIC).to_numpy() * np.where((hour >= 8) & (hour <= 9) | (hour >= 17) & (hour <= 18), 1.4, 1.0)
    rain = np.where(weather == "rain", 1.25 if not concept_drift else 1.9, 1.0)
    minutes = (distance / speed * 60 * traffic * rain + 3.0 * parcels + 0.4 * weight) * who["pace"].to_numpy()
    if concept_drift:
        minutes = minutes * 1.3 + 8.0  # a new sorting process at the depots adds handling time
    minutes = np.round(minutes + rng.normal(0, 2.5, size=rows).clip(-5, 10) + 2.0, 1).clip(1.0, 600.0)
    return pd.DataFrame({
        "delivery_id": [f"D{day:%Y%m%d}-{i:06d}" for i in range(rows)],
        "courier_id": who["courier_id"],
        "depot": who["depot"],
        "event_timestamp": pd.Timestamp(day) + pd.to_timedelta(seconds, unit="s"),
        "vehicle": who["vehicle"],
        "distance_km": distance,
        "parcels": parcels.astype(int),
        "weight_kg": weight,
        "weather": weather,
        "duration_minutes": minutes,
    })
