"""The short ways of the storage's hot path hold to the long ways (pure: the dialects, no
database): UTC timestamps bound on SQLite in one step give what SQLAlchemy's two steps
give, a stored decimal reads back as plain() gives it, and an outcome's wording is
dataclasses.replace of its reply and error."""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import example, given
from sqlalchemy import DateTime
from sqlalchemy.dialects import postgresql, sqlite

from gateway.domain.outcome import Outcome, OutcomeError
from gateway.storage.tables import ExactDecimal, UTCDateTime, plain

SQLITE = sqlite.dialect()
# SQLite's own DATETIME text, which UTCDateTime's impl binds through.
SQLITE_DATETIME = DateTime().dialect_impl(SQLITE).bind_processor(SQLITE)

zones = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


def two_steps(value: datetime) -> str:
    """What the column bound before: its process_bind_param, then SQLite's DATETIME."""
    assert SQLITE_DATETIME is not None
    return str(SQLITE_DATETIME(UTCDateTime().process_bind_param(value, SQLITE)))


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    )
    | st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=zones)
)
@example(datetime(2026, 11, 24, 18, 0, 0, tzinfo=UTC))  # a whole second: six zeros still
@example(datetime(999, 1, 2, 0, 0, 0, 5, tzinfo=UTC))  # a year of three digits
def test_a_utc_timestamp_binds_on_sqlite_as_sqlalchemy_binds_it(value: datetime) -> None:
    process = UTCDateTime().bind_processor(SQLITE)
    assert process is not None
    assert process(value) == two_steps(value)


def test_a_naive_timestamp_is_refused_and_none_is_null_on_sqlite() -> None:
    process = UTCDateTime().bind_processor(SQLITE)
    assert process is not None
    with pytest.raises(ValueError, match="naive datetime"):
        process(datetime(2026, 11, 24, 18, 0))
    assert process(None) is None


def test_other_databases_bind_the_aware_timestamp_in_utc() -> None:
    process = UTCDateTime().bind_processor(postgresql.dialect())
    assert process is not None
    local = datetime(2026, 11, 24, 21, 30, tzinfo=timezone(timedelta(hours=3)))
    bound = process(local)
    assert bound == datetime(2026, 11, 24, 18, 30, tzinfo=UTC)
    assert bound.tzinfo is UTC


@given(
    st.from_regex(r"[0-9]{1,40}", fullmatch=True)
    | st.decimals(allow_nan=False, allow_infinity=False, places=6).map(lambda d: format(d, "f"))
)
@example("0")
@example("000120")
@example("12000")
@example("12.500")
@example("10000000000000000000000000000")  # more digits than the default context's 28
@example("1234567890123456789012345678901234.567")
def test_a_stored_decimal_reads_back_as_plain_gives_it(text: str) -> None:
    """ExactDecimal's text on SQLite reads back as plain() of it, digit for digit (a
    whole number's digits skip plain())."""
    read = ExactDecimal().process_result_value(text, SQLITE)
    assert read is not None
    assert read.as_tuple() == plain(Decimal(text)).as_tuple()


def test_worded_is_replace_of_the_reply_and_the_error() -> None:
    """Every field of an outcome but the two is kept, whatever fields Outcome has."""
    values: dict[str, Any] = {f.name: object() for f in fields(Outcome)}
    outcome = Outcome(**values)
    error = OutcomeError("code", "message")
    worded = outcome.worded("reply", error)
    expected = replace(outcome, reply="reply", error=error)
    assert [getattr(worded, f.name) for f in fields(Outcome)] == [
        getattr(expected, f.name) for f in fields(Outcome)
    ]
