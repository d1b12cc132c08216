"""Worst-case messages: how long one message takes to decide, for the shapes that once
cost seconds to days of CPU, at Twilio's 1,600 characters and at the 64 KiB body limit.

    .venv/bin/python -m bench.worst [--repeat R] [--case NAME]...

Each case is what the intake decides before it touches storage: ``parse_message(text)``,
then for readings ``matching.assign`` against a six-register account (electricity day and
night, hot and cold water in the kitchen and the bath) and ``rules.check`` on the pairs.
Every case is timed ``--repeat`` times after one warm-up call (the grammar is built
once per process) and the best time is shown, with what the message got. The target:
every 1,600-character case decided in at most 50 ms. The 64 KiB rows show that a longer
text (the webhook accepts bodies up to 64 KiB) is refused before any work that grows with
it. A missed target exits 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

from bench.common import code_version
from gateway.domain import matching, rules
from gateway.domain.model import Account, Capacity, Register, Service, Zone
from parsers import MAX_TEXT, TOO_LONG_TEXT, Command, ParseError, parse_message

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 50.0
BODY_LIMIT = 64 * 1024  # GATEWAY_MAX_BODY_BYTES: no text of a request is longer
LENGTHS = (MAX_TEXT, BODY_LIMIT)
ACCOUNT = "1234567890"
TODAY = date(2026, 11, 20)
MAX_JUMP = {
    Service.ELECTRICITY: Decimal(1000),
    Service.HOT_WATER: Decimal(30),
    Service.COLD_WATER: Decimal(30),
}


def _register(id_: int, service: Service, zone: Zone, meter: str, digits: str) -> Register:
    return Register(
        id=id_,
        account=ACCOUNT,
        meter=meter,
        service=service,
        zone=zone,
        capacity=Capacity.parse(digits),
        verified_until=None,
        previous=None,
    )


# The largest account the issue names: six registers.
SIX_REGISTERS = Account(
    ACCOUNT,
    Decimal(0),
    (
        _register(1, Service.ELECTRICITY, Zone.DAY, "517480", "6.1"),
        _register(2, Service.ELECTRICITY, Zone.NIGHT, "517480", "6.1"),
        _register(3, Service.HOT_WATER, Zone.KITCHEN, "700301", "5.3"),
        _register(4, Service.HOT_WATER, Zone.BATH, "700302", "5.3"),
        _register(5, Service.COLD_WATER, Zone.KITCHEN, "800301", "5.3"),
        _register(6, Service.COLD_WATER, Zone.BATH, "800302", "5.3"),
    ),
)


def _fill(head: str, unit: str, length: int, tail: str = "") -> str:
    """``head``, ``unit`` as often as it fits, spaces, ``tail``: ``length`` characters."""
    body = length - len(head) - len(tail)
    units = body // len(unit)
    return head + unit * units + " " * (body - units * len(unit)) + tail


def _halves(head: str, digit: str, mark: str, length: int) -> str:
    """``head``, then digits, ``mark`` and digits again, each half as long: ``length``."""
    body = length - len(head) - len(mark)
    return head + digit * (body - body // 2) + mark + digit * (body // 2)


@dataclass(frozen=True)
class Shape:
    name: str
    build: Callable[[int], str]


A = ACCOUNT
# What once cost most: the account written twice before 3-digit groups made the thousands
# rule try every combination of joins (about 8 x 10^10 at 1,600 characters: weeks of CPU);
# a run of separators between two numbers made stripping the edges quadratic (seconds at
# 16 KiB); a value of over 4,300 digits broke int/str conversion (an internal error).
SHAPES: tuple[Shape, ...] = (
    Shape(
        "a normal message, padded with spaces", lambda n: _fill(f"{A} 12345 6789 12 7 3 4", " ", n)
    ),
    Shape("account + `1 ` pairs", lambda n: _fill(f"{A} ", "1 ", n, "1")),
    Shape("account, account again, ` 123` groups", lambda n: _fill(f"{A} {A}", " 123", n)),
    Shape("account + ` 12 345` pairs", lambda n: _fill(A, " 12 345", n, " 1")),
    Shape("account + ` 1 234 567` runs", lambda n: _fill(A, " 1 234 567", n, " 1")),
    Shape("account, spaces, a value", lambda n: _fill(A, " ", n, "5")),
    Shape("account, `;` run, a value", lambda n: _fill(A, ";", n, "5")),
    Shape("spaces only", lambda n: " " * n),
    Shape("digits only", lambda n: "1" * n),
    Shape("alternating digit/space", lambda n: _fill("", "1 ", n, "1")),
    Shape("account, five values, one long value", lambda n: _fill(f"{A} 1 2 3 4 5 ", "9", n)),
    Shape(
        "account, five values, one long decimal",
        lambda n: _halves(f"{A} 1 2 3 4 5 ", "1", ",", n),
    ),
    Shape("letters only", lambda n: "а" * n),
    Shape("account + letters + value", lambda n: _fill(f"{A} ", "абв", n, " 1")),
    Shape("account + `д` repeated + value", lambda n: _fill(f"{A} ", "д", n, "1")),
    Shape("account + `,` repeated + value", lambda n: _fill(A, ",", n, "1")),
    Shape("account + `#1` serial form", lambda n: _fill(A, "#1", n)),
    Shape("account + ` д 1` labels", lambda n: _fill(A, " д 1", n)),
    Shape("account + ` 1эд1` codes", lambda n: _fill(A, " 1эд1", n)),
    Shape("account + `1.` bad number", lambda n: _fill(f"{A} ", "1.", n, "1")),
    Shape("account + line breaks", lambda n: _fill(A, "\n1", n)),
    Shape("fillers + account + value", lambda n: _fill("", "добрый  день спасибо ", n, f" {A} 1")),
    Shape("full-width digits", lambda n: "１" * n),
    Shape("zero-width spaces between digits", lambda n: _fill(f"{A} ", "1\u200b", n)),
    Shape("command padded with spaces", lambda n: _fill("последние", " ", n, A)),
    Shape("account + signature", lambda n: _fill(f"{A} 12345 ", "Иванова ", n)),
)


def decide(text: str, account: Account = SIX_REGISTERS) -> str:
    """What the intake decides for ``text`` from ``account`` before storage, as a word."""
    try:
        parsed = parse_message(text)
    except ParseError as err:
        return f"{err.code} (too long)" if err.message == TOO_LONG_TEXT else err.code
    if isinstance(parsed, Command):
        return f"command {parsed.kind}"
    pairs = matching.assign(account, parsed.items)
    if isinstance(pairs, rules.Rejection):
        return str(pairs.code)
    checked = rules.check(pairs, today=TODAY, max_jump=MAX_JUMP)
    return str(checked.code) if isinstance(checked, rules.Rejection) else "accepted"


@dataclass(frozen=True)
class Timing:
    case: str
    length: int
    outcome: str
    best_ms: float


def time_case(shape: Shape, length: int, repeat: int) -> Timing:
    text = shape.build(length)
    assert len(text) == length, (shape.name, len(text), length)
    outcome = decide(text)  # warm-up: the grammar is built once per process
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        decide(text)
        best = min(best, time.perf_counter() - start)
    return Timing(shape.name, length, outcome, best * 1e3)


def main(argv: Sequence[str] | None = None) -> int:
    cli = argparse.ArgumentParser(
        prog="python -m bench.worst", description=(__doc__ or "").split("\n")[0]
    )
    cli.add_argument("--repeat", type=int, default=5, help="timed runs per case; the best counts")
    cli.add_argument("--case", action="append", default=[], help="only the cases named so")
    args = cli.parse_args(argv)
    if args.repeat < 1:
        cli.error("--repeat must be positive")
    shapes = [s for s in SHAPES if not args.case or s.name in args.case]
    if not shapes:
        cli.error(f"no such case; the cases are: {', '.join(s.name for s in SHAPES)}")

    print(
        f"code {code_version(ROOT)}; Python {sys.version.split()[0]}; parse_message + "
        f"matching.assign + rules.check against a six-register account, best of "
        f"{args.repeat} runs; target: at most {TARGET_MS:.0f} ms at {MAX_TEXT:,} characters."
    )
    print()
    print("| case | length | outcome | ms |")
    print("|---|---:|---|---:|")
    missed: list[Timing] = []
    for shape in shapes:
        for length in LENGTHS:
            timing = time_case(shape, length, args.repeat)
            if length <= MAX_TEXT and timing.best_ms > TARGET_MS:
                missed.append(timing)
            print(f"| {timing.case} | {length:,} | {timing.outcome} | {timing.best_ms:.2f} |")
    print()
    if missed:
        print(f"target MISSED by {len(missed)} case(s): " + "; ".join(t.case for t in missed))
        return 1
    print(f"target met: every {MAX_TEXT:,}-character case within {TARGET_MS:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
