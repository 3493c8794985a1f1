"""Feature views: point-in-time training sets, TTL, online store, and their agreement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from esteira import load_project
from esteira.features import FeatureError, FeatureStore, feature_service, feature_view
from esteira.lake import Lake
from esteira.pipelines.runner import run_pipeline

T = pd.Timestamp("2013-06-01 12:00:00", tz="UTC")

weather = feature_view(
    "weather",
    source="raw_weather",
    entities=["origin"],
    timestamp="time_hour",
    features=["temp"],
    ttl=timedelta(hours=3),
)
plane = feature_view(
    "plane",
    source="raw_planes",
    entities=["tailnum"],
    features=["seats"],
    transform=lambda df: df.rename(columns={"n_seats": "seats"}),
)


@pytest.fixture
def store(tmp_path) -> FeatureStore:
    lake = Lake(tmp_path / "lake")
    lake.append(
        "raw_weather",
        pd.DataFrame(
            {
                "origin": ["EWR", "EWR", "JFK", "LGA"],
                "time_hour": [
                    T - pd.Timedelta("1h"),
                    T + pd.Timedelta("1s"),
                    T,
                    T - pd.Timedelta("5h"),
                ],
                "temp": [70.0, 99.0, 60.0, 50.0],
            }
        ),
    )
    lake.append("raw_planes", pd.DataFrame({"tailnum": ["N1", "N2"], "n_seats": [150, 200]}))
    s = FeatureStore({"weather": weather, "plane": plane}, lake, tmp_path / "online.db")
    s.materialize("weather")
    s.materialize("plane")
    return s


def events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "origin": ["EWR", "JFK", "LGA", "SFO"],
            "tailnum": ["N1", "N2", "N9", "N1"],
            "scheduled_at": [T] * 4,
            "delayed": [1, 0, 0, 1],
        }
    )


def test_point_in_time_join_never_uses_a_later_value(store):
    got = store.training_set(events(), ["weather", "plane"], at="scheduled_at")
    assert list(got.columns) == ["origin", "tailnum", "scheduled_at", "delayed", "temp", "seats"]
    # EWR: the row stamped one second after the event (99) is not used; the one before is.
    assert got.temp.tolist()[:2] == [70.0, 60.0]
    assert pd.isna(got.temp[2])  # LGA: the last value is 5 h old, over the 3 h TTL
    assert pd.isna(got.temp[3])  # SFO: never observed
    assert got.seats.tolist()[:2] == [150, 200] and pd.isna(got.seats[2])


def test_online_store_serves_the_latest_values_and_agrees_with_offline(store):
    store.materialize("weather")  # materializing again replaces, never duplicates
    now = datetime(2013, 6, 1, 13, 0, tzinfo=UTC)
    keys = pd.DataFrame({"origin": ["JFK", "EWR", "SFO"]})
    online = store.online("weather", keys, at=now)
    assert online.origin.tolist() == ["JFK", "EWR", "SFO"]
    assert online.temp.tolist()[:2] == [60.0, 99.0] and pd.isna(online.temp[2])
    # The same entity and time offline: an event at `now` sees the same values.
    offline = store.training_set(keys.assign(at=pd.Timestamp(now)), ["weather"], at="at")
    pd.testing.assert_series_equal(offline.temp, online.temp, check_names=False)
    later = store.online("weather", keys, at=now + timedelta(hours=4))
    assert later.temp.isna().all()  # past the TTL online too


def test_definition_errors_are_clear(store, tmp_path):
    broken = feature_view("broken", source="raw_planes", entities=["tailnum"], features=["wings"])
    store.views["broken"] = broken
    with pytest.raises(FeatureError, match=r"source 'raw_planes' .* has no column 'wings'"):
        store.materialize("broken")
    with pytest.raises(FeatureError, match="needs at= "):
        store.training_set(events(), ["weather"])
    with pytest.raises(FeatureError, match="already have columns \\['temp'\\]"):
        store.training_set(events().assign(temp=1.0), ["weather"], at="scheduled_at")
    with pytest.raises(FeatureError, match="is not in the online store"):
        store.online("broken", pd.DataFrame({"tailnum": ["N1"]}))
    with pytest.raises(FeatureError, match="lower-case"):
        feature_view("Bad Name", source="x", entities=["k"], features=["f"])


def plane_load(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.assign(heat_per_seat=rows["temp"] / rows["seats"])


departure = feature_service(
    "departure",
    request={"scheduled_at": "datetime", "origin": "string", "tailnum": "string"},
    views=[weather, plane],
    at="scheduled_at",
    derive=plane_load,
)


def test_a_service_gives_training_and_serving_the_same_features(store):
    """Offline at the event's time and online at the request's time, the same values, and
    `derive` applied to both; online, a value observed after the request's time or older
    than the TTL at it is missing, as it would be offline."""
    requests = pd.DataFrame(
        {
            "scheduled_at": [T + pd.Timedelta("1h"), T + pd.Timedelta("1h"), T],
            "origin": ["EWR", "JFK", "EWR"],
            "tailnum": ["N1", "N2", "N9"],
        }
    )
    served, missed = store.serving_set(departure, requests)
    trained = store.training_set(requests, departure)
    pd.testing.assert_frame_equal(served.iloc[:2], trained.iloc[:2], check_dtype=False)
    assert served.temp.tolist()[:2] == [99.0, 60.0]
    assert served.heat_per_seat.tolist()[:2] == [99.0 / 150, 60.0 / 200]
    # Row 3: at T the online store's EWR value (T + 1s) is from the future; N9 is unknown.
    assert pd.isna(served.temp[2]) and pd.isna(served.seats[2]) and pd.isna(trained.seats[2])
    assert trained.temp[2] == 70.0  # offline keeps history: the value of T - 1h
    assert missed == {"weather": [False, False, True], "plane": [False, False, True]}
    late, _ = store.serving_set(departure, requests.assign(scheduled_at=T + pd.Timedelta("4h")))
    assert late.temp.isna().all()  # past the TTL
    with pytest.raises(FeatureError, match=r"needs columns \['tailnum'\]"):
        store.serving_set(departure, requests.drop(columns="tailnum"))


def test_served_features_have_the_dtypes_of_training_even_when_all_are_missing(store):
    """The online store's columns come back typed as they were written (REAL as float64,
    INTEGER as int64), not as pandas would guess from a request's few values: a request
    whose every lookup misses still gets float64 columns, as training has them."""
    known = pd.DataFrame({"scheduled_at": [T], "origin": ["JFK"], "tailnum": ["N2"]})
    unknown = known.assign(origin=["SFO"], tailnum=["N9"])
    trained = store.training_set(known, departure).dtypes
    for requests in (known, unknown):
        served = store.serving_set(departure, requests)[0].dtypes
        assert served["temp"] == trained["temp"] == "float64"
        assert served["heat_per_seat"] == "float64"
    assert store.serving_set(departure, known)[0]["seats"].dtype == trained["seats"] == "int64"
    assert store.serving_set(departure, unknown)[0]["seats"].dtype == "float64"  # NaN


def columnar_load(rows):
    """The columnar twin of `plane_load` and more: what it reads is NumPy's."""
    import numpy as np

    at, tailnum = rows["scheduled_at"], rows["tailnum"]
    assert at.dtype == "datetime64[ns]" and tailnum.dtype == object
    return {
        "heat_per_seat": rows["temp"] / rows["seats"],
        "minute": at.view("int64") // 60_000_000_000 % 60,
        "known_plane": np.array([t is not None for t in tailnum]),
    }


def frame_load(rows: pd.DataFrame) -> pd.DataFrame:
    at = rows["scheduled_at"].dt.tz_convert("UTC")
    return rows.assign(heat_per_seat=rows["temp"] / rows["seats"], minute=at.dt.minute,
                       known_plane=rows["tailnum"].notna().to_numpy())  # fmt: skip


def test_a_columnar_derive_gives_training_and_serving_the_features_a_frame_derive_gives(store):
    """A columnar derive reads the rows as NumPy arrays (times in UTC as datetime64[ns],
    strings as objects with None for a missing one) in training and serving alike, and
    its columns are those the same computation on a DataFrame adds."""
    columnar = feature_service("columnar", request=dict(departure.request),
                               views=[weather, plane], at="scheduled_at",
                               derive=columnar_load, columnar=True)  # fmt: skip
    framed = feature_service("framed", request=dict(departure.request), views=[weather, plane],
                             at="scheduled_at", derive=frame_load)  # fmt: skip
    requests = pd.DataFrame(
        {
            # A zone other than UTC and microseconds, as a lake may give them.
            "scheduled_at": pd.DatetimeIndex([T + pd.Timedelta("61min"), T, T])
            .as_unit("us")
            .tz_convert("America/New_York"),
            "origin": ["EWR", "JFK", "SFO"],
            "tailnum": ["N1", None, "N9"],
        }
    )
    for service in (columnar, framed):
        trained = store.training_set(requests, service)
        served, _ = store.serving_set(service, requests)
        assert trained.minute.tolist() == served.minute.tolist() == [1, 0, 0]
        assert trained.known_plane.tolist() == served.known_plane.tolist() == [True, False, True]
        assert trained.heat_per_seat.tolist()[:1] == served.heat_per_seat.tolist()[:1]
    as_arrays = store.training_set(requests, columnar)
    as_frame = store.training_set(requests, framed)  # seats and its quotient nullable (NA)
    added = ["heat_per_seat", "minute", "known_plane"]
    as_frame = as_frame.astype({c: as_arrays[c].dtype for c in added})
    pd.testing.assert_frame_equal(as_arrays, as_frame)
    not_columns = feature_service("bad", request={"tailnum": "string"}, views=[plane],
                                  derive=lambda rows: [1], columnar=True)  # fmt: skip
    with pytest.raises(FeatureError, match="must return the columns it adds by name"):
        not_columns.derived_columns({"tailnum": ["N1"]})


def test_typed_keeps_what_its_type_does_not_describe():
    from esteira.features.online import typed

    assert typed([1, 2], "INTEGER").dtype == "int64"
    assert typed([1, None], "INTEGER").dtype == "float64"
    assert typed([1.5, None], "INTEGER").tolist()[0] == 1.5  # never truncated to an int
    assert typed([None], "REAL").dtype == "float64"
    assert typed(["abc", 1.0], "REAL") == ["abc", 1.0]  # text left by SQLite's affinity
    assert typed(["a", None], "TEXT") == ["a", None]
    assert typed(["2013-01-01"], "TIMESTAMP") == ["2013-01-01"]


@pytest.mark.parametrize(
    ("request_fields", "views", "at", "message"),
    [
        ({"at": "datetime", "origin": "text"}, [], "at", "kinds {'origin': 'text'}"),
        ({"at": "string", "origin": "string"}, [weather], "at", "must be a request field of kind"),
        ({"at": "datetime"}, [weather], "at", r"keyed by \['origin'\]; add them"),
        ({"origin": "string"}, [weather], None, "changes over time; name the request's time"),
        ({"tailnum": "string", "seats": "double"}, [plane], None, r"\['seats'\] are also"),
    ],
)
def test_service_definition_errors_name_the_fix(request_fields, views, at, message):
    with pytest.raises(FeatureError, match=message):
        feature_service("s", request=request_fields, views=views, at=at)


VIEWS = """
from datetime import timedelta

import pandas as pd

from esteira import pipeline, step
from esteira.features import feature_service, feature_view

temps = feature_view("temps", source="readings", entities=["site"], timestamp="at",
                     features=["temp"], ttl=timedelta(hours=1), description="hourly readings")
visit = feature_service("visit", request={"site": "string", "when": "datetime"}, views=[temps],
                        at="when")


@step
def materialize(ctx):
    return ctx.features.materialize("temps")


@step
def training(ctx, materialize):
    events = pd.DataFrame({"site": ["a"], "when": [pd.Timestamp("2024-01-01 10:30", tz="UTC")]})
    return ctx.features.training_set(events, ["temps"], at="when")


flow = pipeline("flow", [materialize, training])
"""


def test_views_are_found_in_project_modules_and_reads_are_lineage(write_project):
    project = load_project(write_project(VIEWS))
    assert list(project.feature_views) == ["temps"]
    assert list(project.feature_services) == ["visit"]
    project.lake.append(
        "readings",
        pd.DataFrame(
            {"site": ["a"], "at": [pd.Timestamp("2024-01-01 10:00", tz="UTC")], "temp": [3.5]}
        ),
    )
    result = run_pipeline(project, "flow")
    assert result.output("training").temp.tolist() == [3.5]
    record = project.metadata.run(result.run_id)
    tables = {(s.step, t.mode, t.table) for s in record.steps for t in s.tables}
    assert ("materialize", "read", "readings") in tables
    assert ("materialize", "write", "features_temps") in tables
    assert ("training", "read", "features_temps") in tables


def test_features_cli_lists_and_shows_views(write_project):
    from test_cli import esteira

    root = write_project(VIEWS)
    project = load_project(root)
    project.lake.append(
        "readings",
        pd.DataFrame(
            {"site": ["a"], "at": [pd.Timestamp("2024-01-01 10:00", tz="UTC")], "temp": [3.5]}
        ),
    )
    listed = esteira("features", "list", "-p", str(root))
    assert (
        listed.returncode == 0 and "temps" in listed.stdout and "not materialized" in listed.stdout
    )
    assert "feature services" in listed.stdout and "site (string), when (datetime)" in listed.stdout
    run_pipeline(project, "flow")
    shown = esteira("features", "show", "temps", "-p", str(root))
    assert shown.returncode == 0, shown.stderr
    assert "hourly readings" in shown.stdout and "v0, 1 rows" in shown.stdout
    service = esteira("features", "show", "visit", "-p", str(root))
    assert service.returncode == 0 and "looks up      temps: temp" in service.stdout
    missing = esteira("features", "show", "nope", "-p", str(root))
    assert missing.returncode == 1 and "no feature view 'nope' (views: temps)" in missing.stderr


# A city-wide feed: one row per time, no entity key.
city = feature_view(
    "city",
    source="raw_city",
    entities=[],
    timestamp="time_hour",
    features=["wind"],
    ttl=timedelta(hours=2),
)


@pytest.fixture
def city_store(store) -> FeatureStore:
    store.lake.append(
        "raw_city",
        pd.DataFrame(
            {
                "time_hour": [
                    T - pd.Timedelta("3h"),
                    T - pd.Timedelta("1h"),
                    T + pd.Timedelta("1s"),
                ],
                "wind": [5.0, 10.0, 99.0],
            }
        ),
    )
    store.views["city"] = city
    store.materialize("city")
    return store


def test_a_global_view_joins_on_time_alone_never_later_and_within_its_ttl(city_store):
    at = [T, T - pd.Timedelta("2h"), T - pd.Timedelta("4h"), T + pd.Timedelta("3h")]
    got = city_store.training_set(
        events().assign(scheduled_at=at), ["weather", "city"], at="scheduled_at"
    )
    # T: the value of T - 1h, not the one a second later; T - 2h: the value an hour before;
    # T - 4h: nothing observed yet; T + 3h: the newest (T + 1s) is older than the 2 h TTL.
    assert got.wind.tolist()[:2] == [10.0, 5.0] and got.wind[2:].isna().all()
    assert got.temp.tolist()[:1] == [70.0]  # the keyed view beside it still joins by origin


def test_a_global_view_is_served_by_time_with_no_key(city_store):
    assert city_store.online("city", at=T + pd.Timedelta("1h")).wind.tolist() == [99.0]
    times = pd.Series([T, T + pd.Timedelta("1h"), T + pd.Timedelta("3h")])
    online = city_store.online("city", at=times)
    # T: the latest row is from the future; T + 3h: past the TTL. Offline agrees at T + 1h.
    assert pd.isna(online.wind[0]) and online.wind[1] == 99.0 and pd.isna(online.wind[2])
    offline = city_store.training_set(pd.DataFrame({"at": times[1:2]}), ["city"], at="at")
    assert offline.wind.tolist() == [99.0]
    with pytest.raises(FeatureError, match=r"keyed by \['origin'\]: pass keys"):
        city_store.online("weather", at=T)


def test_a_service_mixes_a_global_and_a_keyed_view_and_needs_no_key_for_the_global(city_store):
    trip = feature_service(
        "trip", request={"when": "datetime", "origin": "string"}, views=[weather, city], at="when"
    )
    requests = pd.DataFrame({"when": [T + pd.Timedelta("1h")] * 2, "origin": ["JFK", "SFO"]})
    served, missed = city_store.serving_set(trip, requests)
    trained = city_store.training_set(requests, trip)
    pd.testing.assert_frame_equal(served, trained, check_dtype=False)
    assert served.wind.tolist() == [99.0, 99.0] and served.temp[0] == 60.0
    assert missed == {"weather": [False, True], "city": [False, False]}
    only_time = feature_service("gusts", request={"when": "datetime"}, views=[city], at="when")
    assert city_store.serving_set(only_time, requests[["when"]])[0].wind.tolist() == [99.0] * 2
    with pytest.raises(FeatureError, match=r"global features.* needs timestamp="):
        feature_view("static", source="raw_city", entities=[], features=["wind"])


GLOBAL = """
import pandas as pd
from sklearn.linear_model import LinearRegression

from esteira import pipeline, step
from esteira.features import feature_service, feature_view

temps = feature_view("temps", source="readings", entities=["site"], timestamp="at",
                     features=["temp"])
city = feature_view("city", source="city_feed", entities=[], timestamp="at", features=["wind"])
visit = feature_service("visit", request={"site": "string", "when": "datetime"},
                        views=[temps, city], at="when")


@step
def materialize(ctx):
    return [ctx.features.materialize(view) for view in visit.views]


@step
def train(ctx, materialize):
    table = ctx.features.training_set(ctx.read_table("visits"), visit)
    inputs = table[["temp", "wind"]]
    model = LinearRegression().fit(inputs, table["load"])
    return ctx.log_model(model, inputs.head(2), register_as="load", features=visit).version


flow = pipeline("flow", [materialize, train])
"""


def test_a_model_on_a_global_view_is_served_and_batch_predicted(write_project):
    """Served requests carry a site and a time, never a key for the city-wide feed; batch
    prediction joins it point in time."""
    from esteira.models import load
    from esteira.serving.batch import predict_table
    from esteira.serving.inputs import check_rows, complete

    project = load_project(write_project(GLOBAL))
    hours = pd.date_range("2024-01-01", periods=6, freq="h", tz="UTC")
    wind = [1.0, 4, 2, 8, 3, 5]
    temp = {"a": [10.0, 11, 12, 13, 14, 15], "b": [20.0, 21, 22, 23, 24, 25]}
    project.lake.append("city_feed", pd.DataFrame({"at": hours, "wind": wind}))
    readings = [(site, at, t) for site in temp for at, t in zip(hours, temp[site], strict=True)]
    project.lake.append("readings", pd.DataFrame(readings, columns=["site", "at", "temp"]))
    # Half an hour after each reading, a visit at each site: its load follows both feeds.
    visits = pd.DataFrame(
        [(site, at + pd.Timedelta("30min"), 2 * temp[site][h] + 3 * wind[h])
         for h, at in enumerate(hours) for site in temp],
        columns=["site", "when", "load"],
    )  # fmt: skip
    project.lake.append("visits", visits)
    version = run_pipeline(project, "flow").output("train")

    model = load(project, "load", version)
    rows = [
        {"site": "b", "when": "2024-01-01T05:30:00Z"},
        {"site": "a", "when": "2024-01-01T05:10:00Z"},
    ]
    checked = check_rows(model, rows)
    assert checked.lookup
    frame, (share,) = complete(model, [checked], project.features)
    assert frame[["temp", "wind"]].values.tolist() == [[25.0, 5.0], [15.0, 5.0]]
    assert model.predict(frame) == pytest.approx([2 * 25 + 3 * 5, 2 * 15 + 3 * 5])
    assert share.misses == {"temps": 0, "city": 0}

    project.lake.append("to_score", visits[["site", "when"]].head(4))
    predict_table(project, "load", "to_score", "scored", version=version)
    scored, _ = project.lake.read("scored")
    # Each visit with the wind of its own hour, not the latest.
    assert scored.prediction.tolist() == pytest.approx(visits.load[:4].tolist())


def test_lookups_never_miss_the_view_while_the_online_store_is_refreshed(store):
    import threading

    keys = pd.DataFrame({"origin": ["EWR", "JFK"]})
    failures: list[str] = []
    done = threading.Event()

    def look_up() -> None:
        while not done.is_set():
            try:
                store.online("weather", keys, at=T + timedelta(hours=1))
            except Exception as e:
                failures.append(f"{type(e).__name__}: {e}")

    readers = [threading.Thread(target=look_up) for _ in range(3)]
    for r in readers:
        r.start()
    for _ in range(150):
        store.materialize("weather")  # each swaps the view's table whole
    done.set()
    for r in readers:
        r.join()
    assert not failures, f"{len(failures)} lookups failed, e.g. {failures[0]}"
