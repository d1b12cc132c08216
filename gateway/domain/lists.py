"""What became of an elder's list: each data line's outcome, with its line number and
the line as written (the intake's ``handle_list``, reported by ``gateway list`` and the
email channel)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.domain.errors import ErrorCode
from gateway.domain.outcome import Outcome, Status


@dataclass(frozen=True, slots=True)
class ListLine:
    """One data line of a list: its 1-based line number, the line as written, what
    became of it."""

    line: int
    text: str
    outcome: Outcome

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "text": self.text, **self.outcome.to_json()}


@dataclass(frozen=True, slots=True)
class ListResult:
    """What became of a list: its audit row and each data line's outcome."""

    message_id: int
    lines: tuple[ListLine, ...]
    rate_limited: bool = False
    complete: bool = True

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(("accepted", "duplicate", "held", "rejected", "answered"), 0)
        for line in self.lines:
            counts[line.outcome.status.value] += 1
        return counts

    def summary(self) -> str:
        counts = self.counts()
        return (
            f"{len(self.lines)} lines: {counts['accepted']} accepted, "
            f"{counts['duplicate']} duplicates, {counts['held']} held, "
            f"{counts['rejected']} rejected"
        )

    def as_outcome(self) -> Outcome:
        """The list's audit row: its summary, and its lines in the outcome object."""
        return Outcome(
            Status.ANSWERED,
            None,
            self.summary(),
            extra={"lines": [line.to_json() for line in self.lines], "complete": self.complete},
        )

    @classmethod
    def from_json(cls, message_id: int, data: Mapping[str, Any]) -> ListResult:
        if data.get("error") and data["error"]["code"] == ErrorCode.RATE_LIMITED:
            return cls(message_id, (), rate_limited=True)
        lines = tuple(
            ListLine(item["line"], item["text"], Outcome.from_json(item))
            for item in data.get("lines", [])
        )
        return cls(message_id, lines, complete=bool(data.get("complete", True)))


# The kind of a list's report in the outbound queue.
REPORT_KIND = "list_report"


@dataclass(frozen=True, slots=True)
class ListReport:
    """What an elder is sent back about a list: a text naming the counts, the charge per
    account and every line that needs fixing, and a table of every line (CSV bytes)."""

    text: str
    table: bytes
    table_name: str


# Where a line of a list came from, for the report: ("показания.csv", 12), or None.
Locate = Callable[[int], "tuple[str, int] | None"]
