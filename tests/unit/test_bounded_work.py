"""Bounded work per message: the length limit, worst-case shapes that must finish with the
right answer, and numbers beyond Python's int/str digit limit (pure).

Nothing here is timed (timings flake); ``python -m bench.worst`` times these shapes. A
regression to a quadratic or exponential algorithm shows as a test that does not finish.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from decimal import Decimal

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from gateway.domain import matching, rules
from gateway.domain.errors import ErrorCode
from gateway.domain.model import Account, Capacity, Register, Service, Zone
from parsers import (
    MAX_TEXT,
    TOO_LONG_TEXT,
    Command,
    ParseError,
    Submission,
    parse_command,
    parse_list,
    parse_message,
    parse_submission,
)
from parsers.grammar import FORMAT_HINT, _is_label
from parsers.normalize import (
    _FILLER_RE,
    _PUNCTUATION_TABLE,
    LOOKALIKES,
    canonical,
    fold,
    normalize,
)

ACC = "1234567890"
D = Decimal
BODY_LIMIT = 64 * 1024
E, HW, CW = Service.ELECTRICITY, Service.HOT_WATER, Service.COLD_WATER


def _reg(id_: int, service: Service, zone: Zone, digits: str) -> Register:
    return Register(id_, ACC, f"5174{id_:02d}", service, zone, Capacity.parse(digits), None, None)


SIX = Account(
    ACC,
    D(0),
    (
        _reg(1, E, Zone.DAY, "6.1"),
        _reg(2, E, Zone.NIGHT, "6.1"),
        _reg(3, HW, Zone.KITCHEN, "5.3"),
        _reg(4, HW, Zone.BATH, "5.3"),
        _reg(5, CW, Zone.KITCHEN, "5.3"),
        _reg(6, CW, Zone.BATH, "5.3"),
    ),
)
MAX_JUMP = {E: D(1000), HW: D(30), CW: D(30)}


def decide(text: str) -> str:
    """parse_message, then assign and check against the six-register account, as a word."""
    try:
        parsed = parse_message(text)
    except ParseError as err:
        return "too_long" if err.message == TOO_LONG_TEXT else err.code
    if isinstance(parsed, Command):
        return f"command {parsed.kind}"
    pairs = matching.assign(SIX, parsed.items)
    if isinstance(pairs, rules.Rejection):
        return str(pairs.code)
    checked = rules.check(pairs, today=date(2026, 11, 20), max_jump=MAX_JUMP)
    return str(checked.code) if isinstance(checked, rules.Rejection) else "accepted"


def fill(head: str, unit: str, length: int, tail: str = "") -> str:
    """``head``, ``unit`` as often as it fits, spaces, ``tail``: ``length`` characters."""
    body = length - len(head) - len(tail)
    units = body // len(unit)
    return head + unit * units + " " * (body - units * len(unit)) + tail


# --- the length limit ------------------------------------------------------------------------


def test_the_limit_is_twilios_1600_characters() -> None:
    assert MAX_TEXT == 1600


def test_a_text_over_the_limit_is_unparseable_unread() -> None:
    with pytest.raises(ParseError) as caught:
        parse_message(fill(f"{ACC} 12345", " ", MAX_TEXT + 1))
    assert (caught.value.code, caught.value.message, caught.value.account) == (
        "unparseable",
        TOO_LONG_TEXT,
        None,
    )


def test_the_too_long_reply_names_the_limit_and_the_format_within_two_sms_segments() -> None:
    assert TOO_LONG_TEXT == (
        "Сообщение длиннее 1600 знаков, не прочитано. Формат: ЛС показание, "
        "напр. 1234567890 12345 или 1234567890 12345 6789 (день ночь)"
    )
    assert TOO_LONG_TEXT.endswith(FORMAT_HINT)
    assert len(TOO_LONG_TEXT) <= 134


def test_a_text_of_exactly_the_limit_is_parsed() -> None:
    text = fill(f"{ACC} 12345", " ", MAX_TEXT)
    assert parse_message(text) == Submission.of(ACC, "12345")


def test_a_command_over_the_limit_is_refused_too() -> None:
    with pytest.raises(ParseError, match="длиннее 1600"):
        parse_message(fill("помощь", " ", MAX_TEXT + 1))


def test_invisible_characters_count_towards_the_limit() -> None:
    with pytest.raises(ParseError, match="длиннее 1600"):
        parse_message(f"{ACC} 12345" + "\u200b" * MAX_TEXT)


# --- group lists: the limit applies per line --------------------------------------------------


def test_a_list_far_longer_than_the_limit_is_read_line_by_line() -> None:
    lines = [f"{i}. кв. {i} — 12345{i:05d} 12345 6789" for i in range(1, 3001)]
    results = list(parse_list("Добрый день!\n" + "\n".join(lines) + "\nС уважением"))
    assert len("\n".join(lines)) > 40 * MAX_TEXT
    assert [r.number for r in results] == list(range(2, 3002))
    assert all(r.ok for r in results)


def test_a_data_line_over_the_limit_alone_gets_the_too_long_error() -> None:
    long_line = fill(f"{ACC} 12345", " 1", MAX_TEXT + 10)
    results = list(parse_list(f"{ACC} 1 2\n{long_line}\n{ACC} 3 4"))
    assert [r.ok for r in results] == [True, False, True]
    error = results[1].result
    assert isinstance(error, ParseError) and error.message == TOO_LONG_TEXT


def test_a_long_line_without_an_account_is_skipped() -> None:
    body = "Здравствуйте, " * 1000 + f"\n{ACC} 12345 6789"
    assert [r.number for r in parse_list(body)] == [2]


# --- worst shapes at 1,600 characters: they finish, with the right answer -------------------

Build = Callable[[int], str]
WORST_SHAPES: list[tuple[str, Build, str]] = [
    ("account + `1 ` pairs", lambda n: fill(f"{ACC} ", "1 ", n, "1"), "value_count"),
    ("account twice + ` 123` groups", lambda n: fill(f"{ACC} {ACC}", " 123", n), "value_count"),
    ("account + ` 12 345` pairs", lambda n: fill(ACC, " 12 345", n, " 1"), "value_count"),
    ("account + ` 1 234 567` runs", lambda n: fill(ACC, " 1 234 567", n, " 1"), "value_count"),
    ("six values in groups", lambda n: fill(f"{ACC} 1 234 5 6 7 8 9", " ", n), "accepted"),
    ("account, spaces, value", lambda n: fill(ACC, " ", n, "5"), "value_count"),
    ("account, `;`, value", lambda n: fill(ACC, ";", n, "5"), "value_count"),
    ("account, `,`, value", lambda n: fill(ACC, ",", n, "5"), "value_count"),
    ("account, `-=:#`, value", lambda n: fill(ACC, "-=:#", n, "5"), "value_count"),
    ("spaces only", lambda n: " " * n, "not_readings"),
    ("digits only", lambda n: "1" * n, "unparseable"),
    ("alternating digit/space", lambda n: fill("", "1 ", n, "1"), "value_count"),
    ("alternating digit/newline", lambda n: fill("", "1\n", n, "1"), "value_count"),
    ("five values + a long one", lambda n: fill(f"{ACC} 1 2 3 4 5 ", "9", n), "too_many_digits"),
    (
        "five values + long decimal",
        lambda n: fill(f"{ACC} 1 2 3 4 5 1,", "2", n),
        "too_many_digits",
    ),
    ("letters only", lambda n: "а" * n, "not_readings"),
    ("account + letters + value", lambda n: fill(f"{ACC} ", "абв", n, " 1"), "unparseable"),
    ("account + `д` repeated", lambda n: fill(f"{ACC} ", "д", n, "1"), "unparseable"),
    ("account + `#1` serial form", lambda n: fill(ACC, "#1", n), "unknown_meter"),
    ("account + ` д 1` labels", lambda n: fill(ACC, " д 1", n), "ambiguous_label"),
    ("account + ` 1эд1` codes", lambda n: fill(ACC, " 1эд1", n), "ambiguous_label"),
    ("account + `1.` bad number", lambda n: fill(f"{ACC} ", "1.", n, "1"), "unparseable"),
    ("fillers + account", lambda n: fill("", "добрый  день ", n, f"{ACC} 1 2 3 4 5 6"), "accepted"),
    ("full-width digits", lambda n: "１" * n, "unparseable"),
    ("zero-width between digits", lambda n: fill(f"{ACC} ", "1\u200b", n), "value_count"),
    ("command padded", lambda n: fill("последние", " ", n, ACC), "command last"),
    ("signature", lambda n: fill(f"{ACC} 1 2 3 4 5 6 ", "Иванова ", n), "accepted"),
    ("labels after values", lambda n: fill(ACC, " 1 (день)", n), "ambiguous_label"),
    (
        "six labels after values",
        lambda n: fill(f"{ACC} 1 д 2 н 3 гвс к 4 гвс в 5 хвс к 6 хвс в", " ", n),
        "accepted",
    ),
    ("account + ` 1 кВт` units", lambda n: fill(ACC, " 1 кВт", n), "value_count"),
    ("account + ` 1м3` glued units", lambda n: fill(ACC, " 1м3", n), "value_count"),
    ("account + ` — 1` dashes", lambda n: fill(ACC, " — 1", n), "value_count"),
    ("account + `—` run + value", lambda n: fill(ACC, "—", n, "1"), "value_count"),
    ("account + ` гвс 1` service words", lambda n: fill(ACC, " гвс 1", n), "ambiguous_label"),
    (
        "command with fillers",
        lambda n: fill("последние показания л/с ", " ", n, ACC),
        "command last",
    ),
    ("command, `? ` repeated", lambda n: fill(f"{ACC} ", "? ", n), "command last"),
]


@pytest.mark.parametrize(
    ("name", "build", "outcome"), WORST_SHAPES, ids=[s[0] for s in WORST_SHAPES]
)
def test_worst_shape_of_1600_characters_is_decided(name: str, build: Build, outcome: str) -> None:
    text = build(MAX_TEXT)
    assert len(text) == MAX_TEXT
    assert decide(text) == outcome


@pytest.mark.parametrize(
    ("name", "build", "outcome"), WORST_SHAPES, ids=[s[0] for s in WORST_SHAPES]
)
def test_worst_shape_of_64_kib_is_too_long(name: str, build: Build, outcome: str) -> None:
    assert decide(build(BODY_LIMIT)) == "too_long"


def test_an_unknown_word_of_1500_letters_is_quoted_at_15() -> None:
    with pytest.raises(ParseError) as caught:
        parse_message(f"{ACC} " + "ж" * 1500 + " 1")
    assert caught.value.message.startswith("Непонятное слово «" + "ж" * 15 + "». ")


# --- normalisation and the grammar stay linear on 64 KiB (parse_submission has no limit) --


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        (" " * BODY_LIMIT, ""),
        ("1" + " " * BODY_LIMIT + "1", "1" + " " * BODY_LIMIT + "1"),
        ("1" + ";" * BODY_LIMIT + "x", "1"),
        ("1" + ";" * BODY_LIMIT, "1"),
        (";" * BODY_LIMIT + "1" + " ." * BODY_LIMIT, "1"),
        ("1" + " x" * BODY_LIMIT, "1"),
        ("д" * BODY_LIMIT, "д" * BODY_LIMIT),
        ("добрый" + " " * BODY_LIMIT + "день 1", "1"),
        ("добрый" + " " * BODY_LIMIT + "1", "добрый" + " " * BODY_LIMIT + "1"),
        ("1" * BODY_LIMIT, "1" * BODY_LIMIT),
    ],
)
def test_normalize_of_64_kib_runs_finishes(text: str, canonical: str) -> None:
    assert normalize(text) == canonical


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1" + " " * BODY_LIMIT + "квт", "1"),
        ("1 кВт " * (BODY_LIMIT // 6), "1 ; " * (BODY_LIMIT // 6 - 1) + "1"),
        ("1" + "—" * BODY_LIMIT + "2", "1" + "—" * BODY_LIMIT + "2"),
        ("1" + " —" * BODY_LIMIT, "1"),
        ("1" + " ночь" * BODY_LIMIT, "1"),
        ("1" + " " * BODY_LIMIT + "ночь", "1" + " " * BODY_LIMIT + "ночь"),
    ],
)
def test_what_the_grammar_reads_of_64_kib_runs_finishes(text: str, expected: str) -> None:
    """Units, dashes and a label after the last value, at 64 KiB (canonical is linear)."""
    assert canonical(text, _is_label) == expected


def test_a_value_after_64_kib_of_spaces_parses() -> None:
    """The run of spaces that cost seconds in the old edge-stripping expression."""
    assert parse_submission(ACC + " " * BODY_LIMIT + "5") == Submission.of(ACC, "5")


def test_a_value_after_64_kib_of_commas_parses() -> None:
    assert parse_submission(ACC + "," * BODY_LIMIT + "5") == Submission(
        ACC, (parse_submission(f"{ACC}, 5").items)
    )


# --- numbers beyond Python's int/str limit (4,300 digits) ---------------------------------


def test_an_account_of_5000_digits_parses() -> None:
    account = "9" * 5000
    assert parse_submission(f"{account} 12345") == Submission.of(account, "12345")


def test_the_last_command_for_an_account_of_5000_digits_is_read() -> None:
    assert parse_command("последние " + "9" * 5000) == Command("last", "9" * 5000)


def test_a_value_of_5000_digits_parses_and_is_too_many_digits() -> None:
    submission = parse_submission(f"{ACC} 1 2 3 4 5 " + "9" * 5000)
    assert submission.values[-1] == D("9" * 5000)
    pairs = matching.assign(SIX, submission.items)
    assert not isinstance(pairs, rules.Rejection)
    result = rules.check(pairs, today=date(2026, 11, 20), max_jump=MAX_JUMP)
    assert isinstance(result, rules.Rejection)
    assert (result.code, result.value) == ("too_many_digits", D("9" * 5000))


def test_a_decimal_with_5000_digit_parts_parses_exactly() -> None:
    whole, fraction = "1" * 5000, "2" * 5000
    comma = parse_submission(f"{ACC} 1 2 3 4 5 {whole},{fraction}").items[-1]
    point = parse_submission(f"{ACC} 1 2 3 4 5 {whole}.{fraction}").items[-1]
    assert comma.value == point.value == D(f"{whole}.{fraction}")
    assert comma.raw == f"{whole},{fraction}"


def test_a_text_of_5000_digits_is_an_account_without_values() -> None:
    with pytest.raises(ParseError) as caught:
        parse_submission("1" * 5000)
    assert (caught.value.code, caught.value.account) == ("unparseable", "1" * 5000)


def test_thousands_groups_of_5000_digit_heads_do_not_convert_through_int() -> None:
    items = parse_submission(f"{ACC} " + "9" * 5000 + " 123 1 2 3 4 5").items
    assert matching.assign(SIX, items) == rules.Rejection(ErrorCode.VALUE_COUNT, limit=D(6))


# --- the linear normalisation gives what the old regular expressions gave ------------------

_OLD_TAIL_RE = re.compile(r"(?<=[0-9])[^0-9]*$")
_OLD_LABEL_TAIL_RE = re.compile(r"^[\s;#:=,.\-]*$")
_OLD_EDGES = re.compile(r"^[\s;,#:.=\-]+|[\s;,#:.=\-]+$")


def old_normalize(text: str) -> str:
    """normalize() as it was at commit dddd6e9 (quadratic on a run of separators)."""
    text = fold(text.translate(_PUNCTUATION_TABLE)).translate(LOOKALIKES)
    text = _FILLER_RE.sub(" ", text)
    text = _OLD_TAIL_RE.sub(
        lambda m: m.group() if _OLD_LABEL_TAIL_RE.match(m.group()) else "", text
    )
    return _OLD_EDGES.sub("", text)


_ALPHABET = "0123456789 \t\n\r\u00a0\u2028\u3000\x0b;#:=,.-абвдхжxXД№!?\u200b"


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=_ALPHABET, max_size=40))
def test_normalize_gives_what_the_old_expressions_gave(text: str) -> None:
    assert normalize(text) == old_normalize(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_normalize_gives_what_the_old_expressions_gave_on_any_text(text: str) -> None:
    assert normalize(text) == old_normalize(text)
