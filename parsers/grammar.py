"""The lark LALR parser for readings messages, its transformer and the SMS commands."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Literal

from lark import Lark, Token, Transformer
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedInput

from parsers.normalize import fold, normalize

FORMAT_HINT = "Формат: ЛС показание, напр. 1234567890 12345 или 1234567890 12345 6789 (день ночь)"
# The longest text that is parsed at all: Twilio's limit for one message (ten segments).
# A longer text is refused unread, so no message costs more than this many characters of
# work whatever the webhook's body limit; an elder's list applies it to each line.
MAX_TEXT = 1600
TOO_LONG_TEXT = f"Сообщение длиннее {MAX_TEXT} знаков, не прочитано. {FORMAT_HINT}"
HELP_TEXT = (
    "Показания: ЛС и значения через пробел, напр. 1234567890 12345 6789 (день ночь) "
    "или Д12345 Н6789. Последние: 1234567890 ?"
)

Service = Literal["electricity", "hot_water", "cold_water"]
Zone = Literal["day", "night", "kitchen", "bath"]

SERVICE_WORDS: dict[str, Service] = {
    "ээ": "electricity",
    "э/э": "electricity",
    "свет": "electricity",
    "электроэнергия": "electricity",
    "гвс": "hot_water",
    "хвс": "cold_water",
}
ZONE_WORDS: dict[str, Zone] = {
    **dict.fromkeys(("день", "д", "т1"), "day"),
    **dict.fromkeys(("ночь", "н", "т2"), "night"),
    **dict.fromkeys(("кухня", "кух", "к"), "kitchen"),
    **dict.fromkeys(("ванная", "ванна", "ван", "в"), "bath"),
}
CODE_LETTERS: dict[str, tuple[Service, Zone | None]] = {
    "э": ("electricity", None),
    "эд": ("electricity", "day"),
    "эн": ("electricity", "night"),
    "г": ("hot_water", None),
    "х": ("cold_water", None),
}


@dataclass(frozen=True, slots=True)
class Label:
    """What a customer wrote before a value: a service, a zone, and for the coded form
    (``1ЭД123``) the meter's index within its service (1-based)."""

    service: Service | None = None
    zone: Zone | None = None
    index: int | None = None
    text: str = ""


@dataclass(frozen=True, slots=True)
class Value:
    value: Decimal
    # The digits as written (after normalisation), e.g. "05778" or "123,45".
    raw: str
    label: Label | None = None
    # What separated it from what came before: " " for white space only, otherwise the
    # first separator character ("#", ";", ",", ":"...); "" when glued to a label.
    separator: str = " "


@dataclass(frozen=True, slots=True)
class Submission:
    """One account's readings as the sender wrote them, in the order written."""

    account: str
    items: tuple[Value, ...]

    @property
    def values(self) -> tuple[Decimal, ...]:
        return tuple(item.value for item in self.items)

    @property
    def labelled(self) -> bool:
        return any(item.label is not None for item in self.items)

    @classmethod
    def of(cls, account: str, *values: Decimal | str) -> Submission:
        """Unlabelled values separated by spaces (tests, simulators)."""
        return cls(account, tuple(Value(Decimal(v), format(Decimal(v), "f")) for v in values))


@dataclass(frozen=True, slots=True)
class Command:
    """An SMS command: ``help`` (ПОМОЩЬ) or ``last`` (``[account] ?``, ПОСЛЕДНИЕ)."""

    kind: Literal["help", "last"]
    account: str | None = None


class ParseError(ValueError):
    """The text is not a readings message. Retrying the same text cannot help.

    ``code`` is ``unparseable``, or ``not_readings`` for text with no digit at all;
    ``account`` is the leading account number when the text starts with one.
    """

    retryable = False

    def __init__(self, code: str, message: str, account: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.account = account


def _separator(token: Token | None) -> str:
    if token is None:
        return ""
    stripped = str(token).strip()
    if stripped:
        return stripped[0]
    return "\n" if "\n" in token or "\r" in token else " "


class _ToSubmission(Transformer[Token, Submission]):
    def point_value(self, items: list[Token]) -> tuple[Decimal, str]:
        raw = ".".join(map(str, items))
        return Decimal(raw), raw

    def comma_decimal(self, items: list[Token]) -> tuple[Decimal, str]:
        return Decimal(f"{items[0]}.{items[1]}"), f"{items[0]},{items[1]}"

    def item(self, items: list[object]) -> Value:
        *tokens, number = items
        assert isinstance(number, tuple)
        words = [t for t in tokens if isinstance(t, Token) and t.type != "SEP"]
        separator = ""
        if tokens and isinstance(tokens[0], Token) and tokens[0].type == "SEP":
            separator = _separator(tokens[0])
        elif not words:
            separator = " "
        return Value(number[0], number[1], _label(words), separator)

    decimal_item = item

    def account(self, items: list[Token]) -> str:
        return str(items[0])

    def spaced(self, items: list[object]) -> Submission:
        account, *values = items
        assert isinstance(account, str)
        return Submission(account, tuple(v for v in values if isinstance(v, Value)))

    def comma_separated(self, items: list[object]) -> Submission:
        account, *rest = items
        assert isinstance(account, str)
        values = [
            Value(part[0], part[1], None, ",") if isinstance(part, tuple) else part for part in rest
        ]
        return Submission(account, tuple(v for v in values if isinstance(v, Value)))


def _label(words: list[Token]) -> Label | None:
    if not words:
        return None
    text = " ".join(map(str, words))
    if words[0].type == "CODE":
        code = str(words[0])
        coded_service, coded_zone = CODE_LETTERS[code[1:]]
        return Label(coded_service, coded_zone, int(code[0]), text)
    service: Service | None = None
    zone: Zone | None = None
    for word in words:
        if word.type == "SERVICE":
            service = SERVICE_WORDS[str(word)]
        elif word.type == "ZONE":
            zone = ZONE_WORDS[str(word)]
    return Label(service, zone, None, text)


@cache
def _parser() -> Lark:
    grammar = resources.files("parsers").joinpath("readings.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", lexer="contextual", transformer=_ToSubmission())


# Examples of each kind of mistake, kept beside the grammar; lark's match_examples
# finds which kind a failing message is closest to.
ERROR_EXAMPLES: dict[str, list[str]] = {
    "no_values": ["1234567890", "1234567890 день"],
    "bad_number": [
        "1234567890 1.2.3",
        "1234567890 12,34,5",
        "1234567890 1..2",
        "1.2.3",
        "1234567890.5 1",
    ],
    "unknown_word": ["1234567890 абв 12345", "1234567890 12345 абв 1", "абв 1234567890 12"],
}
ERROR_TEXT: dict[str, str] = {
    "no_values": "после номера ЛС нет показаний",
    "bad_number": "число записано неверно",
    "unknown_word": "непонятное слово",
}

_HELP_RE = re.compile(r"^(?:помощь|help|справка|\?|хелп)$")
_LAST_RE = re.compile(r"^(?:(?:последние|last|\?)\s*(?P<a>[0-9]+)|(?P<b>[0-9]+)\s*\?)$")
_ACCOUNT_RE = re.compile(r"^[^0-9]{0,20}?([0-9]{6,})")


def parse_command(text: str) -> Command | None:
    """``ПОМОЩЬ``/``HELP``, ``ПОСЛЕДНИЕ 1234567890``/``LAST …``, ``1234567890 ?``."""
    folded = fold(text).strip(" \t\r\n.!")
    if _HELP_RE.match(folded):
        return Command("help")
    last = _LAST_RE.match(folded)
    if last:
        return Command("last", last.group("a") or last.group("b"))
    return None


def parse_message(text: str) -> Submission | Command:
    """A command, or readings. Raises :class:`ParseError` for anything else, and for any
    text longer than :data:`MAX_TEXT` characters, unread (``unparseable``)."""
    refuse_too_long(text)
    return parse_command(text) or parse_submission(text)


def parse_submission(text: str) -> Submission:
    """Parse readings. Raises :class:`ParseError` (``unparseable``/``not_readings``).

    Any length is read, in time linear in it; the callers that take text from outside
    bound it first (:func:`parse_message`, and :func:`parsers.parse_list` per line)."""
    canonical = normalize(text)
    if not any(c in "0123456789" for c in canonical):
        raise ParseError("not_readings", HELP_TEXT)
    try:
        result = _parser().parse(canonical)
    except LarkError as exc:
        raise _explain(exc, canonical) from None
    assert isinstance(result, Submission)
    return result


def refuse_too_long(text: str) -> None:
    """Raise the ``unparseable`` :class:`ParseError` for a text over :data:`MAX_TEXT`."""
    if len(text) > MAX_TEXT:
        raise ParseError("unparseable", TOO_LONG_TEXT)


def _explain(exc: LarkError, canonical: str) -> ParseError:
    found = _ACCOUNT_RE.match(canonical)
    account = found.group(1) if found else None
    kind = None
    if isinstance(exc, UnexpectedInput):
        try:
            kind = exc.match_examples(_parser().parse, ERROR_EXAMPLES, use_accepts=True)
        except Exception:  # lark 1.3.1 fails formatting a debug message for some states
            kind = None
    problem = ERROR_TEXT.get(kind or "", "не удалось прочитать показания")
    if kind == "unknown_word" and isinstance(exc, UnexpectedCharacters):
        start = exc.pos_in_stream or 0
        word = (canonical[start : start + 16].split(maxsplit=1) or [""])[0]
        problem = f"{problem} «{word[:15]}»"
    return ParseError("unparseable", f"{problem[0].upper()}{problem[1:]}. {FORMAT_HINT}", account)


def render_submission(submission: Submission) -> str:
    """The canonical text of a submission; ``parse_submission`` reads it back unchanged."""
    parts = [submission.account]
    for item in submission.items:
        value = format(item.value, "f")
        if item.label is None:
            parts.append(value)
        elif item.label.index is not None:  # a code touches its value: 1эд123
            parts.append(f"{item.label.text}{value}")
        else:
            parts.append(f"{item.label.text} {value}")
    return " ".join(parts)
