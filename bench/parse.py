"""Parses per second of the readings grammar, next to a plain regular-expression parser.

    .venv/bin/python -m bench.parse [--messages N] [--rounds R] [--seed S] [--strict]

Both parsers see the same realistic mix of one-line SMS texts (seeded, so every run
parses the same list) and must agree on every message -- same account, same Decimal
values with the same exponent, same messages refused -- before anything is timed.
Both start from :func:`parsers.normalize.normalize`, so the ratio compares the grammar
with a regular expression and nothing else; a ``normalize() only`` row shows that
shared floor. Each parser is timed over the whole list ``--rounds`` times, interleaved,
and the best round is reported (garbage collection stays on, as in the server).
"""

from __future__ import annotations

import argparse
import contextlib
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

from bench.common import code_version
from parsers import ParseError, parse_submission
from parsers.normalize import normalize

ROOT = Path(__file__).resolve().parent.parent
TARGET_PARSES_PER_SECOND = 20_000

# The unlabelled formats of parsers/readings.lark, as regular expressions over normalised
# text (the separator set is the grammar's SEP terminal, "-" and "=" included).
_SEP = r"(?:[\s;#:=\-]+,?|,(?![0-9]))[\s;#:=,\-]*"
_SPACED_VALUE = r"[0-9]+(?:[.,][0-9]+)?"  # "123,45" is a decimal comma here
_POINT_VALUE = r"[0-9]+(?:\.[0-9]+)?"  # commas separate values here
_SPACED = re.compile(rf"([0-9]+)((?:{_SEP}{_SPACED_VALUE})+)")
_COMMA_SEPARATED = re.compile(
    rf"([0-9]+),(?=[0-9])({_POINT_VALUE}(?:(?:{_SEP}|,(?=[0-9])){_POINT_VALUE})*)"
)
_SPACED_VALUES = re.compile(r"([0-9]+)(?:[.,]([0-9]+))?")
_POINT_VALUES = re.compile(r"([0-9]+)(?:\.([0-9]+))?")


class Parsed(NamedTuple):
    account: str
    values: tuple[Decimal, ...]


def regex_parse(text: str) -> Parsed:
    """What :func:`parsers.parse_submission` reads from an unlabelled message, with ``re``
    instead of lark; raises :class:`ParseError` where the grammar does."""
    canonical = normalize(text)
    match = _COMMA_SEPARATED.fullmatch(canonical)
    values_re = _POINT_VALUES
    if match is None:
        match = _SPACED.fullmatch(canonical)
        values_re = _SPACED_VALUES
        if match is None:
            raise ParseError("unparseable", "not a readings message")
    values = tuple(
        Decimal(f"{whole}.{fraction}") if fraction else Decimal(whole)
        for whole, fraction in values_re.findall(match[2])
    )
    return Parsed(match[1], values)


def normalize_only(text: str) -> str:
    return normalize(text)


# ----- the message mix ----------------------------------------------------------------------

# The formats named in the brief, verbatim; they are checked on top of the generated mix.
EXAMPLES: tuple[str, ...] = (
    "1234567890 12345",
    "1234567890 12345 6789",
    "л/с 1234567890: 05778 спасибо",
    "1234567890,123,45",
    "1234567890 123,45 67,8",
    "0012345678#05778#02542",
)

Template = Callable[[random.Random], str]


def _account(rng: random.Random) -> str:
    if rng.random() < 0.1:
        return f"00{rng.randrange(10**8):08d}"
    return str(rng.randrange(10**9, 10**10))


def _value(rng: random.Random, width: int = 5) -> int:
    return rng.randrange(10 ** (width - 1), 10**width)


# (weight, template): what customers actually type, most common first. Unlabelled values
# only (the formats the regex parser covers), no "-"/"=" separators and no "!".
TEMPLATES: tuple[tuple[int, Template], ...] = (
    (26, lambda r: f"{_account(r)} {_value(r)}"),
    (24, lambda r: f"{_account(r)} {_value(r)} {_value(r, 4)}"),
    (8, lambda r: f"л/с {_account(r)}: {_value(r, 4):05d} спасибо"),
    (6, lambda r: f"{_account(r)},{_value(r, 3)},{_value(r, 2)}"),
    (8, lambda r: f"{_account(r)} {_value(r, 3)},{_value(r, 2)} {_value(r, 2)},{r.randrange(10)}"),
    (5, lambda r: f"{_account(r)}#{_value(r, 4):05d}#{_value(r, 4):05d}"),
    (6, lambda r: f"Показания {_account(r)} {_value(r)}.{r.randrange(10)} {_value(r, 4)}"),
    (4, lambda r: f"{_account(r)}; {_value(r)}; {_value(r, 4)}"),
    (4, lambda r: f"ЛС {_account(r)} {_value(r)} {_value(r, 4)} спасибо"),
    (3, lambda r: f"  {_account(r)}\n{_value(r)}\n{_value(r, 4)}\n"),
    (2, lambda r: f"{_account(r)},{_value(r)}.{r.randrange(10)},{_value(r, 4)}"),
    (2, lambda r: f"пок. {_account(r)} {_value(r)} {_value(r, 4)}."),
    # Not readings messages: both parsers must refuse them.
    (1, lambda r: f"{_account(r)} за март {_value(r)}"),
    (1, lambda r: "Здравствуйте, показания передам завтра"),
)


def message_mix(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    weights = [w for w, _ in TEMPLATES]
    templates = [t for _, t in TEMPLATES]
    return [rng.choices(templates, weights)[0](rng) for _ in range(count)]


# ----- equivalence and timing ---------------------------------------------------------------


def _outcome(text: str) -> tuple[Parsed | None, Parsed | None]:
    """(grammar's reading, regex's reading) of ``text``; None where one refuses it."""
    grammar: Parsed | None = None
    regex: Parsed | None = None
    with contextlib.suppress(ParseError):
        submission = parse_submission(text)
        grammar = Parsed(submission.account, tuple(submission.values))
    with contextlib.suppress(ParseError):
        regex = regex_parse(text)
    return grammar, regex


def check_same_results(messages: Sequence[str]) -> tuple[list[str], list[str]]:
    """Assert both parsers agree on every message; returns (parsed texts, refused texts)."""
    parsed: list[str] = []
    refused: list[str] = []
    for text in dict.fromkeys(messages):
        grammar, regex = _outcome(text)
        if grammar is None or regex is None:
            assert grammar is None and regex is None, f"{text!r}: grammar {grammar}, regex {regex}"
            refused.append(text)
            continue
        assert grammar.account == regex.account, f"{text!r}: {grammar} != {regex}"
        assert len(grammar.values) == len(regex.values), f"{text!r}: {grammar} != {regex}"
        for g, r in zip(grammar.values, regex.values, strict=True):
            # Equal and spelled the same: Decimal("5.10") == Decimal("5.1") is not enough.
            assert g == r and g.as_tuple() == r.as_tuple(), f"{text!r}: {grammar} != {regex}"
        parsed.append(text)
    return parsed, refused


def _one_round(parse: Callable[[str], object], messages: Sequence[str]) -> float:
    """Seconds to parse every message once (a refusal costs what it costs in production)."""
    refused = 0
    start = time.perf_counter()
    for text in messages:
        try:
            parse(text)
        except ParseError:
            refused += 1
    return time.perf_counter() - start


@dataclass(frozen=True)
class Result:
    name: str
    messages: int
    best_seconds: float

    @property
    def per_second(self) -> float:
        return self.messages / self.best_seconds

    @property
    def micros(self) -> float:
        return self.best_seconds / self.messages * 1e6


Contender = tuple[str, Callable[[str], object], Sequence[str]]


def run(contenders: Sequence[Contender], rounds: int) -> list[Result]:
    best = [float("inf")] * len(contenders)
    for _ in range(rounds):  # interleaved, so drift in machine speed hits all alike
        for i, (_name, parse, messages) in enumerate(contenders):
            best[i] = min(best[i], _one_round(parse, messages))
    return [
        Result(name, len(messages), seconds)
        for (name, _, messages), seconds in zip(contenders, best, strict=True)
    ]


def main(argv: Sequence[str] | None = None) -> int:
    cli = argparse.ArgumentParser(
        prog="python -m bench.parse", description=(__doc__ or "").split("\n")[0]
    )
    cli.add_argument("--messages", type=int, default=20_000, help="messages per round")
    cli.add_argument("--rounds", type=int, default=5, help="timed rounds; the best counts")
    cli.add_argument("--seed", type=int, default=20261122, help="seed of the message mix")
    cli.add_argument("--strict", action="store_true", help="exit 1 when the target is missed")
    args = cli.parse_args(argv)
    if args.messages < 1 or args.rounds < 1:
        cli.error("--messages and --rounds must be positive")

    start = time.perf_counter()
    parse_submission(EXAMPLES[0])  # builds the LALR tables (cached for the process)
    build_ms = (time.perf_counter() - start) * 1e3

    messages = message_mix(args.messages, args.seed)
    parsed, refused = check_same_results([*EXAMPLES, *messages])
    refused_set = set(refused)
    readings_only = [m for m in messages if m not in refused_set]
    refused_only = [m for m in messages if m in refused_set]
    contenders: list[Contender] = [
        ("lark grammar (`parse_submission`)", parse_submission, messages),
        ("regex (bench/parse.py)", regex_parse, messages),
        ("`normalize()` only", normalize_only, messages),
        ("lark grammar, readings only", parse_submission, readings_only),
        ("lark grammar, refused texts only", parse_submission, refused_only),
    ]
    results = run([c for c in contenders if c[2]], args.rounds)
    grammar, regex = results[0], results[1]

    print(
        f"code {code_version(ROOT)}; Python {sys.version.split()[0]}; "
        f"{args.messages:,} messages per round "
        f"(seed {args.seed}; {len(refused_only) / len(messages):.1%} are not readings), "
        f"best of {args.rounds} rounds; first call (grammar build) {build_ms:.0f} ms; "
        f"both parsers agree on all {len(parsed):,} distinct parsed and "
        f"{len(refused):,} refused texts."
    )
    print()
    print("| parser | messages | parses/s | µs/parse |")
    print("|---|---:|---:|---:|")
    for r in results:
        print(f"| {r.name} | {r.messages:,} | {r.per_second:,.0f} | {r.micros:.1f} |")
    print()
    ratio = regex.per_second / grammar.per_second
    met = grammar.per_second >= TARGET_PARSES_PER_SECOND
    print(f"ratio regex/grammar (whole mix): {ratio:.1f}x")
    print(
        f"target: grammar >= {TARGET_PARSES_PER_SECOND:,} parses/s on the mix: "
        f"{'met' if met else 'MISSED'} ({grammar.per_second:,.0f} parses/s)"
    )
    return 1 if args.strict and not met else 0


if __name__ == "__main__":
    sys.exit(main())
