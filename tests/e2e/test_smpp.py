"""SMS over SMPP end to end, on SQLite and PostgreSQL: ``gateway serve``'s app (the SMPP
link, the outbound senders) bound to a loopback SMSC simulator speaking real SMPP 3.4
(tests/fake_smsc.py), messages through the intake, replies back as submit_sm."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from gateway.bootstrap import Gateway, gateway
from gateway.domain.store import Outbound
from gateway.settings import Settings
from gateway.storage import tables as t
from parsers import parse_message
from tests.conftest import Clock, load_registry, loopback, select_rows
from tests.fake_smsc import FakeSmsc
from tests.unit.test_grammar import REAL_WORLD_MESSAGES

PHONE = "79120000001"  # the registry phone of 1234567890, as the SMSC writes it
SHORT = "4444"


@dataclass
class Link:
    gw: Gateway
    smsc: FakeSmsc

    async def messages(self) -> list[dict[str, object]]:
        return [r for r in await select_rows(self.gw.db, t.messages) if r["channel"] == "smpp"]

    async def outbound(self) -> list[dict[str, object]]:
        return await select_rows(self.gw.db, t.outbound)

    async def replies(self, count: int, timeout: float = 10.0) -> list[str]:
        """The texts the SMSC got (segments joined), once there are ``count``."""
        deadline = asyncio.get_running_loop().time() + timeout
        while len(texts := self.smsc.texts()) < count:
            assert asyncio.get_running_loop().time() < deadline, texts
            await asyncio.sleep(0.05)
        return texts

    async def settled(self, kind: str = "reply") -> dict[str, object]:
        """The outbound row of ``kind`` once its sender is done with it."""
        for _ in range(100):
            rows = [r for r in await self.outbound() if r["kind"] == kind]
            if rows and rows[0]["status"] != "queued":
                return rows[0]
            await asyncio.sleep(0.05)
        raise AssertionError(f"no settled {kind} row: {await self.outbound()}")


def smpp_settings(settings: Settings, smsc: FakeSmsc) -> Settings:
    return replace(
        settings,
        smpp_host=smsc.host,
        smpp_port=smsc.port,
        smpp_system_id="gw",
        smpp_password="secret",
        smpp_source_addr=SHORT,
        smpp_enquire_link_interval=1.0,
        smpp_part_timeout=600.0,
        relay_interval=0.2,
    )


@pytest.fixture
async def smsc() -> AsyncIterator[FakeSmsc]:
    async with FakeSmsc(system_id="gw", password="secret", service_number=SHORT) as fake:
        yield fake


@pytest.fixture
async def link(
    settings: Settings, smsc: FakeSmsc, clock: Clock, tmp_path: Path
) -> AsyncIterator[Link]:
    async with gateway(smpp_settings(settings, smsc), clock) as gw:
        await load_registry(gw, tmp_path)
        async with loopback(gw.web_app()):
            await smsc.wait_bound()
            yield Link(gw, smsc)


async def test_a_gsm_message_is_stored_and_answered_by_submit_sm(link: Link) -> None:
    status = await link.smsc.deliver_text(PHONE, "1234567890 12345 6789")

    assert status == 0  # ESME_ROK, sent once the message was stored
    assert await link.replies(1) == [
        "Принято, ЛС 1234567890: день 12345, ночь 6789. "
        "Предварительно к оплате 3443,05 ₽ (с долгом 100,00 ₽)."
    ]
    first, second = link.smsc.submitted  # 105 characters: two UCS-2 segments with a UDH
    assert (first.destination, first.source, first.data_coding) == (PHONE, SHORT, 8)
    assert first.registered_delivery == 1 and first.esm_class & 0x40
    assert first.concat is not None and first.concat[1:] == (2, 1)
    (row,) = await link.messages()
    assert row["sender"] == "+" + PHONE and row["status"] == "accepted"
    queued = await link.settled()
    assert (queued["channel"], queued["message_id"], queued["status"]) == (
        "smpp",
        row["id"],
        "sent",
    )
    assert queued["provider_id"] == f"{first.message_id} {second.message_id}"


async def test_a_ucs2_cyrillic_message_reads_the_same(link: Link) -> None:
    assert await link.smsc.deliver_text(PHONE, "1234567890 день 12345 ночь 6789") == 0

    await link.replies(1)
    (row,) = await link.messages()
    assert row["text"] == "1234567890 день 12345 ночь 6789"
    assert row["status"] == "accepted"


async def test_a_three_part_cyrillic_message_out_of_order_is_one_message(link: Link) -> None:
    text = "1234567890 день 12345 ночь 6789 " + "п" * 150  # three UCS-2 parts
    statuses = await link.smsc.deliver_parts(PHONE, text, order=[3, 1, 2])

    assert statuses == [0, 0, 0]  # each part acknowledged once kept
    await link.replies(1)
    (row,) = await link.messages()
    assert row["text"] == text
    parts = await select_rows(link.gw.db, t.smpp_parts)
    assert len(parts) == 3 and all(p["handled_at"] is not None for p in parts)


async def test_a_part_delivered_again_is_kept_once(link: Link) -> None:
    text = "1234567891 4600 " + "ы" * 100  # two UCS-2 parts
    assert await link.smsc.deliver_parts(PHONE, text, order=[1, 1, 2], ref=7) == [0, 0, 0]

    await link.replies(1)
    assert len(await link.messages()) == 1
    assert len(await select_rows(link.gw.db, t.smpp_parts)) == 2


async def test_message_payload_carries_a_long_message(link: Link) -> None:
    text = "1234567890 12345 6789 " + "x" * 300  # over 254 octets: message_payload
    assert await link.smsc.deliver_text(PHONE, text) == 0

    await link.replies(1)
    (row,) = await link.messages()
    assert row["text"] == text


async def test_the_same_message_delivered_again_is_handled_once(link: Link) -> None:
    assert await link.smsc.deliver_text(PHONE, "1234567890 12345 6789") == 0
    await link.replies(1)
    # The SMSC missed our deliver_sm_resp and delivers the message again.
    assert await link.smsc.deliver_text(PHONE, "1234567890 12345 6789") == 0
    await asyncio.sleep(0.5)

    assert len(await link.messages()) == 1
    assert len(link.smsc.texts()) == 1


async def test_throttled_submits_back_off_and_get_through(link: Link) -> None:
    link.smsc.answers.extend([0x58, 0x14])  # ESME_RTHROTTLED, then ESME_RMSGQFUL

    assert await link.smsc.deliver_text(PHONE, "1234567890 12345 6789") == 0

    await link.replies(1)
    submitted = link.smsc.submitted
    assert [s.status for s in submitted] == [0x58, 0x14, 0, 0]  # the first segment, thrice
    queued = await link.settled()
    assert queued["status"] == "sent" and queued["attempts"] == 1


async def test_a_refused_submit_fails_the_row_with_the_status_name(link: Link) -> None:
    link.smsc.answers.append(0x0B)  # ESME_RINVDSTADR

    await link.smsc.deliver_text(PHONE, "1234567890 12345 6789")
    queued = await link.settled()
    assert queued["status"] == "failed" and queued["last_error"] == "ESME_RINVDSTADR"


async def test_delivery_receipts_update_the_row(link: Link) -> None:
    link.smsc.auto_receipts = True
    link.smsc.auto_receipt_stat = "UNDELIV"

    await link.smsc.deliver_text(PHONE, "1234567890 12345 6789")
    await link.replies(1)
    for _ in range(100):
        queued = await link.settled()
        if queued["receipt"] is not None:
            break
        await asyncio.sleep(0.05)
    assert queued["receipt"] == "UNDELIV" and queued["receipt_at"] is not None


async def test_the_link_comes_back_after_the_smsc_drops_it(link: Link) -> None:
    await link.smsc.drop()

    await link.smsc.wait_binds(2, timeout=10)
    await link.smsc.wait_bound()
    assert await link.smsc.deliver_text(PHONE, "1234567890 12345 6789") == 0
    await link.replies(1)


async def test_stop_and_start_from_a_phone(link: Link, clock: Clock) -> None:
    assert await link.smsc.deliver_text(PHONE, "СТОП") == 0
    (confirmed,) = await link.replies(1)
    assert "отключены" in confirmed
    assert await link.smsc.deliver_text(PHONE, "стоп") == 0  # again: recorded, not answered
    await asyncio.sleep(0.3)
    assert len(link.smsc.texts()) == 1
    assert [r["phone"] for r in await select_rows(link.gw.db, t.opt_outs)] == ["+" + PHONE]

    # A notification to that phone is held back; a direct reply is not.
    reminder_row = Outbound("smpp", "+" + PHONE, "Напоминание", "reminder")
    await link.gw.db.run(lambda uow: uow.outbound.queue(reminder_row, clock()))
    link.gw.outbound.nudge("smpp")
    assert await link.smsc.deliver_text(PHONE, "1234567890 12345 6789") == 0
    assert (await link.replies(2))[1].startswith("Принято")  # a direct reply goes out
    reminder = await link.settled("reminder")
    assert reminder["status"] == "failed" and "СТОП" in str(reminder["last_error"])

    assert await link.smsc.deliver_text(PHONE, "СТАРТ") == 0
    assert "снова включены" in (await link.replies(3))[2]
    assert await select_rows(link.gw.db, t.opt_outs) == []


async def test_a_refused_bind_is_logged_once_and_retried_slowly(
    settings: Settings, clock: Clock
) -> None:
    async with FakeSmsc(system_id="gw", password="other") as smsc:
        configured = replace(smpp_settings(settings, smsc), smpp_password="secret")
        async with gateway(configured, clock) as gw, loopback(gw.web_app()):
            await smsc.wait_binds(1)
            await asyncio.sleep(0.5)
            assert len(smsc.binds) == 1  # not hammered: the next try is a minute away
            assert smsc.bind_statuses == [0x0E]


# A sample of the grammar's table, through SMPP: the adapter must not change what a message
# means. Each text is delivered (GSM or UCS-2, as a phone would send it), and the text the
# gateway stored must read exactly as the table says.
SAMPLE = REAL_WORLD_MESSAGES[::9]


async def test_the_grammar_table_reads_the_same_through_smpp(link: Link) -> None:
    for text, _expected in SAMPLE:
        assert await link.smsc.deliver_text(PHONE, text) == 0
    rows = await link.messages()
    stored = [r["text"] for r in rows]
    assert len(stored) == len(SAMPLE)
    for (text, _expected), got in zip(SAMPLE, stored, strict=True):
        assert _meaning(got) == _meaning(text), text


def _meaning(text: str) -> object:
    try:
        return parse_message(text)
    except ValueError as exc:
        return type(exc).__name__, str(exc)


async def test_not_stored_means_not_acknowledged_and_the_redelivery_is_handled_once(
    settings: Settings, smsc: FakeSmsc, clock: Clock, tmp_path: Path
) -> None:
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("the outage is SQLite locked by another process")
    path = settings.database_url.split("///", 1)[1]
    configured = replace(smpp_settings(settings, smsc), database_timeout=0.3)
    smsc.resp_timeout = 3.0
    async with gateway(configured, clock) as gw:
        await load_registry(gw, tmp_path)
        async with loopback(gw.web_app()):
            await smsc.wait_bound()
            other = sqlite3.connect(path, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")  # the database cannot take a write
            try:
                with pytest.raises(TimeoutError):  # no deliver_sm_resp: withheld
                    await smsc.deliver_text(PHONE, "1234567890 12345 6789")
            finally:
                other.execute("ROLLBACK")
                other.close()
            # The SMSC delivers it again; now it is stored, acknowledged and answered.
            assert await smsc.deliver_text(PHONE, "1234567890 12345 6789") == 0
            link = Link(gw, smsc)
            assert len(await link.replies(1)) == 1
            assert len(await link.messages()) == 1


async def test_a_message_delivered_again_after_a_restart_is_handled_once(
    settings: Settings, smsc: FakeSmsc, clock: Clock, tmp_path: Path
) -> None:
    configured = smpp_settings(settings, smsc)
    async with gateway(configured, clock) as gw:
        await load_registry(gw, tmp_path)
        async with loopback(gw.web_app()):
            await smsc.wait_bound()
            assert await smsc.deliver_text(PHONE, "1234567890 12345 6789") == 0
            await Link(gw, smsc).replies(1)
    # The gateway was stopped before the SMSC saw the answer; the next process gets the
    # same message again.
    clock.advance(seconds=20)
    async with gateway(configured, clock) as gw, loopback(gw.web_app()):
        await smsc.wait_bound()
        assert await smsc.deliver_text(PHONE, "1234567890 12345 6789") == 0
        await asyncio.sleep(0.5)
        link = Link(gw, smsc)
        assert len(await link.messages()) == 1
        assert len(smsc.texts()) == 1


@pytest.mark.parametrize("form", ["udh16", "sar"])
async def test_parts_with_a_16_bit_reference_or_sar_tlvs_are_one_message(
    link: Link, form: str
) -> None:
    text = "1234567890 день 12345 ночь 6789 " + "ж" * 100
    statuses = await link.smsc.deliver_parts(
        PHONE, text, order=[2, 1], udh16=form == "udh16", sar=form == "sar", ref=0x1234
    )

    assert statuses == [0, 0]
    await link.replies(1)
    (row,) = await link.messages()
    assert row["text"] == text and row["status"] == "accepted"


async def test_a_message_whose_parts_stopped_coming_is_recorded_with_what_came(
    link: Link, clock: Clock
) -> None:
    text = "1234567891 4600 " + "ы" * 150  # three parts; the second never comes
    assert await link.smsc.deliver_parts(PHONE, text, order=[1, 3]) == [0, 0]
    assert link.gw.smpp is not None
    assert await link.gw.smpp.give_up() == 0  # not yet: it may still come

    clock.advance(seconds=601)
    assert await link.gw.smpp.give_up() == 1

    (row,) = await link.messages()
    assert " … " in str(row["text"]) and str(row["text"]).startswith("1234567891 4600")
    await link.replies(1)  # answered like any message
    assert await link.gw.smpp.give_up() == 0


async def test_a_review_notice_goes_out_over_smpp_and_keep_alives_flow(
    link: Link, clock: Clock
) -> None:
    notice = Outbound("smpp", "+" + PHONE, "Показания ЛС 1234567890 приняты.", "review_approved")
    await link.gw.db.run(lambda uow: uow.outbound.queue(notice, clock()))
    link.gw.outbound.nudge("smpp")

    assert await link.replies(1) == ["Показания ЛС 1234567890 приняты."]
    await link.smsc.wait_until(lambda: link.smsc.enquire_links_received >= 1, timeout=5)


async def test_shutdown_unbinds(settings: Settings, smsc: FakeSmsc, clock: Clock) -> None:
    async with gateway(smpp_settings(settings, smsc), clock) as gw, loopback(gw.web_app()):
        await smsc.wait_bound()
    await smsc.wait_until(lambda: len(smsc.unbinds) == 1, timeout=5)


async def test_no_more_submits_await_an_answer_than_the_window(
    settings: Settings, smsc: FakeSmsc, clock: Clock
) -> None:
    smsc.silent_submits = True  # the SMSC answers nothing
    configured = replace(smpp_settings(settings, smsc), smpp_window=2)
    async with gateway(configured, clock) as gw, loopback(gw.web_app()):
        await smsc.wait_bound()
        for i in range(5):
            notice = Outbound("smpp", f"+7912000000{i}", f"Уведомление {i}", "review_approved")
            await gw.db.run(lambda uow, notice=notice: uow.outbound.queue(notice, clock()))
        gw.outbound.nudge("smpp")
        await smsc.wait_submitted(2)
        await asyncio.sleep(0.5)
        assert len(smsc.submitted) == 2
