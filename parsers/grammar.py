"""The lark LALR parser for readings messages and its transformer."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from importlib import resources

from lark import Lark, Token, Transformer
from lark.exceptions import LarkError

from parsers.normalize import normalize

FORMAT_HINT = "Формат: ЛС показание, напр. 1234567890 12345 или 1234567890 12345 6789 (день ночь)"


@dataclass(frozen=True, slots=True)
class Submission:
    """One account's readings as the sender wrote them, in the order written."""

    account: str
    values: tuple[Decimal, ...]


class ParseError(ValueError):
    """The text is not a readings message. Retrying the same text cannot help."""

    retryable = False

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _ToSubmission(Transformer[Token, Submission]):
    def integer(self, items: list[Token]) -> Decimal:
        return Decimal(items[0])

    def point_decimal(self, items: list[Token]) -> Decimal:
        return Decimal(f"{items[0]}.{items[1]}")

    comma_decimal = point_decimal

    def account(self, items: list[Token]) -> str:
        return str(items[0])

    def spaced(self, items: list[str | Decimal]) -> Submission:
        account, *values = items
        assert isinstance(account, str)
        return Submission(account, tuple(v for v in values if isinstance(v, Decimal)))

    comma_separated = spaced


@cache
def _parser() -> Lark:
    grammar = resources.files("parsers").joinpath("readings.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", lexer="contextual", transformer=_ToSubmission())


def parse_submission(text: str) -> Submission:
    """Parse one message. Raises :class:`ParseError` (code ``unparseable``) on anything else."""
    canonical = normalize(text)
    if not canonical:
        raise ParseError("unparseable", f"Пустое сообщение. {FORMAT_HINT}")
    try:
        result = _parser().parse(canonical)
    except LarkError:
        raise ParseError("unparseable", f"Не удалось прочитать показания. {FORMAT_HINT}") from None
    assert isinstance(result, Submission)
    return result


def render_submission(submission: Submission) -> str:
    """The canonical text of a submission; ``parse_submission`` reads it back unchanged."""
    return " ".join([submission.account, *(format(v, "f") for v in submission.values)])
