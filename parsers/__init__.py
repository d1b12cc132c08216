"""Message grammar: text in, a frozen :class:`Submission` (or a :class:`Command`) out,
or one :class:`ParseError`. Pure: stdlib and lark only, nothing of the rest of the project.
"""

from parsers.grammar import (
    HELP_TEXT,
    MAX_TEXT,
    TOO_LONG_TEXT,
    Command,
    Label,
    ParseError,
    Submission,
    Value,
    parse_command,
    parse_message,
    parse_submission,
    problem_text,
    render_submission,
)
from parsers.lists import ListLine, parse_list

__all__ = [
    "HELP_TEXT",
    "MAX_TEXT",
    "TOO_LONG_TEXT",
    "Command",
    "Label",
    "ListLine",
    "ParseError",
    "Submission",
    "Value",
    "parse_command",
    "parse_list",
    "parse_message",
    "parse_submission",
    "problem_text",
    "render_submission",
]
