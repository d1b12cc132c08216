"""gateway.jsontext writes what json.dumps(value, ensure_ascii=False) writes, for any
JSON value, and calls ``default`` for what JSON has no form for, as json.dumps does."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import example, given

from gateway.jsontext import json_encoder

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and infinities included: json.dumps writes NaN, Infinity
    | st.text()
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text() | st.integers() | st.booleans() | st.none(), inner, max_size=5)
    ),
    max_leaves=30,
)


@given(values)
@example({"reply": "Принято, ЛС 8800000001: 2504,04 ₽.", "charge": None, "n": [1, 2.5]})
@example("a text alone")
@example(math.nan)
@example({"\u2028\ud800": '\x00\x1f"\\/'})  # separators, a lone surrogate, escapes
def test_the_text_is_json_dumps(value: Any) -> None:
    assert json_encoder()(value) == json.dumps(value, ensure_ascii=False)


def test_a_value_without_a_json_form_goes_to_default_or_is_refused() -> None:
    value = {"amount": Decimal("2504.04"), "at": [object]}
    assert json_encoder(named)(value) == json.dumps(value, ensure_ascii=False, default=named)
    with pytest.raises(TypeError, match="not JSON serializable"):
        json_encoder()(value)


def named(v: Any) -> str:
    return f"<{type(v).__name__}>"


def test_an_encoder_is_used_again_and_again() -> None:
    encode = json_encoder()
    assert [encode({"i": i}) for i in range(3)] == ['{"i": 0}', '{"i": 1}', '{"i": 2}']
