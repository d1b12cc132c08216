"""The column types of gateway.storage.tables: UTC timestamps bound on SQLite in one step
give exactly what SQLAlchemy's two steps give (pure: the dialects, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import hypothesis.strategies as st
import pytest
from hypothesis import example, given
from sqlalchemy import DateTime
from sqlalchemy.dialects import postgresql, sqlite

from gateway.storage.tables import UTCDateTime

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
