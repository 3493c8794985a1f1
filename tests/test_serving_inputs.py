"""Malformed requests get a 4xx naming the problem, never a 5xx, and never fail the valid
requests they are batched with: a catalogue of malformed kinds against a real server, the
poison-request isolation test, and property tests of request parsing."""

from __future__ import annotations

import json
import math
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from test_serving import Server

from esteira import load_project
from esteira.models import Column
from esteira.pipelines.runner import run_pipeline
from esteira.registry import Registry
from esteira.serving.inputs import logged_rows
from esteira.serving.requests import (
    TIME_RANGE,
    BadRequest,
    build_frame,
    convert,
    model_frame,
    parse,
    parse_time,
)

# A model trained through a feature service: requests carry a visit (site, when, size); the
# site's latest temperature comes from the online store, the hour is derived from `when`.
# LinearRegression takes no missing value. Its `derive` has a deliberate fault (size 13) so
# the tests can see how the service answers a failure of the model's own code.
VISITS = """
import pandas as pd
from sklearn.linear_model import LinearRegression

from esteira import pipeline, step
from esteira.features import feature_service, feature_view

temps = feature_view("temps", source="readings", entities=["site"], timestamp="at",
                     features=["temp"])


def visit_hour(rows):
    if (rows["size"] == 13).any():
        raise RuntimeError("a fault in derive")
    return rows.assign(hour=rows["when"].dt.hour)


visit = feature_service("visit", request={"site": "string", "when": "datetime",
                        "size": "double"}, views=[temps], at="when", derive=visit_hour)


@step
def materialize(ctx):
    return ctx.features.materialize("temps")


@step
def train(ctx, materialize):
    table = ctx.features.training_set(ctx.read_table("visits"), visit)
    inputs = table[["temp", "hour", "size"]]
    model = LinearRegression().fit(inputs, table["load"])
    return ctx.log_model(model, inputs.head(2), register_as="load", features=visit).version


flow = pipeline("flow", [materialize, train])
"""

VISIT = {"site": "a", "when": "2024-01-01T05:30:00Z", "size": 1.0}
INPUTS = {"temp": 10.0, "hour": 5, "size": 1.0}
MAX_ROWS = 10


@pytest.fixture(scope="module")
def visits_root(tmp_path_factory) -> Path:
    """A project whose visit model ('load') is champion, with readings in the lake."""
    root = tmp_path_factory.mktemp("serving_inputs") / "proj"
    root.mkdir()
    (root / "pipelines.py").write_text(VISITS)
    (root / "esteira.toml").write_text("")
    project = load_project(root)
    hours = pd.date_range("2024-01-01", periods=6, freq="h", tz="UTC")
    temps = {"a": [10.0, 11, 12, 13, 14, 15], "b": [20.0, 21, 22, 23, 24, 25]}
    readings = [(s, at, t) for s in temps for at, t in zip(hours, temps[s], strict=True)]
    project.lake.append("readings", pd.DataFrame(readings, columns=["site", "at", "temp"]))
    visits = pd.DataFrame(
        [(s, at + pd.Timedelta("30min"), size, 2 * temps[s][h] + 3 * at.hour + 5 * size)
         for h, at in enumerate(hours) for s in temps for size in (1.0, 2.0)],
        columns=["site", "when", "size", "load"],
    )  # fmt: skip
    project.lake.append("visits", visits)
    version = run_pipeline(project, "flow").output("train")
    Registry(project).promote("load", version, reason="serve it")
    return root


@pytest.fixture(scope="module")
def served(visits_root) -> Iterator[Server]:
    """One server of the visit model ('load', at most 10 rows a request) for the module."""
    server = Server(visits_root, "--model", "load", "--max-rows", str(MAX_ROWS))
    server.wait_up()
    server.wait_ready()
    yield server
    server.stop()


def records(*rows: Any) -> bytes:
    return json.dumps({"records": list(rows)}).encode()


def visit(**fields: Any) -> bytes:
    return records(VISIT | fields)


def deep(opening: bytes, closing: bytes, levels: int) -> bytes:
    return opening * levels + closing * levels


DIGITS_5000 = b"9" * 5000
TIME_FORMATS = "one of YYYY-MM-DD"
NOT_JSON = "body is not JSON"
NOT_VALID = "body is not valid JSON"
SURROGATE = "lone UTF-16 surrogate"
BEYOND = "beyond the range of a 64-bit float"
FIELDS = "not a request field of feature service 'visit'"
NO_MISSING = "missing: the model takes no missing value here"

# (kind, body, status, what the answer says). Each is a different way to get a request
# wrong: the body, the JSON, the envelope, a row, a value, a time.
CATALOGUE: list[tuple[str, bytes, int, str]] = [
    # The body and its encoding
    ("empty body", b"", 400, "empty body"),
    ("whitespace body", b" \n\t ", 400, "empty body"),
    ("not JSON", b"{not json", 400, NOT_JSON),
    ("truncated JSON", b'{"records": [{"site": "a"', 400, "unexpected end of data"),
    ("content after the document", records(VISIT) + b" x", 400, "unexpected content"),
    ("two documents", records(VISIT) * 2, 400, "unexpected content"),
    ("single quotes", b"{'records': []}", 400, NOT_JSON),
    ("trailing comma", b'{"records": [{"size": 1,}]}', 400, NOT_JSON),
    ("unquoted key", b"{records: []}", 400, NOT_JSON),
    ("comment", b'{"records": [] /* rows */}', 400, NOT_JSON),
    ("python True", b'{"records": [{"size": True}]}', 400, NOT_JSON),
    ("python None", b'{"records": [{"size": None}]}', 400, NOT_JSON),
    ("leading zero", b'{"records": [{"size": 01}]}', 400, "leading zero"),
    ("hex number", b'{"records": [{"size": 0x10}]}', 400, NOT_JSON),
    ("plus sign", b'{"records": [{"size": +1}]}', 400, NOT_JSON),
    ("bare fraction", b'{"records": [{"size": .5}]}', 400, NOT_JSON),
    ("trailing dot", b'{"records": [{"size": 1.}]}', 400, NOT_JSON),
    ("invalid escape", b'{"records": [{"site": "\\x41"}]}', 400, NOT_JSON),
    ("short unicode escape", b'{"records": [{"site": "\\u12"}]}', 400, NOT_JSON),
    ("raw control character", b'{"records": [{"site": "a\x01b"}]}', 400, "control character"),
    ("raw newline in a string", b'{"records": [{"site": "a\nb"}]}', 400, "control character"),
    ("invalid UTF-8 byte", b'{"records": [{"site": "\xff"}]}', 400, "not valid UTF-8"),
    ("truncated UTF-8", b'{"records": [{"site": "\xc3"}]}', 400, "not valid UTF-8"),
    ("overlong UTF-8", b'{"records": [{"site": "\xc0\xaf"}]}', 400, "not valid UTF-8"),
    ("encoded surrogate", b'{"records": [{"site": "\xed\xa0\x80"}]}', 400, "not valid UTF-8"),
    ("UTF-16 body", json.dumps({"records": [VISIT]}).encode("utf-16"), 400, "not valid UTF-8"),
    ("byte order mark", b"\xef\xbb\xbf" + records(VISIT), 400, "byte order mark"),
    # Limits of the parser
    ("arrays 10,000 deep", deep(b"[", b"]", 10_000), 400, "nested deeper than 1024"),
    (
        "objects 10,000 deep",
        deep(b'{"a":', b"}", 10_000).replace(b":}", b":1}"),
        400,
        "nested deeper than 1024",
    ),
    (
        "a value 2,000 deep",
        b'{"records": [{"size": ' + deep(b"[", b"]", 2000) + b"}]}",
        400,
        "nested deeper than 1024",
    ),
    (
        "5,000-digit integer in a field",
        b'{"records": [{"size": ' + DIGITS_5000 + b"}]}",
        400,
        BEYOND,
    ),
    ("5,000-digit integer elsewhere", b'{"records": [], "n": ' + DIGITS_5000 + b"}", 400, BEYOND),
    (
        "negative 5,000-digit integer",
        b'{"records": [{"size": -' + DIGITS_5000 + b"}]}",
        400,
        BEYOND,
    ),
    ("10**400 as a literal", visit().replace(b"1.0", str(10**400).encode()), 400, BEYOND),
    ("1e400", visit().replace(b"1.0", b"1e400"), 400, BEYOND),
    ("-1e400", visit().replace(b"1.0", b"-1e400"), 400, BEYOND),
    ("1e309", visit().replace(b"1.0", b"1e309"), 400, BEYOND),
    ("NaN literal", visit().replace(b"1.0", b"NaN"), 400, "NaN and Infinity are not JSON"),
    ("Infinity literal", visit().replace(b"1.0", b"Infinity"), 400, "not JSON numbers"),
    ("-Infinity literal", visit().replace(b"1.0", b"-Infinity"), 400, "not JSON numbers"),
    ("lone high surrogate in a value", visit(site="\ud800"), 400, SURROGATE),
    ("lone low surrogate in a value", visit(site="\udc00"), 400, SURROGATE),
    ("swapped surrogate pair", visit(site="\udc00\ud800"), 400, SURROGATE),
    ("lone surrogate in a field name", records({"\ud800": 1} | VISIT), 400, SURROGATE),
    ("lone surrogate in an envelope key", b'{"\\udfff": 1, "records": []}', 400, SURROGATE),
    # The envelope
    ("JSON string", b'"records"', 422, 'expected an object {"records"'),
    ("JSON number", b"42", 422, 'expected an object {"records"'),
    ("JSON null", b"null", 422, 'expected an object {"records"'),
    ("JSON true", b"true", 422, 'expected an object {"records"'),
    ("a list of rows", json.dumps([VISIT]).encode(), 422, 'expected an object {"records"'),
    ("no records", b"{}", 422, 'expected an object {"records"'),
    ("rows under another name", json.dumps({"rows": [VISIT]}).encode(), 422, '{"records"'),
    ("MLflow's dataframe_split", json.dumps({"dataframe_split": {}}).encode(), 422, "records"),
    ("TF serving's instances", json.dumps({"instances": [VISIT]}).encode(), 422, "records"),
    ("records null", b'{"records": null}', 422, "with a list of rows"),
    ("records a string", b'{"records": "a"}', 422, "with a list of rows"),
    ("records an object", json.dumps({"records": VISIT}).encode(), 422, "list of rows"),
    ("records a number", b'{"records": 3}', 422, "with a list of rows"),
    ("records empty", b'{"records": []}', 422, "records is empty"),
    ("dataframe_records empty", b'{"dataframe_records": []}', 422, "records is empty"),
    ("too many rows", records(*[VISIT] * (MAX_ROWS + 1)), 413, "exceed the limit of 10"),
    ("far too many rows", records(*[{}] * 10_000), 413, "10000 rows exceed the limit"),
    # Rows
    ("row a list", records([1.0, 2.0]), 422, "a row must be an object, got list"),
    ("row a number", records(1), 422, "a row must be an object, got int"),
    ("row a string", records("a"), 422, "a row must be an object, got str"),
    ("row null", records(None), 422, "a row must be an object, got NoneType"),
    ("row a boolean", records(True), 422, "a row must be an object, got bool"),
    ("second row a list", records(VISIT, [1]), 422, "a row must be an object"),
    ("empty row", records({}), 422, "missing (datetime)"),
    ("missing the time", records({"site": "a", "size": 1.0}), 422, "when missing (datetime)"),
    ("missing the site", records({"when": VISIT["when"], "size": 1.0}), 422, "site missing"),
    ("missing the size", records({"site": "a", "when": VISIT["when"]}), 422, "size missing"),
    ("unknown field", visit(colour="red"), 422, f"colour {FIELDS}"),
    ("field in another case", records({k.upper(): v for k, v in VISIT.items()}), 422, FIELDS),
    ("field 10,000 chars long", records(VISIT | {"f" * 10_000: 1}), 422, "(10002 chars)"),
    ("empty field name", records(VISIT | {"": 1}), 422, FIELDS),
    ("NUL in a field name", records(VISIT | {"a\u0000": 1}), 422, FIELDS),
    ("emoji field name", records(VISIT | {"\U0001f600": 1}), 422, FIELDS),
    ("half of the model's inputs", records({"temp": 1.0}), 422, "hour missing"),
    ("model inputs and a visit", records(INPUTS | VISIT), 422, "not an input of this model"),
    ("model inputs then a visit", records(INPUTS, VISIT), 422, "temp missing (double)"),
    # Values
    ("size a word", visit(size="large"), 422, "size expected a number, got 'large'"),
    ("size a numeric string", visit(size="1.5"), 422, "expected a number, got '1.5'"),
    ("size the string NaN", visit(size="NaN"), 422, "expected a number, got 'NaN'"),
    ("size the string Infinity", visit(size="Infinity"), 422, "expected a number"),
    ("size true", visit(size=True), 422, "expected a number, got True"),
    ("size a list", visit(size=[1]), 422, "expected a number, got [1]"),
    ("size an object", visit(size={"v": 1}), 422, "expected a number, got {'v': 1}"),
    ("size an empty string", visit(size=""), 422, "expected a number, got ''"),
    ("size a 100 KB string", visit(size="9" * 100_000), 422, "(100002 chars)"),
    ("site a number", visit(site=5), 422, "site expected a string, got 5"),
    ("site a boolean", visit(site=False), 422, "expected a string, got False"),
    ("site a list", visit(site=["a"]), 422, "expected a string, got ['a']"),
    ("temp a string", records(INPUTS | {"temp": "warm"}), 422, "temp expected a number"),
    ("hour a boolean", records(INPUTS | {"hour": False}), 422, "hour expected a number"),
    ("one bad row of three", records(VISIT, VISIT | {"size": "x"}, VISIT), 422, "size expected"),
    # Times: only formats pandas reads as Python does, and never null
    ("ISO week date", visit(when="2013-W13-7"), 422, TIME_FORMATS),
    ("ordinal date", visit(when="2013-001"), 422, TIME_FORMATS),
    ("compact date", visit(when="20240101"), 422, TIME_FORMATS),
    ("year and month", visit(when="2024-01"), 422, TIME_FORMATS),
    ("year only", visit(when="2024"), 422, TIME_FORMATS),
    ("hour without minutes", visit(when="2024-01-01T05"), 422, TIME_FORMATS),
    ("compact time", visit(when="2024-01-01T0530"), 422, TIME_FORMATS),
    ("comma fraction", visit(when="2024-01-01T05:30:00,5"), 422, TIME_FORMATS),
    ("ten fraction digits", visit(when="2024-01-01T05:30:00.1234567890"), 422, TIME_FORMATS),
    ("lower-case t and z", visit(when="2024-01-01t05:30:00z"), 422, TIME_FORMATS),
    ("24:00", visit(when="2024-01-01T24:00:00"), 422, TIME_FORMATS),
    ("leap second", visit(when="2024-01-01T23:59:60Z"), 422, TIME_FORMATS),
    ("February 30", visit(when="2024-02-30"), 422, TIME_FORMATS),
    ("month 13", visit(when="2024-13-01"), 422, TIME_FORMATS),
    ("offset with seconds", visit(when="2024-01-01T05:30:00+05:00:30"), 422, TIME_FORMATS),
    ("offset of hours only", visit(when="2024-01-01T05:30:00+05"), 422, TIME_FORMATS),
    ("offset of 24 hours", visit(when="2024-01-01T05:30:00+24:00"), 422, TIME_FORMATS),
    ("offset of 60 minutes", visit(when="2024-01-01T05:30:00+05:60"), 422, TIME_FORMATS),
    ("space before the offset", visit(when="2024-01-01T05:30 +01:00"), 422, TIME_FORMATS),
    ("leading space", visit(when=" 2024-01-01"), 422, TIME_FORMATS),
    ("year 1", visit(when="0001-01-01T00:00:00Z"), 422, f"years {TIME_RANGE[0]} to"),
    ("year 9999", visit(when="9999-12-31T23:59:59Z"), 422, f"to {TIME_RANGE[1]}"),
    ("full-width digits", visit(when="２０２４-01-01"), 422, TIME_FORMATS),
    ("unix seconds", visit(when=1704087000), 422, TIME_FORMATS),
    ("a boolean time", visit(when=True), 422, TIME_FORMATS),
    ("now", visit(when="now"), 422, TIME_FORMATS),
    ("empty time", visit(when=""), 422, TIME_FORMATS),
    ("RFC 2822 time", visit(when="Mon, 01 Jan 2024 05:30:00 GMT"), 422, TIME_FORMATS),
    ("US date", visit(when="01/02/2024"), 422, TIME_FORMATS),
    ("null time alone", visit(when=None), 422, "when null: feature service 'visit' looks up"),
    (
        "null time among valid rows",
        records(VISIT, VISIT | {"when": None}, VISIT),
        422,
        "when null",
    ),
    # Values the checks accept and the model cannot score
    ("unknown site", visit(site="nowhere"), 422, f"temp {NO_MISSING} (the feature store has"),
    ("null site", visit(site=None), 422, f"temp {NO_MISSING}"),
    ("a time before any reading", visit(when="2023-12-31T00:00:00Z"), 422, NO_MISSING),
    ("null model input", records(INPUTS | {"temp": None}), 422, f"temp {NO_MISSING}"),
    ("size at the top of float range", visit(size=1.7e308), 422, "not a finite number"),
    ("temp at the top of float range", records(INPUTS | {"temp": 1e308}), 422, "not a finite"),
]


def test_the_catalogue_has_over_100_distinct_kinds():
    kinds = [kind for kind, *_ in CATALOGUE]
    assert len(set(kinds)) == len(kinds) >= 100
    assert len({body for _, body, *_ in CATALOGUE}) == len(CATALOGUE)


@pytest.mark.parametrize(("kind", "body", "status", "message"), CATALOGUE,
                         ids=[kind for kind, *_ in CATALOGUE])  # fmt: skip
def test_each_malformed_kind_gets_a_4xx_naming_the_problem(served, kind, body, status, message):
    with httpx.Client(base_url=served.url) as client:
        response = client.post("/predict", content=body)
        assert response.status_code == status, response.text
        answer = response.json()
        said = [f"{p.get('field', '')} {p['error']}".strip() for p in answer["problems"]]
        assert any(message in s for s in said), said
        assert client.post("/predict", content=records(VISIT)).status_code == 200  # same conn


def test_a_fault_of_the_model_code_is_a_500_naming_the_request_and_closing(served):
    with httpx.Client(base_url=served.url) as client:
        failed = client.post("/predict", content=visit(size=13), headers={"x-request-id": "r13"})
        assert failed.status_code == 500 and failed.headers["connection"] == "close"
        assert failed.json() == {"error": "version 1 failed to predict: RuntimeError",
                                 "request_id": "r13"}  # fmt: skip
        assert client.post("/predict", content=records(VISIT)).status_code == 200


def test_answers_do_not_depend_on_the_rows_they_come_with(served):
    alone = httpx.post(f"{served.url}/predict", content=records(VISIT)).json()["predictions"]
    other = VISIT | {"site": "b", "when": "2024-01-01T07:10:00+02:00", "size": 2}
    together = httpx.post(f"{served.url}/predict", content=records(other, VISIT, other)).json()
    assert "predictions" in together, together
    assert together["predictions"][1] == pytest.approx(alone[0], rel=1e-12)
    # 2*15 (site a's temp at 05:00) + 3*5 + 5*1: the model learned load exactly.
    assert alone[0] == pytest.approx(2 * 15 + 3 * 5 + 5, rel=1e-9)


# One of each way a request can get past the parser, the row checks or the model.
POISON = [
    (visit().replace(b"1.0", str(10**400).encode()), 400),
    (visit(site="\ud800"), 400),
    (visit(when=None), 422),
    (visit(when="2013-W13-7"), 422),
    (visit(site="nowhere"), 422),  # the model fails on the batch, then on it alone
    (visit(size=1.7e308), 422),  # the model predicts infinity
    (visit(size=13), 500),  # the model's code fails
]


def test_poison_requests_never_fail_the_valid_requests_batched_with_them(served):
    """8 clients send valid visits while a ninth sends a poison request every 20 ms: every
    valid request gets 200 and the very prediction it gets alone; each poison its own
    answer."""
    expected = httpx.post(f"{served.url}/predict", content=records(VISIT)).json()["predictions"]
    valid: list[tuple[int, Any]] = []
    poisoned: list[tuple[int, int]] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=served.url, timeout=30) as c:
            while not stop.is_set():
                r = c.post("/predict", content=records(VISIT))
                valid.append((r.status_code, r.json().get("predictions")))

    def poisoner() -> None:
        with httpx.Client(base_url=served.url, timeout=30) as c:
            i = 0
            while not stop.is_set():
                body, status = POISON[i % len(POISON)]
                poisoned.append((c.post("/predict", content=body).status_code, status))
                i += 1
                time.sleep(0.02)

    threads = [threading.Thread(target=client) for _ in range(8)]
    threads.append(threading.Thread(target=poisoner))
    for t in threads:
        t.start()
    time.sleep(4.0)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert len(valid) > 100 and len(poisoned) >= 2 * len(POISON)
    assert [a for a in valid if a[0] != 200] == []
    assert all(p == pytest.approx(expected, rel=1e-12) for _, p in valid)
    assert [(got, want) for got, want in poisoned if got != want] == []


# Property tests of request parsing, in process: whatever the body, parsing and checking
# raise nothing but BadRequest, and every answer they give can be sent as JSON.

# Hypothesis caches Unicode tables and constants in ./.hypothesis: keep them in tmp.
set_hypothesis_home_dir(tempfile.mkdtemp(prefix="hypothesis-"))
COLUMNS = [
    Column("number", "double", required=True),
    Column("count", "long", required=False),
    Column("name", "string", required=False),
    Column("flag", "boolean", required=False),
    Column("at", "datetime", required=False),
]
ANY_CHARACTER = st.characters(exclude_categories=())  # lone surrogates included
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(ANY_CHARACTER, max_size=12)
    | st.sampled_from(["2024-01-01", "2024-01-01T05:30:00Z", "2013-W13-7", "1e400"])
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(ANY_CHARACTER, max_size=5), inner, max_size=3),
                      max_leaves=12)  # fmt: skip
FIELD_NAMES = st.sampled_from([c.name for c in COLUMNS]) | st.text(ANY_CHARACTER, max_size=6)
ROWS = st.lists(st.dictionaries(FIELD_NAMES, VALUES, max_size=6) | VALUES, max_size=4)
PROPERTY = settings(max_examples=400, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])  # fmt: skip


def _encoded(body: Any, ascii_only: bool) -> bytes:
    """As a client would send it, NaN, Infinity, huge integers and lone surrogates
    included: escaped (\\ud800) or as raw bytes."""
    text = json.dumps(body, ensure_ascii=ascii_only)
    return text.encode("utf-8", "surrogatepass")


def _check(raw: bytes) -> None:
    """Parse and check a body as the service does; only BadRequest may come out, with an
    answer Starlette can encode."""
    from starlette.responses import JSONResponse

    try:
        rows = parse(raw, max_rows=3)
        typed = convert(rows, COLUMNS, "unknown")
    except BadRequest as bad:
        assert 400 <= bad.status < 500
        JSONResponse(bad.body(), status_code=bad.status)  # renders, or raises
        return
    frame = build_frame([typed], COLUMNS)
    assert len(frame) == len(rows) and not frame["number"].abs().eq(math.inf).any()


@PROPERTY
@given(st.binary(max_size=200))
def test_any_bytes_are_rows_or_a_4xx(raw):
    _check(raw)


@PROPERTY
@given(ROWS, st.booleans())
def test_any_json_like_body_is_rows_or_a_4xx(rows, ascii_only):
    _check(_encoded({"records": rows}, ascii_only))


@PROPERTY
@given(VALUES, st.booleans())
def test_any_json_like_value_is_a_body_or_a_4xx(body, ascii_only):
    _check(_encoded(body, ascii_only))


@PROPERTY
@given(st.lists(st.fixed_dictionaries({"number": SCALARS, "at": SCALARS}), min_size=1,
                max_size=5))  # fmt: skip
def test_rows_convert_the_same_alone_and_together(rows):
    def typed(part: list[Any]) -> Any:
        try:
            return build_frame([convert(part, COLUMNS[:1] + COLUMNS[-1:], "unknown")],
                               COLUMNS[:1] + COLUMNS[-1:])  # fmt: skip
        except BadRequest:
            return None

    together, alone = typed(rows), [typed([row]) for row in rows]
    if together is None:  # refused together: some row is refused alone
        assert any(a is None for a in alone)
        return
    expected = pd.concat(alone, ignore_index=True)
    pd.testing.assert_frame_equal(together, expected)


def test_what_a_service_served_becomes_the_model_frame_typed_as_requests_are():
    """Numbers of another width go to the model as they are (it reads the same values); a
    column of another kind or pandas' nullable integers are converted; a frame (with
    repeated labels among the columns the model does not take) or arrays by name alike."""
    columns = [Column("n", "double", True), Column("s", "string", True)]
    frame = pd.DataFrame({"extra": [1.0], "s": ["a"], "n": pd.array([3], dtype="int32")})
    chosen = model_frame(frame, columns)
    assert list(chosen.columns) == ["n", "s"] and chosen["n"].dtype == "int32"
    nullable = frame.assign(n=pd.array([None], dtype="Int64"))
    assert model_frame(nullable, columns)["n"].dtype == "float64"
    as_objects = frame.assign(s=pd.Series(["a"], dtype=object))
    assert model_frame(as_objects, columns)["s"].tolist() == ["a"]
    repeated = pd.concat([frame, frame[["extra"]]], axis=1)
    assert list(model_frame(repeated, columns).columns) == ["n", "s"]
    arrays = {"s": np.array(["a"], dtype=object), "n": [None], "extra": np.array([1.0])}
    pd.testing.assert_frame_equal(model_frame(arrays, columns), model_frame(nullable, columns))


def test_completed_rows_are_logged_as_pandas_wrote_them():
    """A looked-up request's rows in the prediction log: what `DataFrame.to_json` wrote
    for them before the service completed requests as columns (times in UTC to the
    microsecond, missing values null)."""
    at = pd.DatetimeIndex(["2013-03-10 06:59:59.999999999", None, "1969-12-31 23:00"], tz="UTC")
    served = {"at": at, "s": np.array(["a", None, "c"], dtype=object),
              "x": np.array([1.5, math.nan, -2.0]), "i": np.array([1, 2, 3]),
              "f": pd.Series([0.25, None, 3.0], dtype="Float64"),
              "t": ["x", None, "z"]}  # fmt: skip
    as_pandas = pd.DataFrame(served).to_json(orient="records", date_format="iso", date_unit="us")
    assert json.loads(orjson.dumps(logged_rows(served))) == json.loads(as_pandas)


TIMES = st.builds(
    "{}-{:02d}-{:02d}{}".format,
    st.integers(TIME_RANGE[0], TIME_RANGE[1]).map("{:04d}".format),
    st.integers(1, 12),
    st.integers(1, 28),
    st.one_of(
        st.just(""),
        st.builds(
            "{}{:02d}:{:02d}{}{}".format,
            st.sampled_from("T "),
            st.integers(0, 23),
            st.integers(0, 59),
            st.one_of(
                st.just(""),
                st.builds(
                    ":{:02d}{}".format,
                    st.integers(0, 59),
                    st.one_of(st.just(""), st.from_regex(r"\.[0-9]{1,9}", fullmatch=True)),
                ),
            ),
            st.sampled_from(["", "Z", "+00:00", "-05:00", "+05:30", "+0530", "-1200", "+14:00"]),
        ),
    ),
)


@PROPERTY
@given(TIMES)
def test_accepted_times_are_the_instants_pandas_reads(text):
    theirs = pd.to_datetime(pd.Series([text]), utc=True, format="ISO8601")
    assert parse_time(text) == theirs.astype("datetime64[ns, UTC]").iloc[0].value


@PROPERTY
@given(st.text(st.sampled_from("0123456789-:.TWZ+ "), max_size=30) | TIMES.map(lambda t: t[:-1]))
def test_a_time_is_refused_or_read_as_pandas_reads_it(text):
    try:
        mine = parse_time(text)
    except ValueError as e:
        assert "one of YYYY-MM-DD" in str(e)
        return
    theirs = pd.to_datetime(pd.Series([text]), utc=True, format="ISO8601")
    assert mine == theirs.astype("datetime64[ns, UTC]").iloc[0].value
