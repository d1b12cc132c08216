"""The message grammar: parsers.parse_submission / render_submission (pure, no I/O)."""

from __future__ import annotations

from decimal import Decimal

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.extra.lark import from_lark

from parsers import ParseError, Submission, parse_submission, render_submission
from parsers.grammar import FORMAT_HINT, _parser
from parsers.normalize import normalize

ACC = "1234567890"


def _sub(account: str, *values: str) -> Submission:
    return Submission(account, tuple(Decimal(v) for v in values))


# (message as a customer writes it, expected account, expected values)
PARSED: list[tuple[str, str, tuple[str, ...]]] = [
    # [account] [value], every separator
    ("1234567890 12345", ACC, ("12345",)),
    ("1234567890  12345", ACC, ("12345",)),
    ("1234567890     12345", ACC, ("12345",)),
    ("1234567890\t12345", ACC, ("12345",)),
    ("1234567890\n12345", ACC, ("12345",)),
    ("1234567890\r\n12345", ACC, ("12345",)),
    ("1234567890,12345", ACC, ("12345",)),
    ("1234567890, 12345", ACC, ("12345",)),
    ("1234567890 ,12345", ACC, ("12345",)),
    ("1234567890;12345", ACC, ("12345",)),
    ("1234567890; 12345", ACC, ("12345",)),
    ("1234567890#12345", ACC, ("12345",)),
    ("1234567890:12345", ACC, ("12345",)),
    ("1234567890 : 12345", ACC, ("12345",)),
    ("1234567890;;12345", ACC, ("12345",)),
    # decimal comma and point; the comma rule of readings.lark
    ("1234567890 123,45", ACC, ("123.45",)),
    ("1234567890 123.45", ACC, ("123.45",)),
    ("1234567890, 123,45", ACC, ("123.45",)),
    ("1234567890:123,45", ACC, ("123.45",)),
    ("1234567890 ,123,45", ACC, ("123.45",)),
    ("1234567890,12345,6789", ACC, ("12345", "6789")),
    ("1234567890,123,45", ACC, ("123", "45")),
    ("1234567890,123.45,6789", ACC, ("123.45", "6789")),
    ("1234567890,12345;6789", ACC, ("12345", "6789")),
    ("1234567890,12345 6789", ACC, ("12345", "6789")),
    # leading zeros: a value keeps its value, an account keeps its zeros
    ("1234567890 05778", ACC, ("5778",)),
    ("0012345678 12345", "0012345678", ("12345",)),
    ("0012345678 05778 00042", "0012345678", ("5778", "42")),
    ("0 0", "0", ("0",)),
    # [account] [day] [night]
    ("1234567890 12345 6789", ACC, ("12345", "6789")),
    ("1234567890;12345;6789", ACC, ("12345", "6789")),
    ("1234567890#12345#6789", ACC, ("12345", "6789")),
    ("1234567890 # 12345 # 6789", ACC, ("12345", "6789")),
    ("1234567890, 12345, 6789", ACC, ("12345", "6789")),
    ("1234567890 12345, 6789", ACC, ("12345", "6789")),
    ("1234567890\n12345\n6789", ACC, ("12345", "6789")),
    ("1234567890 12345,6 6789,1", ACC, ("12345.6", "6789.1")),
    ("1234567890 12345.6;6789.1", ACC, ("12345.6", "6789.1")),
    # [account] [kitchen] [bath]
    ("1234567890 123,456 78,9", ACC, ("123.456", "78.9")),
    ("1234567890 00123,456 00078,900", ACC, ("123.456", "78.900")),
    ("1234567890;123,456;78,9", ACC, ("123.456", "78.9")),
    ("1234567890 12345 6789 123 45 67 89", ACC, ("12345", "6789", "123", "45", "67", "89")),
    # filler words anywhere, in any case
    ("показания 1234567890 12345", ACC, ("12345",)),
    ("Показание: 1234567890 12345 6789", ACC, ("12345", "6789")),
    ("пок. 1234567890 12345", ACC, ("12345",)),
    ("пок 1234567890 12345", ACC, ("12345",)),
    ("л/с 1234567890 12345", ACC, ("12345",)),
    ("л.с. 1234567890 12345", ACC, ("12345",)),
    ("лс 1234567890 12345", ACC, ("12345",)),
    ("ЛС 1234567890 12345", ACC, ("12345",)),
    ("1234567890 12345 спасибо", ACC, ("12345",)),
    ("1234567890 12345 6789 Спасибо.", ACC, ("12345", "6789")),
    ("1234567890 пок. 12345 6789", ACC, ("12345", "6789")),
    ("ПОКАЗАНИЯ 1234567890 12345", ACC, ("12345",)),
    ("Л/С 1234567890 показания 12345 6789 СПАСИБО", ACC, ("12345", "6789")),
    # leading/trailing spaces and separators, a final period
    ("  1234567890 12345  ", ACC, ("12345",)),
    (";1234567890 12345;", ACC, ("12345",)),
    ("#1234567890#12345#6789#", ACC, ("12345", "6789")),
    ("1234567890 12345.", ACC, ("12345",)),
    ("1234567890 12345 6789.", ACC, ("12345", "6789")),
    ("1234567890 123,45.", ACC, ("123.45",)),
    ("1234567890 12345,", ACC, ("12345",)),
    ("\n1234567890 12345\n", ACC, ("12345",)),
    # invisible characters, NBSP, full-width digits (NFKC)
    ("\u200b1234567890 12345", ACC, ("12345",)),
    ("1234567890\ufeff 12345", ACC, ("12345",)),
    ("\ufeff1234567890 12345\u200b", ACC, ("12345",)),
    ("12345\u00ad67890 12345", ACC, ("12345",)),
    ("1234567890 123\u200b45", ACC, ("12345",)),
    ("1234567890\u00a012345", ACC, ("12345",)),
    ("1234567890\u00a0\u00a012345\u00a06789", ACC, ("12345", "6789")),
    ("1234567890\u202f12345", ACC, ("12345",)),
    ("１２３４５６７８９０ １２３４５", ACC, ("12345",)),
    ("1234567890 １２３４５，６", ACC, ("12345.6",)),
]


@pytest.mark.parametrize(("text", "account", "values"), PARSED)
def test_message_parses_to_account_and_values(
    text: str, account: str, values: tuple[str, ...]
) -> None:
    assert parse_submission(text) == _sub(account, *values)


def test_leading_zero_value_is_the_number_without_zeros() -> None:
    """``05778`` is 5778 exactly (not octal, not a string)."""
    result = parse_submission("1234567890 05778")
    assert result.values == (Decimal(5778),)
    assert isinstance(result.values[0], Decimal)


def test_account_keeps_leading_zeros_as_a_string() -> None:
    assert parse_submission("0012345678 12345").account == "0012345678"


def test_decimal_comma_and_point_give_the_same_decimal() -> None:
    assert parse_submission("1234567890 123,45") == parse_submission("1234567890 123.45")


def test_values_keep_the_written_fraction_digits() -> None:
    """``78,900`` stays Decimal('78.900'): the exponent is what the sender typed."""
    (value,) = parse_submission("1234567890 78,900").values
    assert value.as_tuple().exponent == -3


UNPARSEABLE: list[str] = [
    "",
    " ",
    "   \t\n ",
    "\u200b\u200b\ufeff",
    ".",
    ",,,",
    "#;:",
    "привет",
    "показания",
    "спасибо",
    "1234567890",
    "1234567890 ",
    "показания 1234567890",
    "1234567890 12a45",
    "1234567890 12345 abc",
    "1.2.3",
    "1234567890 1.2.3",
    "1234567890 1,2,3",
    "12345.6 7",
    "1234567890 день 12345",
    "1234567890 12345 ночь",
    "передаю 1234567890 12345",
    "1234567890 😀",
    "😀",
    "1234567890 12345 👍",
    "1234567890 -12345",
    "1234567890 +12345",
    "1234567890 .5",
    "1234567890 1e5",
    "l/s 1234567890 12345",
    "1234567890 ½",
]


@pytest.mark.parametrize("text", UNPARSEABLE)
def test_non_reading_text_raises_unparseable(text: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_submission(text)
    assert info.value.code == "unparseable"


@pytest.mark.parametrize("text", UNPARSEABLE)
def test_parse_error_message_shows_the_format_example(text: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_submission(text)
    assert "1234567890 12345" in info.value.message
    assert info.value.message.endswith(FORMAT_HINT)


def test_parse_error_is_not_retryable() -> None:
    with pytest.raises(ParseError) as info:
        parse_submission("привет")
    assert info.value.retryable is False


def test_parse_error_is_a_value_error_carrying_its_message() -> None:
    with pytest.raises(ValueError, match="Не удалось прочитать показания"):
        parse_submission("привет")


def test_empty_message_says_it_is_empty() -> None:
    with pytest.raises(ParseError) as info:
        parse_submission(" \u200b ")
    assert info.value.message == f"Пустое сообщение. {FORMAT_HINT}"


def test_normalize_lowercases_strips_fillers_and_edges() -> None:
    assert normalize("\ufeffПОКАЗАНИЯ: 1234567890 12345 Спасибо.") == "1234567890 12345"


def test_render_is_account_then_values_separated_by_spaces() -> None:
    rendered = render_submission(_sub("0012345678", "5778", "123.450"))
    assert rendered == "0012345678 5778 123.450"


def test_render_never_uses_an_exponent() -> None:
    assert render_submission(Submission(ACC, (Decimal("1E+3"),))) == "1234567890 1000"


# --- properties ---------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_any_text_raises_only_parse_error(text: str) -> None:
    """Arbitrary text either parses or raises ParseError — never another exception."""
    try:
        result = parse_submission(text)
    except ParseError as err:
        assert err.code == "unparseable"
    else:
        assert isinstance(result, Submission)
        assert result.account.isdigit()
        assert len(result.values) >= 1


_NOISY = st.lists(
    st.sampled_from(
        [*"0123456789 ,.;#:\t\n\u200b\u00a0\ufeff\u00adлспокаиянбо/!", "показания", "л/с", "１"]
    ),
    max_size=25,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(_NOISY)
def test_digit_and_separator_soup_raises_only_parse_error(text: str) -> None:
    """Text made of the characters the grammar cares about never crashes the parser."""
    try:
        parse_submission(text)
    except ParseError as err:
        assert err.code == "unparseable"


_ACCOUNTS = st.from_regex(r"[0-9]{1,12}", fullmatch=True)
_VALUES = st.builds(
    lambda n, places: Decimal(n).scaleb(-places),
    st.integers(min_value=0, max_value=10**9),
    st.integers(min_value=0, max_value=3),
)
_SUBMISSIONS = st.builds(
    Submission, _ACCOUNTS, st.lists(_VALUES, min_size=1, max_size=6).map(tuple)
)


@settings(max_examples=300, deadline=None)
@given(_SUBMISSIONS)
def test_render_then_parse_gives_back_the_submission(submission: Submission) -> None:
    assert parse_submission(render_submission(submission)) == submission


_LARK_EXPLICIT = {
    "_SEP": st.sampled_from([" ", ";", "#", ", ", "  ", ":", "\t", "\n", " ; ", ": "]),
    "_DCOMMA": st.just(","),
    "INT": st.from_regex(r"[0-9]{1,6}", fullmatch=True),
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(from_lark(_parser(), explicit=_LARK_EXPLICIT))
def test_every_sentence_of_the_grammar_parses(text: str) -> None:
    """Strings generated from readings.lark itself are accepted.

    ``_SEP`` and ``_DCOMMA`` are given explicitly: their regexes use lookahead, which
    Hypothesis's regex generator does not honour across token boundaries (plain
    ``from_lark`` produces e.g. ``0:0,0.0`` whose ``,`` is followed by a digit).
    """
    result = parse_submission(text)
    assert len(result.values) >= 1


# A generator built from the grammar's rules that also knows the expected result.
_SPACED_SEPS = [" ", "  ", "\t", "\n", ";", "; ", "#", " # ", ":", ": ", ", ", " ,", ";,"]
_COMMA_SEPS = [",", ", ", " ", ";", "#"]
_PREFIXES = ["", " ", "показания ", "Л/С ", "лс: ", "\u200b", "пок. "]
_SUFFIXES = ["", ".", " ", " спасибо", ";", "\u00a0"]


@st.composite
def _written_messages(draw: st.DrawFn) -> tuple[str, Submission]:
    account = draw(_ACCOUNTS)
    values = draw(st.lists(_VALUES, min_size=1, max_size=6))
    zeros = st.sampled_from(["", "0", "00"])
    comma_separated = draw(st.booleans())
    parts: list[str] = []
    for i, value in enumerate(values):
        text = draw(zeros) + format(value, "f")
        if comma_separated:
            sep = "," if i == 0 else draw(st.sampled_from(_COMMA_SEPS))
        else:
            sep = draw(st.sampled_from(_SPACED_SEPS))
            if draw(st.booleans()):
                text = text.replace(".", ",")  # a decimal comma is allowed in spaced form
        parts.append(sep + text)
    prefix = draw(st.sampled_from(_PREFIXES))
    suffix = draw(st.sampled_from(_SUFFIXES))
    message = prefix + account + "".join(parts) + suffix
    return message, Submission(account, tuple(values))


@settings(max_examples=400, deadline=None)
@given(_written_messages())
def test_generated_messages_parse_to_their_values(case: tuple[str, Submission]) -> None:
    """Messages built by the grammar's rules (both comma forms, fillers, noise) parse exactly."""
    message, expected = case
    assert parse_submission(message) == expected
