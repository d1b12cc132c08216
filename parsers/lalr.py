"""A lean runner for a lark LALR grammar's own tables.

lark builds the LALR(1) tables and the terminals of ``readings.lark``; this module only
runs them, with less overhead per token than ``Lark.parse`` (no ``Token`` objects, no
line counting, no tree-builder wrappers): a message of a few tokens is read several times
faster. It reads exactly what lark reads, the same way:

- the lexer is lark's contextual lexer: in each parser state only the terminals that state
  accepts are tried, in lark's order (priority, then the longest possible match, then the
  pattern's length, then the name), and the first that matches wins;
- a rule's children are what lark's tree builder would give: terminals whose name starts
  with ``_`` left out, rules whose name starts with ``_`` (templates, ``x+``) inlined,
  ``?rule`` with one child replaced by it; then the action named like the rule is called.

Tokens reach the actions as ``(terminal name, text)`` pairs. :meth:`LalrRunner.parse`
returns None for any text outside the language: lark itself then explains the error.
A grammar this runner cannot mirror (ignored terminals, lexer callbacks, a lexer other
than the contextual one) is refused when the runner is built.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from lark import Lark
from lark.parsers.lalr_analysis import Shift

Tok = tuple[str, str]
Action = Callable[[list[Any]], Any]
# A state's step for a symbol: (_SHIFT, the state to go to), or a reduction: (symbols
# popped, the rule's name, what makes the rule's value of them: of the one value for a
# rule of one symbol, else of the list of values popped). After a reduction the step for
# the rule's name is the (_SHIFT, state) to go to.
Step = tuple[Any, ...]
Reduction = tuple[int, str, Callable[[Any], Any]]
_SHIFT = 0

_END = "$END"
# What a rule does with each symbol it pops: leave it out, keep it, or splice it (inlined).
_DROP, _KEEP, _SPLICE = 0, 1, 2


class LalrRunner:
    """Runs ``lark``'s LALR tables over a text, calling ``actions[rule name]`` for each
    rule reduced (every rule whose name does not start with ``_`` needs one)."""

    def __init__(self, lark: Lark, actions: Mapping[str, Action]) -> None:
        options = lark.options
        if options.parser != "lalr" or options.lexer != "contextual":
            raise ValueError("LalrRunner mirrors lark's LALR parser with the contextual lexer")
        if lark.ignore_tokens or options.lexer_callbacks or options.keep_all_tokens:
            raise ValueError("LalrRunner does not mirror ignored terminals or callbacks")
        if options.postlex is not None or lark.lexer_conf.use_bytes:
            raise ValueError("LalrRunner does not mirror a postlexer or bytes")
        conf = lark.parse_interactive("").parser_state.parse_conf
        if sorted(conf.states) != list(range(len(conf.states))):
            raise ValueError("LalrRunner expects lark's states numbered 0..n-1")
        self._start: int = conf.start_state
        self._end: int = conf.end_state
        terminals = {t.name: t for t in lark.terminals}
        flags = lark.lexer_conf.g_regex_flags
        # Per state (a list index): its steps by symbol, and a scanner of the terminals it
        # accepts, in lark's order.
        self._steps: list[dict[str, Step]] = []
        self._scanners: list[Callable[[str, int], re.Match[str] | None]] = []
        built: dict[frozenset[str], Callable[[str, int], re.Match[str] | None]] = {}
        reductions: dict[Any, Reduction] = {}
        for state in range(len(conf.states)):
            table = conf.states[state]
            steps: dict[str, Step] = {}
            for symbol, (action, arg) in table.items():
                if action is Shift:
                    steps[str(symbol)] = (_SHIFT, int(arg))
                else:
                    if arg not in reductions:
                        reductions[arg] = _reduction(arg, actions)
                    steps[str(symbol)] = reductions[arg]
            self._steps.append(steps)
            accepted = frozenset(name for name in table if name in terminals)
            if accepted not in built:
                ordered = sorted(
                    (terminals[name] for name in accepted),
                    key=lambda t: (
                        -t.priority,
                        -t.pattern.max_width,
                        -len(t.pattern.value),
                        t.name,
                    ),
                )
                pattern = "|".join(f"(?P<{t.name}>{t.pattern.to_regexp()})" for t in ordered)
                built[accepted] = re.compile(pattern or r"(?!)", flags).match
            self._scanners.append(built[accepted])

    def parse(self, text: str) -> Any:
        """The value of the start rule for ``text``; None when ``text`` does not parse."""
        steps, scanners, end = self._steps, self._scanners, self._end
        state = self._start
        states: list[int] = [state]
        values: list[Any] = []
        pos, size = 0, len(text)
        token: Tok | None = None
        try:
            while True:
                if pos < size:
                    found = scanners[state](text, pos)
                    if found is None:
                        return None
                    kind = found.lastgroup or ""
                    token = (kind, found.group())
                    pos = found.end()
                else:
                    kind, token = _END, None
                while True:  # reduce as long as the state says so, then shift the token
                    step = steps[state][kind]
                    count = step[0]
                    if count == _SHIFT:
                        if token is None:
                            return None
                        state = step[1]
                        states.append(state)
                        values.append(token)
                        break
                    if count == 1:  # most rules: one symbol, nothing to cut off the stacks
                        state = steps[states[-2]][step[1]][1]
                        states[-1] = state
                        values[-1] = step[2](values[-1])
                    else:
                        popped = values[-count:]
                        del states[-count:]
                        del values[-count:]
                        state = steps[states[-1]][step[1]][1]
                        states.append(state)
                        values.append(step[2](popped))
                    if state == end:  # only ever reached on the end of the text
                        return values[-1]
        except KeyError:  # no step for this symbol in this state: not in the language
            # (A KeyError raised by an action lands here too: lark's reading of the text
            # then calls the same action, and the error surfaces there.)
            return None


def _reduction(rule: Any, actions: Mapping[str, Action]) -> Reduction:
    """How to reduce ``rule``, as lark's tree builder would: its children without the
    filtered terminals and with inlined rules spliced in, then its action. A rule of one
    symbol is reduced from that symbol's value alone, any other from the list popped."""
    modes = tuple(
        (_DROP if symbol.filter_out else _KEEP)
        if symbol.is_term
        else (_SPLICE if symbol.name.startswith("_") else _KEEP)
        for symbol in rule.expansion
    )
    if not modes:
        raise ValueError("LalrRunner does not reduce empty rules")
    name = str(rule.origin.name)
    if len(modes) == 1:
        return 1, name, _of_one(modes[0], name, rule, actions)
    collect = _collector(modes)
    if name.startswith("_"):
        reduce = collect
    else:
        action = actions.get(str(rule.alias or name))
        if rule.options.expand1:
            reduce = _expand_single(collect, action)
        elif action is None:
            raise ValueError(f"no action for the rule {name!r}")
        elif collect is _as_is:
            reduce = action
        else:
            reduce = _then(collect, action)
    return len(modes), name, reduce


def _of_one(mode: int, name: str, rule: Any, actions: Mapping[str, Action]) -> Callable[[Any], Any]:
    """The reduction of a rule of one symbol, from that symbol's value."""
    if mode == _DROP:
        raise ValueError(f"the rule {name!r} has nothing but a filtered terminal")
    if name.startswith("_"):  # inlined: its children
        return _listed if mode == _KEEP else _same
    if rule.options.expand1:  # ?rule with one child: the child itself
        return _same if mode == _KEEP else _expand_single(_as_is, actions.get(name))
    action = actions.get(str(rule.alias or name))
    if action is None:
        raise ValueError(f"no action for the rule {name!r}")
    if mode == _SPLICE:  # item: _labelled{…}: the inlined rule's children
        return action
    return lambda value: action([value])


def _listed(value: Any) -> list[Any]:
    return [value]


def _same(value: Any) -> Any:
    return value


def _collector(modes: tuple[int, ...]) -> Callable[[list[Any]], list[Any]]:
    """What makes the children of the popped values."""
    if all(mode == _KEEP for mode in modes):
        return _as_is
    if modes == (_KEEP, _SPLICE):  # spaced: account __spaced_plus_0
        return _keep_then_splice
    if modes[0] == _SPLICE and all(mode == _KEEP for mode in modes[1:]):
        # One inlined rule, or x+ as lark writes it (__x_plus: __x_plus item): the inlined
        # list grows in place, as in lark's tree builder, so a long message costs linear
        # time.
        def grow(popped: list[Any]) -> list[Any]:
            children: list[Any] = popped[0]
            children.extend(popped[1:])
            return children

        return grow

    def collect(popped: list[Any]) -> list[Any]:
        children: list[Any] = []
        for mode, value in zip(modes, popped, strict=True):
            if mode == _KEEP:
                children.append(value)
            elif mode == _SPLICE:
                children.extend(value)
        return children

    return collect


def _keep_then_splice(popped: list[Any]) -> list[Any]:
    return [popped[0], *popped[1]]


def _as_is(popped: list[Any]) -> list[Any]:
    return popped


def _then(collect: Callable[[list[Any]], list[Any]], action: Action) -> Callable[[list[Any]], Any]:
    return lambda popped: action(collect(popped))


def _expand_single(
    collect: Callable[[list[Any]], list[Any]], action: Action | None
) -> Callable[[list[Any]], Any]:
    """``?rule``: one child is the value itself; more go to the rule's action."""

    def reduce(popped: list[Any]) -> Any:
        children = collect(popped)
        if len(children) == 1:
            return children[0]
        if action is None:
            raise ValueError("no action for a ?rule with several children")
        return action(children)

    return reduce
