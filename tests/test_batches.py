"""Batch periods: each kind parses, orders, steps and ranges; bad labels name the forms."""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
import pytest

from esteira.batches import PERIODS, BatchLabelError, batches_before, period_of


@pytest.mark.parametrize(
    ("first", "last", "kind", "labels", "starts", "ends"),
    [
        ("2013-02-28T22", "2013-03-01T00", "hour",
         ["2013-02-28T22", "2013-02-28T23", "2013-03-01T00"],
         datetime(2013, 2, 28, 22), datetime(2013, 3, 1, 1)),
        ("2012-02-28", "2012-03-01", "day", ["2012-02-28", "2012-02-29", "2012-03-01"],
         datetime(2012, 2, 28), datetime(2012, 3, 2)),
        ("2015-W52", "2016-W01", "week", ["2015-W52", "2015-W53", "2016-W01"],
         datetime(2015, 12, 21), datetime(2016, 1, 11)),
        ("2013-11", "2014-01", "month", ["2013-11", "2013-12", "2014-01"],
         datetime(2013, 11, 1), datetime(2014, 2, 1)),
        ("8", "10", "integer", ["8", "9", "10"], datetime(1970, 1, 9), datetime(1970, 1, 12)),
    ],
)  # fmt: skip
def test_each_period_ranges_steps_and_times_its_batches(first, last, kind, labels, starts, ends):
    period = period_of([first, last])
    assert period.kind == kind
    assert period.range(first, last) == labels
    assert period.next(labels[0]) == labels[1] and period.previous(labels[1]) == labels[0]
    assert period.start(first) == starts  # a replay scores the batch from here
    assert period.end(last) == ends  # ... and decides here, when the next one starts
    assert period.sorted(reversed(labels)) == labels and period.newest(labels) == labels[-1]


def test_integers_order_as_numbers_not_as_text():
    period = period_of(["9", "10"])
    assert period.is_after("10", "9") and not period.is_after("9", "10")
    assert period.newest([2, 10, 9]) == "10"  # an integer column's values
    assert batches_before(["1", "10", "2", "9", "11"], "10") == ["1", "2", "9"]
    assert batches_before([3, 1, 2, 4], 3) == [1, 2]  # kept as given, for the lake's filters


def test_weeks_cross_a_year_boundary_by_the_iso_calendar():
    week = PERIODS["week"]
    assert week.next("2013-W52") == "2014-W01"  # 2013 has 52 ISO weeks
    assert week.next("2015-W53") == "2016-W01"  # 2015 has 53
    assert week.previous("2021-W01") == "2020-W53"
    assert week.start("2020-W01") == datetime(2019, 12, 30)  # a Monday of the year before


def test_dates_and_times_read_from_a_table_are_labels():
    assert period_of([date(2013, 4, 5)]).kind == "day"
    assert PERIODS["day"].newest(pd.to_datetime(["2013-04-05", "2013-04-06"])) == "2013-04-06"
    assert PERIODS["hour"].newest([pd.Timestamp("2013-04-05 13:00")]) == "2013-04-05T13"


def test_free_text_labels_keep_their_order_before_a_batch():
    assert batches_before(["b", "a", "c"], "c") == ["a", "b"]


@pytest.mark.parametrize(
    ("labels", "kind", "message"),
    [
        (
            ["2013/04"],
            None,
            "'2013/04' is not a batch label: batches are hours .* integers \\(7\\)",
        ),
        (["2013-13"], None, "'2013-13' is not a valid month: month 13 is not between 01 and 12"),
        (["2013-W54"], None, "'2013-W54' is not a valid week"),
        (["2013-02-30"], None, "'2013-02-30' is not a valid day"),
        (["2013-04", "7"], None, "mix integer, month: give them in one form"),
        (["2013-04-05"], "month", "'2013-04-05' is not a month \\(like 2013-04\\)"),
        (["7"], "quarter", "batch period 'quarter': choose one of hour, day, week, month, integer"),
    ],
)
def test_bad_labels_name_the_forms_accepted(labels, kind, message):
    with pytest.raises(BatchLabelError, match=message):
        period = period_of(labels, kind)
        period.range(labels[0], labels[-1])


def test_a_range_backwards_is_refused():
    with pytest.raises(BatchLabelError, match="batch 2013-03 comes before 2013-05"):
        PERIODS["month"].range("2013-05", "2013-03")
