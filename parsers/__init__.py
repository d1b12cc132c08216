"""Message grammar: text in, a frozen :class:`Submission` out, or one :class:`ParseError`.

Pure: stdlib and lark only, nothing of the rest of the project.
"""

from parsers.grammar import (
    ParseError,
    Submission,
    parse_submission,
    render_submission,
)

__all__ = ["ParseError", "Submission", "parse_submission", "render_submission"]
