"""JSON text as the gateway writes it: a stored outcome, an outbox payload, a log line.

Exactly ``json.dumps(value, ensure_ascii=False, default=default)``, without the work
``json.dumps`` repeats for every value: it builds a ``JSONEncoder`` (or reuses the
default one), then a new C encoder with its nine settings parsed, a dictionary to detect
cycles and a closure for floats. Here the C encoder is made once. It does not look for
cycles: every value the gateway encodes is a tree it has just built (a cycle would end
in ``RecursionError`` instead of ``ValueError``). A test holds the text equal to
``json.dumps``'s for any JSON value."""

from __future__ import annotations

import json
from collections.abc import Callable
from json import encoder as _encoder
from typing import Any

Encode = Callable[[Any], str]


def json_encoder(default: Callable[[Any], Any] | None = None) -> Encode:
    """``lambda value: json.dumps(value, ensure_ascii=False, default=default)``.
    ``default``: what stands for a value JSON has no form for (by default, TypeError)."""
    fallback = default or json.JSONEncoder().default
    make = getattr(_encoder, "c_make_encoder", None)  # not in typeshed's stubs
    if make is None:  # a Python without the C accelerator
        return json.JSONEncoder(ensure_ascii=False, default=fallback).encode
    chunks = make(
        None,  # no cycle check
        fallback,
        _encoder.encode_basestring,  # ensure_ascii=False
        None,  # indent
        ": ",
        ", ",
        False,  # sort_keys
        False,  # skipkeys
        True,  # allow_nan
    )

    def encode(value: Any) -> str:
        return "".join(chunks(value, 0))

    return encode
