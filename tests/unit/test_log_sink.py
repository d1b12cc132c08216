"""The log sink writes a loop turn's lines in one write, in the order they were logged,
and never leaves a line waiting: not for another thread, nor after its loop closed."""

from __future__ import annotations

import asyncio
import io
import threading

from gateway.logging import LineSink


class Stream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def test_without_a_loop_each_line_is_written_at_once() -> None:
    stream = Stream()
    sink = LineSink(stream)

    sink.write("one")
    sink.write("two")

    assert stream.writes == ["one\n", "two\n"]


def test_a_turn_of_the_loop_writes_its_lines_together_after_it() -> None:
    stream = Stream()
    sink = LineSink(stream)

    async def turn() -> list[str]:
        sink.write("a")
        sink.write("b")
        sink.write("c")
        seen = list(stream.writes)
        await asyncio.sleep(0)
        return seen

    during = asyncio.run(turn())

    assert during == []
    assert stream.writes == ["a\nb\nc\n"]


def test_a_line_from_another_thread_is_written_at_once_after_those_waiting() -> None:
    stream = Stream()
    sink = LineSink(stream)

    async def main() -> None:
        sink.write("on the loop")
        worker = threading.Thread(target=sink.write, args=("from a thread",))
        worker.start()
        worker.join()
        assert stream.getvalue() == "on the loop\nfrom a thread\n"
        await asyncio.sleep(0)

    asyncio.run(main())

    assert stream.getvalue() == "on the loop\nfrom a thread\n"


def test_lines_of_a_loop_that_closed_before_writing_them_go_out_with_the_next() -> None:
    stream = Stream()
    sink = LineSink(stream)
    first = asyncio.new_event_loop()

    async def log_and_stop() -> None:
        # Logged in the loop's last turn: the write it schedules would run in the next.
        asyncio.get_running_loop().call_soon(sink.write, "last line of the first loop")

    first.run_until_complete(log_and_stop())
    first.close()
    assert stream.getvalue() == ""

    async def later() -> None:
        sink.write("first line of the next")
        await asyncio.sleep(0)

    asyncio.run(later())

    assert stream.getvalue() == "last line of the first loop\nfirst line of the next\n"


def test_flush_writes_what_waits() -> None:
    stream = Stream()
    sink = LineSink(stream)

    async def main() -> None:
        sink.write("pending")
        sink.flush()
        assert stream.getvalue() == "pending\n"

    asyncio.run(main())
