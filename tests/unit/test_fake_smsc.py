"""The fake SMSC speaks SMPP 3.4 over real TCP: driven here by a raw asyncio ESME that uses
smpplib's PDU codec, so what the gateway's ESME will see is what these tests see."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import smpplib.client
import smpplib.command
import smpplib.consts as c
import smpplib.pdu

from tests.fake_smsc import (
    ESM_CLASS_RECEIPT,
    ESM_CLASS_UDHI,
    BindAttempt,
    FakeSmsc,
    ShortMessage,
    gsm_decode,
    gsm_encode,
)

READ_TIMEOUT = 2.0


def make(name: str, sequence: int, status: int = 0, **fields: Any) -> Any:
    pdu = smpplib.command.factory(name, sequence=sequence, status=status, **fields)
    pdu.sequence = sequence  # smpplib ignores the sequence= keyword
    return pdu


class Esme:
    """A bare ESME: writes and reads whole PDUs, nothing automatic."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.sequence = 0

    @classmethod
    async def connect(cls, smsc: FakeSmsc) -> Esme:
        reader, writer = await asyncio.open_connection(smsc.host, smsc.port)
        return cls(reader, writer)

    def next_sequence(self) -> int:
        self.sequence += 1
        return self.sequence

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send(self, name: str, status: int = 0, **fields: Any) -> int:
        sequence = fields.pop("sequence", None) or self.next_sequence()
        await self.write(make(name, sequence, status, **fields).generate())
        return sequence

    async def read(self, timeout: float = READ_TIMEOUT) -> Any | None:
        """The next PDU, parsed; None at EOF."""
        async with asyncio.timeout(timeout):
            try:
                head = await self.reader.readexactly(4)
                data = head + await self.reader.readexactly(int.from_bytes(head, "big") - 4)
            except (asyncio.IncompleteReadError, ConnectionResetError):
                return None
        pdu = smpplib.command.factory(smpplib.pdu.extract_command(data), sequence=0)
        pdu.parse(data)
        return pdu

    async def request(self, name: str, **fields: Any) -> Any:
        sequence = await self.send(name, **fields)
        resp = await self.read()
        assert resp is not None, f"connection closed instead of {name}_resp"
        assert resp.sequence == sequence
        return resp

    async def bind(
        self, command: str = "bind_transceiver", system_id: str = "gw", password: str = "secret"
    ) -> Any:
        resp = await self.request(
            command, system_id=system_id, password=password, system_type="meter", address_range=""
        )
        assert resp.command == f"{command}_resp"
        return resp

    async def submit(self, text: str = "hello", registered_delivery: int = 0) -> Any:
        resp = await self.request(
            "submit_sm",
            source_addr_ton=5,
            source_addr="Gateway",
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr="79120000001",
            data_coding=0,
            registered_delivery=registered_delivery,
            short_message=gsm_encode(text),
        )
        assert resp.command == "submit_sm_resp"
        return resp

    async def answer(self, pdu: Any, status: int = 0) -> None:
        await self.send(f"{pdu.command}_resp", status, sequence=pdu.sequence)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), 1)


@pytest.fixture
async def smsc() -> AsyncIterator[FakeSmsc]:
    async with FakeSmsc(system_id="gw", password="secret", resp_timeout=1.0) as fake:
        yield fake


@pytest.fixture
async def esme(smsc: FakeSmsc) -> AsyncIterator[Esme]:
    client = await Esme.connect(smsc)
    yield client
    await client.close()


async def test_listens_on_loopback_free_port(smsc: FakeSmsc) -> None:
    assert smsc.host == "127.0.0.1"
    assert smsc.port > 0


@pytest.mark.parametrize("command", ["bind_transceiver", "bind_receiver", "bind_transmitter"])
async def test_bind_accepted(smsc: FakeSmsc, esme: Esme, command: str) -> None:
    resp = await esme.bind(command)
    assert resp.status == c.SMPP_ESME_ROK
    assert resp.system_id == b"fake-smsc"
    assert smsc.binds == [BindAttempt(command, "gw", "meter", "")]
    assert smsc.bind_statuses == [0]
    session = await smsc.wait_bound(timeout=1)
    assert session.bind_command == command
    assert session.receiver == (command != "bind_transmitter")


async def test_wrong_password_refused(smsc: FakeSmsc, esme: Esme) -> None:
    resp = await esme.bind(password="wrong")
    assert resp.status == c.SMPP_ESME_RINVPASWD
    assert resp.system_id is None  # SMPP 3.4: no body with a non-zero status
    assert smsc.bind_statuses == [c.SMPP_ESME_RINVPASWD]
    # Still unbound: a submit on this session is refused.
    refused = await esme.submit()
    assert refused.status == c.SMPP_ESME_RINVBNDSTS
    with pytest.raises(TimeoutError):
        await smsc.wait_bound(timeout=0.1)


async def test_wrong_system_id_refused(smsc: FakeSmsc, esme: Esme) -> None:
    resp = await esme.bind(system_id="intruder")
    assert resp.status == c.SMPP_ESME_RINVSYSID


async def test_forced_bind_refusal_then_retry(smsc: FakeSmsc, esme: Esme) -> None:
    smsc.refuse_bind = c.SMPP_ESME_RBINDFAIL
    assert (await esme.bind()).status == c.SMPP_ESME_RBINDFAIL
    smsc.refuse_bind = None
    assert (await esme.bind()).status == c.SMPP_ESME_ROK
    assert (await esme.bind()).status == c.SMPP_ESME_RALYBND
    assert [b.command for b in await smsc.wait_binds(3, timeout=1)] == ["bind_transceiver"] * 3
    assert smsc.bind_statuses == [c.SMPP_ESME_RBINDFAIL, 0, c.SMPP_ESME_RALYBND]


async def test_enquire_link_both_ways(smsc: FakeSmsc, esme: Esme) -> None:
    await esme.bind()
    resp = await esme.request("enquire_link", sequence=41)
    assert (resp.command, resp.status, resp.sequence) == ("enquire_link_resp", 0, 41)
    assert smsc.enquire_links_received == 1

    asked = asyncio.create_task(smsc.enquire_link())
    link = await esme.read()
    assert link is not None and link.command == "enquire_link"
    await esme.answer(link)
    assert await asked == 0
    assert smsc.enquire_link_resps == [0]


async def test_unbind(smsc: FakeSmsc, esme: Esme) -> None:
    await esme.bind()
    resp = await esme.request("unbind")
    assert resp.command == "unbind_resp"
    assert await esme.read() is None  # then the SMSC hangs up
    assert smsc.unbinds == ["bind_transceiver"]
    await smsc.wait_until(lambda: not smsc.sessions, 1)


async def test_deliver_text_gsm_returns_client_status(smsc: FakeSmsc, esme: Esme) -> None:
    await esme.bind()
    sent = asyncio.create_task(smsc.deliver_text("+79120000001", "517480 12345"))
    pdu = await esme.read()
    assert pdu is not None and pdu.command == "deliver_sm"
    assert (pdu.source_addr, pdu.source_addr_ton, pdu.source_addr_npi) == (b"79120000001", 1, 1)
    assert pdu.destination_addr == b"4444"
    assert pdu.data_coding == 0
    assert pdu.short_message == b"517480 12345"
    await esme.answer(pdu, c.SMPP_ESME_RX_T_APPN)
    assert await sent == c.SMPP_ESME_RX_T_APPN
    assert smsc.deliver_resps == [(pdu.sequence, c.SMPP_ESME_RX_T_APPN)]
    assert smsc.delivered[0].status == c.SMPP_ESME_RX_T_APPN


async def test_deliver_text_ucs2(smsc: FakeSmsc, esme: Esme) -> None:
    await esme.bind()
    sent = asyncio.create_task(smsc.deliver_text("+79120000002", "Показания 4521"))
    pdu = await esme.read()
    assert pdu is not None
    assert pdu.data_coding == 8
    assert pdu.short_message.decode("utf-16-be") == "Показания 4521"
    await esme.answer(pdu)
    assert await sent == 0


async def test_deliver_times_out_without_resp(smsc: FakeSmsc, esme: Esme) -> None:
    smsc.resp_timeout = 0.2
    await esme.bind()
    async with asyncio.timeout(2):  # a hang fails here without the fake's own message
        with pytest.raises(TimeoutError, match="no response to deliver_sm"):
            await smsc.deliver_text("+79120000001", "no answer")
    pdu = await esme.read()
    assert pdu is not None and pdu.command == "deliver_sm"
    await esme.answer(pdu)  # late: logged, but nobody waits any more
    await smsc.wait_deliver_resps(1, timeout=1)


async def test_deliver_goes_to_receiver_not_transmitter(smsc: FakeSmsc) -> None:
    transmitter = await Esme.connect(smsc)
    receiver = await Esme.connect(smsc)
    try:
        await transmitter.bind("bind_transmitter")
        await receiver.bind("bind_receiver")
        for text in ("hi", "again"):  # every time, not by luck of a round robin
            sent = asyncio.create_task(smsc.deliver_text("+79120000001", text))
            pdu = await receiver.read()
            assert pdu is not None and pdu.command == "deliver_sm"
            assert pdu.short_message == text.encode()
            await receiver.answer(pdu)
            assert await sent == 0
        assert (await transmitter.submit()).status == 0
        assert (await receiver.submit()).status == c.SMPP_ESME_RINVBNDSTS
        with pytest.raises(TimeoutError):
            await transmitter.read(timeout=0.1)
    finally:
        await transmitter.close()
        await receiver.close()


async def test_forced_submit_answers_then_normal(smsc: FakeSmsc, esme: Esme) -> None:
    await esme.bind()
    smsc.answers.extend([c.SMPP_ESME_RTHROTTLED, c.SMPP_ESME_RMSGQFUL])
    statuses = []
    ids = []
    for n in range(4):
        resp = await esme.submit(f"reply {n}")
        statuses.append(resp.status)
        ids.append(resp.message_id)
    assert statuses == [c.SMPP_ESME_RTHROTTLED, c.SMPP_ESME_RMSGQFUL, 0, 0]
    assert ids == [None, None, b"smsc-1", b"smsc-2"]
    submitted = await smsc.wait_submitted(4, timeout=1)
    assert [m.status for m in submitted] == statuses
    assert submitted[2].destination == "79120000001"
    assert (submitted[2].dest_ton, submitted[2].source) == (1, "Gateway")
    assert smsc.texts() == ["reply 2", "reply 3"]


async def test_silent_submits(smsc: FakeSmsc, esme: Esme) -> None:
    await esme.bind()
    smsc.silent_submits = True
    await esme.send("submit_sm", destination_addr="79120000001", short_message=b"x")
    await smsc.wait_submitted(1, timeout=1)
    with pytest.raises(TimeoutError):
        await esme.read(timeout=0.2)
    smsc.silent_submits = False
    assert (await esme.submit()).message_id == b"smsc-1"


async def test_auto_receipt_after_submit(smsc: FakeSmsc, esme: Esme) -> None:
    smsc.auto_receipts = True
    await esme.bind()
    plain = await esme.submit("no receipt wanted")
    wanted = await esme.submit("receipt wanted", registered_delivery=1)
    assert (plain.message_id, wanted.message_id) == (b"smsc-1", b"smsc-2")
    receipt = await esme.read()
    assert receipt is not None and receipt.command == "deliver_sm"
    assert receipt.esm_class == ESM_CLASS_RECEIPT
    assert receipt.receipted_message_id == b"smsc-2"
    assert receipt.message_state == 2  # DELIVERED
    assert (receipt.source_addr, receipt.source_addr_ton) == (b"79120000001", 1)
    text = receipt.short_message.decode()
    assert text.startswith("id:smsc-2 sub:001 dlvrd:001 submit date:")
    assert text.endswith(" stat:DELIVRD err:000 text:")
    await esme.answer(receipt)
    assert await smsc.wait_deliver_resps(1, timeout=1) == [(receipt.sequence, 0)]
    with pytest.raises(TimeoutError):  # and none for the first submit
        await esme.read(timeout=0.2)


async def test_drop_closes_connection_without_unbind(smsc: FakeSmsc, esme: Esme) -> None:
    await esme.bind()
    await smsc.drop()
    assert await esme.read() is None
    assert smsc.sessions == []
    assert smsc.unbinds == []
    again = await Esme.connect(smsc)  # still listening
    try:
        assert (await again.bind()).status == 0
    finally:
        await again.close()


async def test_not_accepting_closes_new_connections(smsc: FakeSmsc, esme: Esme) -> None:
    await esme.bind()
    smsc.accepting = False
    refused = await Esme.connect(smsc)
    try:
        assert await refused.read() is None
    finally:
        await refused.close()
    assert smsc.refused_connections == 1
    assert len(smsc.sessions) == 1  # the existing session is untouched
    assert (await esme.request("enquire_link")).command == "enquire_link_resp"
    smsc.accepting = True
    later = await Esme.connect(smsc)
    try:
        assert (await later.bind()).status == 0
    finally:
        await later.close()


async def test_stop_and_start_on_the_same_port(smsc: FakeSmsc, esme: Esme) -> None:
    await esme.bind()
    port = smsc.port
    await smsc.stop()
    assert await esme.read() is None
    with pytest.raises(OSError):
        await asyncio.open_connection(smsc.host, port)
    await smsc.start()
    assert smsc.port == port
    back = await Esme.connect(smsc)
    try:
        assert (await back.bind()).status == 0
        assert len(smsc.binds) == 2
    finally:
        await back.close()


async def read_parts(esme: Esme, count: int) -> list[Any]:
    pdus = []
    for _ in range(count):
        pdu = await esme.read()
        assert pdu is not None and pdu.command == "deliver_sm"
        await esme.answer(pdu)
        pdus.append(pdu)
    return pdus


async def test_deliver_parts_8bit_udh_in_given_order(smsc: FakeSmsc, esme: Esme) -> None:
    await esme.bind()
    text = "".join(chr(ord("а") + n % 32) for n in range(150))  # 67 + 67 + 16 UCS-2 chars
    sent = asyncio.create_task(smsc.deliver_parts("+79120000003", text, order=[3, 1, 2], ref=0x42))
    pdus = await read_parts(esme, 3)
    assert await sent == [0, 0, 0]
    assert all(p.esm_class == ESM_CLASS_UDHI and p.data_coding == 8 for p in pdus)
    headers = [p.short_message[:6] for p in pdus]
    assert headers == [bytes([5, 0, 3, 0x42, 3, n]) for n in (3, 1, 2)]
    bodies = {p.short_message[5]: p.short_message[6:] for p in pdus}
    assert len(bodies[1]) == 134
    assert b"".join(bodies[n] for n in (1, 2, 3)).decode("utf-16-be") == text


async def test_deliver_parts_16bit_udh_gsm(smsc: FakeSmsc, esme: Esme) -> None:
    await esme.bind()
    text = "517480 day 12000 night 6500"
    sent = asyncio.create_task(
        smsc.deliver_parts(
            "+79120000001", text, udh16=True, ucs2=False, ref=0x1234, chars_per_part=10
        )
    )
    pdus = await read_parts(esme, 3)
    assert await sent == [0, 0, 0]
    assert [p.short_message[:7] for p in pdus] == [
        bytes([6, 8, 4, 0x12, 0x34, 3, n]) for n in (1, 2, 3)
    ]
    assert all(p.data_coding == 0 for p in pdus)
    assert gsm_decode(b"".join(p.short_message[7:] for p in pdus)) == text


async def test_submitted_parts_are_joined(smsc: FakeSmsc, esme: Esme) -> None:
    await esme.bind()
    for n, chunk in ((2, "world"), (1, "hello ")):
        udh = bytes([5, 0, 3, 7, 2, n])
        await esme.request(
            "submit_sm",
            destination_addr="79120000001",
            esm_class=ESM_CLASS_UDHI,
            data_coding=8,
            short_message=udh + chunk.encode("utf-16-be"),
        )
    first: ShortMessage = smsc.submitted[0]
    assert first.concat == (7, 2, 2)
    assert first.text == "world"
    assert smsc.texts() == ["hello world"]


async def test_garbage_gets_generic_nack_and_session_survives(smsc: FakeSmsc, esme: Esme) -> None:
    await esme.bind()
    link = make("enquire_link", 77).generate()
    unknown_command = link[:4] + bytes.fromhex("000000ff") + link[8:]
    await esme.write(unknown_command)
    nack = await esme.read()
    assert nack is not None
    assert (nack.command, nack.status, nack.sequence) == ("generic_nack", c.SMPP_ESME_RINVCMDID, 77)

    submit = make("submit_sm", 78, destination_addr="1", short_message=b"x").generate()
    broken = submit + b"\x04"  # half a TLV header after the body
    await esme.write(len(broken).to_bytes(4, "big") + broken[4:])
    nack = await esme.read()
    assert nack is not None and (nack.command, nack.sequence) == ("generic_nack", 78)
    assert nack.status != 0

    assert (await esme.request("enquire_link")).status == 0  # still serving
    assert smsc.errors == []


async def test_impossible_length_nacked_and_closed(smsc: FakeSmsc, esme: Esme) -> None:
    await esme.write(b"\x00\x00\x00\x03garbage")
    nack = await esme.read()
    assert nack is not None
    assert (nack.command, nack.status) == ("generic_nack", c.SMPP_ESME_RINVCMDLEN)
    assert await esme.read() is None


async def test_smsc_initiated_unbind(smsc: FakeSmsc, esme: Esme) -> None:
    await esme.bind()
    unbinding = asyncio.create_task(smsc.unbind())
    pdu = await esme.read()
    assert pdu is not None and pdu.command == "unbind"
    await esme.answer(pdu)
    await unbinding
    assert await esme.read() is None
    assert smsc.sessions == []


async def test_smpplib_client_interoperates(smsc: FakeSmsc) -> None:
    """smpplib's own (blocking) ESME client binds, submits and receives against the fake."""
    received: list[Any] = []
    client = smpplib.client.Client(smsc.host, smsc.port, timeout=2, allow_unknown_opt_params=True)

    def on_message(pdu: Any) -> None:  # smpplib calls it as handler(pdu=...)
        received.append(pdu)

    client.set_message_received_handler(on_message)

    def bind_and_submit() -> None:
        client.connect()
        client.bind_transceiver(system_id="gw", password="secret")
        client.send_message(
            source_addr="Gateway", destination_addr="79120000001", short_message=b"ok"
        )
        client.read_once()  # submit_sm_resp

    try:
        await asyncio.to_thread(bind_and_submit)
        [message] = await smsc.wait_submitted(1, timeout=1)
        assert (message.text, message.message_id) == ("ok", "smsc-1")
        delivering = asyncio.create_task(smsc.deliver_text("+79120000001", "12345"))
        await asyncio.to_thread(client.read_once)  # answers deliver_sm_resp itself
        assert await asyncio.wait_for(delivering, 2) == 0
        assert [p.short_message for p in received] == [b"12345"]
    finally:
        await asyncio.to_thread(client.disconnect)
