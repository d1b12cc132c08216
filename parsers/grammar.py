"""The readings grammar (readings.lark, lark LALR), its rule actions and the SMS commands.

lark builds the grammar's tables once; :mod:`parsers.lalr` runs them with the actions
below, and lark itself parses only a text that does not read, to explain why."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any, Literal, NamedTuple

from lark import Lark, Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedInput

from parsers.lalr import LalrRunner, Tok
from parsers.normalize import canonical, drop_fillers, fold

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


def _words(words: Iterable[str]) -> str:
    return "|".join(map(re.escape, sorted(words, key=len, reverse=True)))


# One label as the grammar's trailing_label reads it, words separated by single spaces:
# what normalize.canonical keeps of a tail after the last value.
_LABEL = re.compile(
    f"(?:{_words(SERVICE_WORDS)})(?: ?(?:{_words(ZONE_WORDS)}))?|{_words(ZONE_WORDS)}"
)


def _is_label(words: str) -> bool:
    """Whether ``words`` (a tail after the last value) is one label: ``ночь``, ``гвс к``."""
    return _LABEL.fullmatch(words) is not None


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
    """An SMS command: ``help`` (ПОМОЩЬ), ``last`` (``[account] ?``, ПОСЛЕДНИЕ), ``stop``
    (СТОП: no more notifications) or ``start`` (СТАРТ: notifications again)."""

    kind: Literal["help", "last", "stop", "start"]
    account: str | None = None


class ParseError(ValueError):
    """The text is not a readings message. Retrying the same text cannot help.

    ``code`` is ``unparseable``, or ``not_readings`` for text with no digit at all;
    ``account`` is the leading account number when the text starts with one. What went
    wrong, as data for whoever words it: ``kind`` (``no_values``, ``bad_number``,
    ``unknown_word``, ``unreadable``, ``too_long``, ``no_digits``), and where: ``position``
    (in the normalised text) and the ``token`` found there. ``message`` is this parser's
    own wording (Russian, within two SMS segments).
    """

    retryable = False

    def __init__(
        self,
        code: str,
        message: str,
        account: str | None = None,
        *,
        kind: str = "unreadable",
        position: int | None = None,
        token: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.account = account
        self.kind = kind
        self.position = position
        self.token = token


def _separator(text: str) -> str:
    """A separator as :attr:`Value.separator` records it."""
    if text == " ":
        return " "
    stripped = text.strip()
    if stripped:
        return stripped[0]
    return "\n" if "\n" in text or "\r" in text else " "


class _Apart(NamedTuple):
    """A value whose label is written apart from it ("день 12345", not "д12345"): in a
    message written with labels after values, that label is the value before's.
    ``separator``: what separates the value from that label."""

    value: Value
    separator: str


Item = Value | _Apart
Number = tuple[Decimal, str]


# The grammar's rule actions. Tokens come as (terminal name, text) pairs: from
# parsers.lalr's runner, or from lark's own tree (_from_tree) when the runner cannot read
# a text and lark is asked to explain why.


def _point_value(children: list[Tok]) -> Number:
    raw = children[0][1] if len(children) == 1 else f"{children[0][1]}.{children[1][1]}"
    return Decimal(raw), raw


def _comma_decimal(children: list[Tok]) -> Number:
    whole, fraction = children[0][1], children[1][1]
    return Decimal(f"{whole}.{fraction}"), f"{whole},{fraction}"


def _item(children: list[Any]) -> Item:
    number: Number = children[-1]
    if len(children) == 2 and children[0][0] == "SEP":  # the common case: " 12345"
        return Value(number[0], number[1], None, _separator(children[0][1]))
    tokens: list[Tok] = children[:-1]
    words = [t for t in tokens if t[0] != "SEP"]
    separator = ""
    if tokens and tokens[0][0] == "SEP":
        separator = _separator(tokens[0][1])
    elif not words:
        separator = " "
    value = Value(number[0], number[1], _label(words), separator)
    if words and tokens[-1][0] == "SEP":
        return _Apart(value, _separator(tokens[-1][1]))
    return value


def _trailing_label(children: list[Tok]) -> Label | None:
    return _label([t for t in children if t[0] != "SEP"])


def _account(children: list[Tok]) -> str:
    return children[0][1]


def _spaced(children: list[Any]) -> Submission:
    account: str = children[0]
    if type(children[-1]) is Value and _Apart not in map(type, children):  # the common case
        return Submission(account, tuple(children[1:]))
    trailing = children[-1] if isinstance(children[-1], Label) else None
    items: list[Item] = children[1:-1] if trailing is not None else children[1:]
    return _arrange(account, items, trailing)


def _comma_separated(children: list[Any]) -> Submission:
    account: str = children[0]
    trailing = children[-1] if isinstance(children[-1], Label) else None
    parts = children[1:-1] if trailing is not None else children[1:]
    items: list[Item] = [
        Value(part[0], part[1], None, ",")
        if isinstance(part, tuple) and not isinstance(part, _Apart)
        else part
        for part in parts
    ]
    return _arrange(account, items, trailing)


ACTIONS: dict[str, Callable[[list[Any]], Any]] = {
    "point_value": _point_value,
    "comma_decimal": _comma_decimal,
    "item": _item,
    "decimal_item": _item,
    "trailing_label": _trailing_label,
    "account": _account,
    "spaced": _spaced,
    "comma_separated": _comma_separated,
}


def _arrange(account: str, items: list[Item], trailing: Label | None) -> Submission:
    """Give each label its value (see "Labels after values" in readings.lark).

    Labels are read after values when the first value has no label before it, a label
    follows the last value (``trailing``), and no value gets a label from both sides;
    otherwise before them, and ``trailing`` is ignored."""
    before = tuple(i.value if isinstance(i, _Apart) else i for i in items)
    first = items[0]
    if trailing is None or isinstance(first, _Apart) or first.label is not None:
        return Submission(account, before)
    values = []
    for k, item in enumerate(items):
        after: Label | None = trailing
        if k + 1 < len(items):
            following = items[k + 1]
            after = following.value.label if isinstance(following, _Apart) else None
        if isinstance(item, _Apart):
            value, own, separator = item.value, None, item.separator
        else:
            value, own, separator = item, item.label, item.separator
        if own is not None and after is not None:  # labels on both sides: not after
            return Submission(account, before)
        values.append(Value(value.value, value.raw, own or after, separator))
    return Submission(account, tuple(values))


def _label(words: list[Tok]) -> Label | None:
    if not words:
        return None
    text = " ".join(word for _, word in words)
    if words[0][0] == "CODE":
        code = words[0][1]
        coded_service, coded_zone = CODE_LETTERS[code[1:]]
        return Label(coded_service, coded_zone, int(code[0]), text)
    service: Service | None = None
    zone: Zone | None = None
    for kind, word in words:
        if kind == "SERVICE":
            service = SERVICE_WORDS[word]
        elif kind == "ZONE":
            zone = ZONE_WORDS[word]
    return Label(service, zone, None, text)


def _from_tree(node: Tree[Token] | Token) -> Any:
    """What the actions make of a tree lark parsed (the runner's reading, the slow way)."""
    if isinstance(node, Token):
        return (node.type, str(node))
    return ACTIONS[str(node.data)]([_from_tree(child) for child in node.children])


@cache
def _parser() -> Lark:
    """The grammar, loaded once: lark builds the LALR tables; it parses only to explain a
    text the runner cannot read (and in tests)."""
    grammar = resources.files("parsers").joinpath("readings.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", lexer="contextual")


@cache
def _runner() -> LalrRunner:
    return LalrRunner(_parser(), ACTIONS)


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

_ACCOUNT_RE = re.compile(r"^[^0-9]{0,20}?([0-9]{6,})")
_DIGIT = re.compile(r"[0-9]")

# Commands are read word by word: the words (letters and digits) and every "?" of the
# folded text, once the fillers are removed; punctuation, separators and fillers around
# them ("ПОСЛЕДНИЕ показания: л/с 1234567890", "HELP?", "Помощь.") change nothing.
_HELP_WORDS = frozenset({"помощь", "help", "справка", "хелп"})
_LAST_WORDS = frozenset({"последние", "last", "?"})
_STOP_WORDS = frozenset({"стоп", "stop", "отписаться", "unsubscribe"})
_START_WORDS = frozenset({"старт", "start", "подписаться", "subscribe"})
_COMMAND_WORD = re.compile(r"[^\W_]+|\?")
# Punctuation that NFKC would turn into letters ("№" → "No") is blanked before folding.
_COMMAND_PUNCTUATION = str.maketrans(dict.fromkeys("№", " "))
# A command is at most a word and an account (and any "?"): a text with more words is no
# command, and is not read further.
_COMMAND_MAX_WORDS = 2


def parse_command(text: str) -> Command | None:
    """``ПОМОЩЬ``/``HELP``/``?``, ``ПОСЛЕДНИЕ 1234567890``/``LAST …``/``? …``,
    ``1234567890 ?``, each with any "?" after it and with fillers and punctuation
    anywhere. A text with more than one number is never a command."""
    words = []
    named = 0
    for found in _COMMAND_WORD.finditer(drop_fillers(fold(text.translate(_COMMAND_PUNCTUATION)))):
        words.append(found.group())
        named += words[-1] != "?"
        if named > _COMMAND_MAX_WORDS:
            return None
    asked = False
    while len(words) > 1 and words[-1] == "?":
        words.pop()
        asked = True
    if words == ["?"] or (len(words) == 1 and words[0] in _HELP_WORDS):
        return Command("help")
    if len(words) == 1 and words[0] in _STOP_WORDS:
        return Command("stop")
    if len(words) == 1 and words[0] in _START_WORDS:
        return Command("start")
    if len(words) == 2 and words[0] in _LAST_WORDS and _is_number(words[1]):
        return Command("last", words[1])
    if asked and len(words) == 1 and _is_number(words[0]):
        return Command("last", words[0])
    return None


def _is_number(word: str) -> bool:
    return word.isascii() and word.isdigit()


def parse_message(text: str) -> Submission | Command:
    """A command, or readings. Raises :class:`ParseError` for anything else, and for any
    text longer than :data:`MAX_TEXT` characters, unread (``unparseable``)."""
    refuse_too_long(text)
    return parse_command(text) or parse_submission(text)


def parse_submission(text: str) -> Submission:
    """Parse readings. Raises :class:`ParseError` (``unparseable``/``not_readings``).

    Any length is read, in time linear in it; the callers that take text from outside
    bound it first (:func:`parse_message`, and :func:`parsers.parse_list` per line)."""
    text = canonical(text, _is_label)
    if _DIGIT.search(text) is None:
        raise ParseError("not_readings", HELP_TEXT, kind="no_digits")
    result = _runner().parse(text)
    if result is None:
        try:
            tree = _parser().parse(text)
        except LarkError as exc:
            raise _explain(exc, text) from None
        result = _from_tree(tree)  # lark read what the runner did not: take lark's reading
    assert isinstance(result, Submission)
    return result


def refuse_too_long(text: str) -> None:
    """Raise the ``unparseable`` :class:`ParseError` for a text over :data:`MAX_TEXT`."""
    if len(text) > MAX_TEXT:
        raise ParseError("unparseable", TOO_LONG_TEXT, kind="too_long", position=MAX_TEXT)


@cache
def _example_errors() -> dict[str, UnexpectedInput | None]:
    """The error lark raises for each of ERROR_EXAMPLES, found once."""
    errors: dict[str, UnexpectedInput | None] = {}
    for examples in ERROR_EXAMPLES.values():
        for example in examples:
            try:
                _parser().parse(example)
                errors[example] = None
            except UnexpectedInput as err:
                errors[example] = err
    return errors


def _replay_example(example: str) -> Tree[Token]:
    """``_parser().parse`` for match_examples, without parsing every example again for
    every failing message: it raises the example's error found once."""
    error = _example_errors()[example]
    if error is not None:
        raise error.with_traceback(None)
    return _parser().parse(example)


def _explain(exc: LarkError, text: str) -> ParseError:
    found = _ACCOUNT_RE.match(text)
    account = found.group(1) if found else None
    kind = None
    if isinstance(exc, UnexpectedInput):
        try:
            kind = exc.match_examples(_replay_example, ERROR_EXAMPLES, use_accepts=True)
        except Exception:  # lark 1.3.1 fails formatting a debug message for some states
            kind = None
    position = exc.pos_in_stream if isinstance(exc, UnexpectedInput) else None
    token = None
    if kind == "unknown_word" and isinstance(exc, UnexpectedCharacters):
        start = exc.pos_in_stream or 0
        token = (text[start : start + 16].split(maxsplit=1) or [""])[0][:15]
    problem = problem_text(kind or "unreadable", token)
    return ParseError(
        "unparseable",
        f"{problem[0].upper()}{problem[1:]}. {FORMAT_HINT}",
        account,
        kind=kind or "unreadable",
        position=position,
        token=token,
    )


def problem_text(kind: str, token: str | None = None) -> str:
    """This parser's words for a kind of mistake, with the token quoted when known."""
    problem = ERROR_TEXT.get(kind, "не удалось прочитать показания")
    return f"{problem} «{token}»" if token else problem


def render_submission(submission: Submission) -> str:
    """The canonical text of a submission; ``parse_submission`` reads it back unchanged
    (each label before its value, never one after the last value)."""
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
