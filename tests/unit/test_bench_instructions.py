"""``bench.webhook --instructions``: callgrind's output file read by object file."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.webhook import callgrind_by_object, print_instructions

# What callgrind writes (its format 1): names compressed as "(n) name" on first use, by
# an ob= or a cob= line; a calls= line followed by the callee's inclusive cost, which is
# counted where the callee runs, not in the caller.
_OUT = """# callgrind format
version: 1
creator: callgrind-3.19.0
positions: line
events: Ir
summary: 1000

ob=(1) /usr/lib/libpython3.11.so.1.0
fl=(1) ceval.c
fn=(1) _PyEval_EvalFrameDefault
10 300
+2 100
cob=(2) /usr/lib/x86_64-linux-gnu/libsqlite3.so.0.8.6
cfi=(2) ???
cfn=(2) sqlite3_step
calls=4 0
* 450
-1 50

ob=(2)
fl=(2)
fn=(2)
0 400
cob=(3) /usr/lib/x86_64-linux-gnu/libc.so.6
cfn=(3) memcpy
calls=1 0
0 50

ob=(3)
fn=(3)
0 50
ob=(4) /venv/site-packages/_multidict.cpython-311-x86_64-linux-gnu.so
fn=(4) get
0 100
totals: 1000
"""


def test_each_function_counts_where_it_runs_and_calls_are_not_counted_twice(
    tmp_path: Path,
) -> None:
    out = tmp_path / "callgrind.out"
    out.write_text(_OUT)
    assert callgrind_by_object(out) == {
        "/usr/lib/libpython3.11.so.1.0": 450,
        "/usr/lib/x86_64-linux-gnu/libsqlite3.so.0.8.6": 400,
        "/usr/lib/x86_64-linux-gnu/libc.so.6": 50,
        "/venv/site-packages/_multidict.cpython-311-x86_64-linux-gnu.so": 100,
    }


def test_the_report_is_per_request_by_thread_and_library(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # One file per thread (--separate-threads=yes): the event loop's, then a worker's.
    (tmp_path / "callgrind.out-01").write_text(_OUT)
    (tmp_path / "callgrind.out-02").write_text(_OUT)
    print_instructions(tmp_path / "callgrind.out", requests=20)
    report = capsys.readouterr().out
    assert "| **all of the server's threads** | **100** | 100 % |" in report
    assert "| the event loop's thread | 50 | 50.0% |" in report
    assert "| thread 2 | 50 | 50.0% |" in report
    assert "| the Python interpreter | 45 | 45.0% |" in report
    assert "| SQLite | 40 | 40.0% |" in report
    assert "| the C library | 5 | 5.0% |" in report
    assert "| everything else | 10 | 10.0% |" in report
