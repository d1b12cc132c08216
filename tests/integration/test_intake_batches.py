"""Messages that arrive together are decided together (one transaction, a few statements
for all of them), with exactly the outcomes and rows they get one after another — on both
back ends. Every test checks through the batch metric that they really were one batch."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import REGISTRY

from gateway.bootstrap import RENDERERS, Gateway
from gateway.domain.errors import ErrorCode
from gateway.domain.model import InboundMessage
from gateway.domain.outcome import Outcome, Status
from gateway.intake import Intake
from gateway.settings import Settings
from gateway.storage import tables as t
from tests.conftest import Clock, select_rows


class Batches:
    """How many batches, of how many messages, the intake decided since it was made."""

    def __init__(self) -> None:
        self._start = self._now()

    @staticmethod
    def _now() -> tuple[float, float, float]:
        def value(name: str) -> float:
            return REGISTRY.get_sample_value(name) or 0.0

        return (
            value("gateway_intake_batch_messages_count"),
            value("gateway_intake_batch_messages_sum"),
            value("gateway_intake_batch_splits_total"),
        )

    def since(self) -> tuple[int, int, int]:
        """(batches, messages, batches split)."""
        now = self._now()
        count, total, splits = (int(b - a) for a, b in zip(self._start, now, strict=True))
        return count, total, splits


@contextmanager
def batches() -> Iterator[Batches]:
    yield Batches()


def sms(gw: Gateway, text: str, sender: str, external_id: str | None = None) -> InboundMessage:
    return InboundMessage("sms", sender, text, gw.clock(), external_id)


async def test_messages_arriving_together_get_what_they_get_one_after_another(
    gw: Gateway, clock: Clock
) -> None:
    busy = "+79990000009"
    for i in range(9):  # nine messages in the last minute: the tenth is the last allowed
        await gw.intake(sms(gw, f"1234567890 x{i}", busy))
        clock.advance(seconds=1)
    together = [
        sms(gw, "1234567890 12100 6600", "+79120000001", "B1"),
        sms(gw, "1234567890 12100 6600", "+79120000001", "B1"),  # the same delivery again
        sms(gw, "1234567891 4600", "+79120000002", "B2"),
        sms(gw, "1234567891 4610", "+79120000003", "B3"),  # corrects B2, in the same batch
        sms(gw, "9999999999 1", "+79120000005", "B4"),
        sms(gw, "1234567892 121 99", busy, "B5"),
        sms(gw, "1234567892 122 100", busy, "B6"),  # the eleventh in a minute
        sms(gw, "0012345678 999960 311", "+79120000004", "B7"),  # a meter out of verification
    ]

    with batches() as seen:
        outcomes: list[Outcome] = await asyncio.gather(*(gw.intake(m) for m in together))

    assert seen.since() == (1, len(together), 0)
    assert [(o.status, o.error.code if o.error else None) for o in outcomes] == [
        (Status.ACCEPTED, None),
        (Status.ACCEPTED, None),
        (Status.ACCEPTED, None),
        (Status.ACCEPTED, None),
        (Status.REJECTED, ErrorCode.UNKNOWN_ACCOUNT),
        (Status.ACCEPTED, None),
        (Status.REJECTED, ErrorCode.RATE_LIMITED),
        (Status.REJECTED, ErrorCode.VERIFICATION_EXPIRED),
    ]
    assert outcomes[1].reply == outcomes[0].reply
    messages = await select_rows(gw.db, t.messages)
    assert [m["external_id"] for m in messages[9:]] == ["B1", "B2", "B3", "B4", "B5", "B6", "B7"]
    readings = await select_rows(gw.db, t.readings)
    by_message = {m["external_id"]: m["id"] for m in messages}
    stored = [(r["message_id"], r["value"], r["previous"], r["status"]) for r in readings]
    b2 = next(r for r in readings if r["message_id"] == by_message["B2"])
    b3 = next(r for r in readings if r["message_id"] == by_message["B3"])
    assert (b2["status"], b3["status"], b3["replaces_id"]) == ("replaced", "accepted", b2["id"])
    # Both validated against the earlier period, B3 a correction of B2.
    assert (b2["previous"], b3["previous"]) == (4521, 4521)
    assert outcomes[3].readings[0].previous == 4521
    assert sorted((m, str(v)) for m, v, _, _ in stored) == sorted(
        [
            (by_message["B1"], "12100"),
            (by_message["B1"], "6600"),
            (by_message["B2"], "4600"),
            (by_message["B3"], "4610"),
            (by_message["B5"], "121"),
            (by_message["B5"], "99"),
        ]
    )
    # One outbox row per accepted reading, B2's as a reading and B3's as its correction.
    outbox = await select_rows(gw.db, t.outbox)
    assert len(outbox) == 6


async def test_a_repeat_in_one_batch_is_a_duplicate_of_the_first(gw: Gateway) -> None:
    """The same readings twice in one batch (two senders): the second sees the first."""
    with batches() as seen:
        first, second = await asyncio.gather(
            gw.intake(sms(gw, "1234567891 4600", "+79120000002", "R1")),
            gw.intake(sms(gw, "1234567891 4600", "+79120000003", "R2")),
        )

    assert seen.since() == (1, 2, 0)
    assert (first.status, second.status) == (Status.ACCEPTED, Status.DUPLICATE)
    readings = await select_rows(gw.db, t.readings)
    assert [r["value"] for r in readings] == [4600]


async def test_one_message_failing_in_a_batch_fails_alone(
    gw: Gateway, settings: Settings, clock: Clock
) -> None:
    """A renderer that fails for one account: that message is recorded as failed (without
    its provider id, so the provider's retry is fresh); the others are stored once."""

    def fails_for_one(outcome: Outcome) -> str | None:
        if outcome.account == "1234567891":
            raise RuntimeError("the renderer broke")
        return RENDERERS["sms"](outcome)

    intake = Intake(gw.db, settings, clock, renderers={"sms": fails_for_one})
    together = [
        sms(gw, "1234567890 12100 6600", "+79120000001", "F1"),
        sms(gw, "1234567891 4600", "+79120000002", "F2"),
        sms(gw, "1234567892 121 99", "+79120000003", "F3"),
    ]

    with batches() as seen:
        outcomes = await asyncio.gather(*(intake(m) for m in together))

    assert seen.since() == (1, 3, 1)
    assert [o.status for o in outcomes] == [Status.ACCEPTED, Status.REJECTED, Status.ACCEPTED]
    assert outcomes[1].error is not None and outcomes[1].error.code == ErrorCode.INTERNAL
    messages = await select_rows(gw.db, t.messages)
    # The failure's row is written once the batch is done: after the others'.
    assert [(m["external_id"], m["status"], m["error_code"]) for m in messages] == [
        ("F1", "accepted", None),
        ("F3", "accepted", None),
        (None, "rejected", "internal"),
    ]
    readings = await select_rows(gw.db, t.readings)
    assert sorted(str(r["value"]) for r in readings) == sorted(["12100", "6600", "121", "99"])
    assert len(await select_rows(gw.db, t.outbox)) == 4
