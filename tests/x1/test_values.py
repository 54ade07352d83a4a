"""X1 simple values at their edges (found by fuzzing: years before 1000, calendar overflow)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flowtap.x1 import values
from flowtap.x1.codes import X1Error


@pytest.mark.parametrize(("text", "expected"), [
    ("2017-10-06T18:46:21.247432Z", datetime(2017, 10, 6, 18, 46, 21, 247432, tzinfo=UTC)),
    ("2017-10-06T20:46:21.2+02:00", datetime(2017, 10, 6, 18, 46, 21, 200000, tzinfo=UTC)),
    ("0217-10-06T18:46:21Z", datetime(217, 10, 6, 18, 46, 21, tzinfo=UTC)),
])  # fmt: skip
def test_datetime_parses_and_writes_back(text, expected):
    parsed = values.parse_datetime(text, "t")
    assert parsed == expected
    assert values.parse_datetime(values.format_datetime(parsed), "t") == parsed


def test_years_before_1000_keep_four_digits():
    assert values.format_datetime(datetime(217, 1, 2, tzinfo=UTC)) == "0217-01-02T00:00:00.000000Z"


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
                                  "2017-02-30T00:00:00Z", "2017-10-06T18:46:21",
                                  "2017-10-06T18:46:21.1234567Z", "2017-10-06 18:46:21Z"])
def test_bad_datetime_is_1010(text):
    with pytest.raises(X1Error) as caught:
        values.parse_datetime(text, "messageTimestamp")
    assert caught.value.code == 1010
