"""Conditions that change with time: daylight, weather, travel demand, and the road surface they leave.

Lighting comes from the sun's elevation at the network's location, so a December afternoon in
Helsinki is dark and a June night is dusk. Weather is a slow Markov process whose states depend on the
season. Demand follows a weekday rush-hour profile.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from sim.vocab import WEATHER

LOCAL_TIME = ZoneInfo("Europe/Helsinki")
WEATHER_STEP_S = 600.0  # the weather may change every 10 simulated minutes
# How much each weather slows traffic (fraction of the dry, clear speed).
WEATHER_SPEED_FACTOR = {"clear": 1.0, "rain": 0.85, "fog": 0.8, "snow": 0.7}


def sun_elevation_deg(lat: float, lon: float, when: datetime) -> float:
    """Solar elevation above the horizon (degrees), from the standard declination and hour-angle formulas."""
    utc = when.astimezone(ZoneInfo("UTC"))
    day = utc.timetuple().tm_yday
    hours = utc.hour + utc.minute / 60 + utc.second / 3600
    declination = math.radians(-23.44) * math.cos(math.radians(360 / 365 * (day + 10)))
    hour_angle = math.radians(15 * (hours - 12) + lon)
    la = math.radians(lat)
    sin_el = math.sin(la) * math.sin(declination) + math.cos(la) * math.cos(declination) * math.cos(hour_angle)
    return math.degrees(math.asin(max(-1.0, min(1.0, sin_el))))


def lighting_at(lat: float, lon: float, when: datetime) -> str:
    """day above 6 degrees of sun elevation, night below -6 (civil twilight), dusk between."""
    elevation = sun_elevation_deg(lat, lon, when)
    return "day" if elevation > 6 else "night" if elevation < -6 else "dusk"


def _weather_weights(month: int) -> np.ndarray:
    winter = month in (11, 12, 1, 2, 3)
    # clear, rain, fog, snow
    return np.array([0.45, 0.15, 0.12, 0.28] if winter else [0.6, 0.28, 0.12, 0.0])


def sample_weather(rng: np.random.Generator, when: datetime) -> str:
    """A weather state for the season (snow only from November to March)."""
    weights = _weather_weights(when.month)
    return str(WEATHER[int(rng.choice(len(WEATHER), p=weights / weights.sum()))])


class WeatherProcess:
    """City-wide weather that holds for at least ``WEATHER_STEP_S`` and then changes with probability 0.3."""

    def __init__(self, rng: np.random.Generator, start: datetime, initial: str | None = None):
        self._rng = rng
        self._states = [initial or sample_weather(rng, start)]
        self._start = start

    def at(self, when: datetime) -> str:
        """The weather at ``when`` (not before the process start)."""
        step = max(0, int((when - self._start).total_seconds() // WEATHER_STEP_S))
        while len(self._states) <= step:
            boundary = self._start + timedelta(seconds=WEATHER_STEP_S * len(self._states))
            keep = self._rng.random() >= 0.3
            self._states.append(self._states[-1] if keep else sample_weather(self._rng, boundary))
        return self._states[step]


def demand(when: datetime) -> float:
    """Travel demand 0..1: morning and afternoon peaks on weekdays, a flatter midday at weekends."""
    local = when.astimezone(LOCAL_TIME)
    h = local.hour + local.minute / 60
    night = 0.05 if h < 6 or h >= 22 else 0.2
    if local.weekday() >= 5:
        return min(1.0, night + 0.35 * math.exp(-(((h - 14) / 3.5) ** 2)))
    peaks = math.exp(-(((h - 8) / 1.1) ** 2)) + 0.9 * math.exp(-(((h - 16.5) / 1.5) ** 2))
    return min(1.0, night + 0.8 * peaks)


def surface_for(weather: str, damaged: bool) -> str:
    """The surface label: precipitation covers everything; otherwise damaged roads show their damage."""
    if weather == "snow":
        return "snow"
    if weather == "rain":
        return "wet"
    return "damaged" if damaged else "dry"
