"""channels.smpp_pdu: smpplib behind a typed face (frames, PDUs, statuses), the texts of
inbound short messages and receipts, and the splitting of outbound texts."""

from __future__ import annotations

import asyncio
import math
import struct
from contextlib import suppress
from typing import Any

import pytest
import smpplib.consts
from hypothesis import given
from hypothesis import strategies as st

from channels.smpp_pdu import (
    ESME_RINVCMDID,
    ESME_RINVPASWD,
    ESME_RMSGQFUL,
    ESME_ROK,
    ESME_RSYSERR,
    ESME_RTHROTTLED,
    ESME_RX_T_APPN,
    Part,
    Pdu,
    PduError,
    Receipt,
    decode,
    decode_text,
    encode,
    gsm_encodable,
    parse_receipt_text,
    read_deliver,
    read_frame,
    segments,
    status_name,
)

GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = "\f^{}\\[~]|€"


def frame_with(frame: bytes, extra: bytes) -> bytes:
    """``frame`` with ``extra`` appended to its body and its length fixed (malformed input
    for the parser, so built by hand here)."""
    body = frame[4:] + extra
    return struct.pack(">L", len(body) + 4) + body


def deliver(**fields: Any) -> Pdu:
    defaults: dict[str, Any] = {
        "source_addr": "79120000001",
        "destination_addr": "7900",
        "short_message": b"",
    }
    return decode(encode("deliver_sm", 11, **(defaults | fields)))


# --- encode / decode round trips -------------------------------------------------------------


def test_bind_transceiver_round_trip_keeps_every_field_and_the_sequence() -> None:
    frame = encode(
        "bind_transceiver",
        0x7FFF_FFFF,
        system_id="gateway",
        password="secret",
        system_type="METER",
        addr_ton=1,
        addr_npi=1,
        address_range="7900",
    )
    pdu = decode(frame)
    assert pdu.command == "bind_transceiver"
    assert (pdu.status, pdu.sequence) == (ESME_ROK, 0x7FFF_FFFF)
    assert dict(pdu.fields) == {
        "system_id": "gateway",
        "password": "secret",
        "system_type": "METER",
        "interface_version": 0x34,
        "addr_ton": 1,
        "addr_npi": 1,
        "address_range": "7900",
    }
    assert not pdu.is_response


def test_interface_version_given_is_sent() -> None:
    # smpplib overwrites it with 0x34 after applying the keyword arguments
    frame = encode("bind_transceiver", 1, system_id="a", password="b", interface_version=0x33)
    assert decode(frame).fields["interface_version"] == 0x33


def test_bind_transceiver_resp_with_system_id_and_an_error_status() -> None:
    pdu = decode(
        encode(
            "bind_transceiver_resp",
            3,
            status=ESME_RINVPASWD,
            system_id="SMSC",
            sc_interface_version=0x34,
        )
    )
    assert (pdu.command, pdu.status, pdu.sequence) == ("bind_transceiver_resp", 0x0E, 3)
    assert pdu.fields["system_id"] == "SMSC"
    assert pdu.fields["sc_interface_version"] == 0x34
    assert pdu.is_response


def test_submit_sm_with_sar_tlvs_and_its_resp() -> None:
    pdu = decode(
        encode(
            "submit_sm",
            42,
            source_addr="7900",
            destination_addr="79120000001",
            source_addr_ton=5,
            dest_addr_ton=1,
            dest_addr_npi=1,
            esm_class=0,
            data_coding=8,
            registered_delivery=1,
            short_message="Принято".encode("utf-16-be"),
            sar_msg_ref_num=0x1234,
            sar_total_segments=3,
            sar_segment_seqnum=2,
        )
    )
    assert (pdu.command, pdu.sequence) == ("submit_sm", 42)
    fields = pdu.fields
    assert fields["source_addr"] == "7900"
    assert fields["destination_addr"] == "79120000001"
    assert (fields["source_addr_ton"], fields["dest_addr_ton"], fields["data_coding"]) == (5, 1, 8)
    assert fields["registered_delivery"] == 1
    assert fields["short_message"] == "Принято".encode("utf-16-be")
    assert fields["sm_length"] == 14
    assert (fields["sar_msg_ref_num"], fields["sar_total_segments"]) == (0x1234, 3)
    assert fields["sar_segment_seqnum"] == 2
    assert "message_payload" not in fields

    resp = decode(encode("submit_sm_resp", 42, message_id="5F3A0B77"))
    assert (resp.command, resp.status, resp.sequence) == ("submit_sm_resp", ESME_ROK, 42)
    assert resp.fields == {"message_id": "5F3A0B77"}


def test_deliver_sm_with_tlvs_and_its_resp() -> None:
    pdu = deliver(
        esm_class=0x04,
        message_payload=b"id:77 stat:DELIVRD",
        receipted_message_id="5F3A0B77",
        message_state=2,
    )
    assert (pdu.command, pdu.sequence) == ("deliver_sm", 11)
    assert pdu.fields["message_payload"] == b"id:77 stat:DELIVRD"
    assert pdu.fields["receipted_message_id"] == "5F3A0B77"
    assert pdu.fields["message_state"] == 2
    assert pdu.fields["short_message"] == b""

    resp = decode(encode("deliver_sm_resp", 11, status=ESME_RX_T_APPN))
    assert (resp.command, resp.status, resp.sequence) == ("deliver_sm_resp", 0x64, 11)


@pytest.mark.parametrize(
    "command",
    ["enquire_link", "enquire_link_resp", "unbind", "unbind_resp", "generic_nack"],
)
@pytest.mark.parametrize("sequence", [1, 77, 0x7FFF_FFFF])
def test_bodiless_pdus_round_trip(command: str, sequence: int) -> None:
    status = ESME_RINVCMDID if command == "generic_nack" else ESME_ROK
    frame = encode(command, sequence, status=status)
    assert len(frame) == 16
    assert decode(frame) == Pdu(command, status, sequence, {})


@pytest.mark.parametrize(
    ("command", "fields"),
    [
        ("enquire_lnk", {}),
        ("submit_sm", {"destination_address": "1"}),  # a typo smpplib would drop silently
        ("submit_sm", {"sm_length": 3}),
        ("bind_transceiver", {"system_id": "x" * 16}),  # smpplib would truncate it
        ("bind_transceiver", {"password": "пароль"}),
        ("submit_sm", {"destination_addr": b"7900"}),
        ("submit_sm", {"short_message": "text"}),
        ("submit_sm", {"short_message": b"x" * 255}),
        ("submit_sm", {"esm_class": 256}),
        ("submit_sm", {"esm_class": True}),
        ("submit_sm", {"short_message": b"a", "message_payload": b"b"}),
    ],
)
def test_encode_refuses_what_smpplib_would_get_wrong(command: str, fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        encode(command, 1, **fields)


def test_encode_echoes_any_32_bit_sequence_and_refuses_more() -> None:
    assert decode(encode("generic_nack", 0xFFFF_FFFF, status=3)).sequence == 0xFFFF_FFFF
    with pytest.raises(ValueError):
        encode("generic_nack", 0x1_0000_0000)
    with pytest.raises(ValueError):
        encode("enquire_link", -1)


# --- statuses --------------------------------------------------------------------------------


def test_status_constants_and_names() -> None:
    assert (ESME_ROK, ESME_RTHROTTLED, ESME_RMSGQFUL) == (0, 0x58, 0x14)
    assert (ESME_RX_T_APPN, ESME_RSYSERR) == (0x64, 0x08)
    assert ESME_RX_T_APPN == smpplib.consts.SMPP_ESME_RX_T_APPN
    assert status_name(ESME_ROK) == "ESME_ROK"
    assert status_name(ESME_RTHROTTLED) == "ESME_RTHROTTLED"
    assert status_name(ESME_RMSGQFUL) == "ESME_RMSGQFUL"
    assert status_name(0x0D) == "ESME_RBINDFAIL"
    assert status_name(ESME_RINVPASWD) == "ESME_RINVPASWD"
    assert status_name(ESME_RX_T_APPN) == "ESME_RX_T_APPN"
    assert status_name(0x1234) == "0x00001234"


# --- read_frame --------------------------------------------------------------------------------


async def test_read_frame_reassembles_pdus_split_at_odd_boundaries() -> None:
    first = encode("enquire_link", 5)
    second = encode("submit_sm_resp", 6, message_id="abc-123")
    stream = first + second
    reader = asyncio.StreamReader()

    async def feed() -> None:
        for start, end in [(0, 1), (1, 3), (3, 17), (17, 19), (19, 30), (30, len(stream))]:
            reader.feed_data(stream[start:end])
            await asyncio.sleep(0)
        reader.feed_eof()

    feeder = asyncio.create_task(feed())
    assert await read_frame(reader) == first
    assert await read_frame(reader) == second
    with pytest.raises(asyncio.IncompleteReadError) as closed:
        await read_frame(reader)
    assert closed.value.partial == b""
    await feeder


@pytest.mark.parametrize("length", [8, 15, 10 * 1024 * 1024])
async def test_read_frame_refuses_an_impossible_length(length: int) -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(struct.pack(">L", length))  # nothing more: it must not wait for a body
    with pytest.raises(PduError):
        await asyncio.wait_for(read_frame(reader), timeout=1)


async def test_read_frame_honours_max_length() -> None:
    frame = encode("submit_sm_resp", 1, message_id="x" * 60)
    reader = asyncio.StreamReader()
    reader.feed_data(frame)
    with pytest.raises(PduError):
        await read_frame(reader, max_length=len(frame) - 1)
    reader = asyncio.StreamReader()
    reader.feed_data(frame)
    assert await read_frame(reader, max_length=len(frame)) == frame


async def test_read_frame_eof_mid_frame() -> None:
    frame = encode("submit_sm_resp", 1, message_id="abc")
    reader = asyncio.StreamReader()
    reader.feed_data(frame[:-2])
    reader.feed_eof()
    with pytest.raises(asyncio.IncompleteReadError) as error:
        await read_frame(reader)
    assert error.value.partial == frame[4:-2]


# --- decode: what smpplib cannot parse ---------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\x00\x00\x00",
        b"garbage that is not smpp at all",
        struct.pack(">LLLL", 16, 0x0000_0005, 0, 1)[:-1],
        struct.pack(">LLLL", 20, 0x8000_0015, 0, 1),  # says 20, has 16
        struct.pack(">LLLL", 16, 0x8000_0015, 0, 1) + b"\0",  # says 16, has 17
    ],
)
def test_decode_garbage_is_a_pdu_error(frame: bytes) -> None:
    with pytest.raises(PduError):
        decode(frame)


@pytest.mark.parametrize("command_id", [0x0001_2345, 0x0000_0008, 0x8000_0021])
def test_decode_unknown_command_keeps_its_sequence_for_the_nack(command_id: int) -> None:
    # 0x08 (cancel_sm) and 0x80000021 (submit_multi_resp) are SMPP 3.4 but not in smpplib
    with pytest.raises(PduError) as error:
        decode(struct.pack(">LLLL", 16, command_id, 0, 4242))
    assert (error.value.command_id, error.value.sequence) == (command_id, 4242)


def test_decode_a_c_string_without_its_nul() -> None:
    frame = struct.pack(">LLLL", 16 + 5, 0x8000_0004, 0, 9) + b"abcde"
    with pytest.raises(PduError) as error:
        decode(frame)
    assert error.value.sequence == 9
    # smpplib itself would take "abcd" and start the body again from its first octet
    assert "message_id: C-octet string without its NUL" in str(error.value)


def test_decode_a_short_message_shorter_than_sm_length() -> None:
    frame = encode("deliver_sm", 1, source_addr="1", destination_addr="2", short_message=b"hello")
    truncated = struct.pack(">L", len(frame) - 2) + frame[4:-2]
    with pytest.raises(PduError):
        decode(truncated)


def test_decode_a_tlv_running_past_the_end() -> None:
    frame = encode("deliver_sm", 1, source_addr="1", destination_addr="2")
    with pytest.raises(PduError):
        decode(frame_with(frame, b"\x04\x24\x00\x10abc"))
    with pytest.raises(PduError):
        decode(frame_with(frame, b"\x04"))


def test_decode_an_integer_tlv_of_the_wrong_length() -> None:
    frame = encode("deliver_sm", 1, source_addr="1", destination_addr="2")
    with pytest.raises(PduError):
        decode(frame_with(frame, b"\x02\x0c\x00\x01\x05"))  # sar_msg_ref_num is 2 octets


def test_decode_skips_vendor_and_foreign_tlvs_and_reads_the_rest() -> None:
    frame = encode("deliver_sm", 1, source_addr="1", destination_addr="2", short_message=b"x")
    extra = (
        b"\x14\x01\x00\x03abc"  # a vendor TLV
        b"\x05\x01\x00\x01\x02"  # ussd_service_op: known to smpplib, not a deliver_sm TLV
        b"\x02\x0c\x00\x02\x01\x02"  # sar_msg_ref_num
    )
    pdu = decode(frame_with(frame, extra))
    assert pdu.fields["sar_msg_ref_num"] == 0x0102
    assert "ussd_service_op" not in pdu.fields
    assert pdu.fields["short_message"] == b"x"


def test_decode_a_string_tlv_without_its_nul_keeps_its_last_character() -> None:
    frame = encode("deliver_sm", 1, source_addr="1", destination_addr="2", esm_class=4)
    pdu = decode(frame_with(frame, b"\x00\x1e\x00\x08ABCD1234"))
    assert pdu.fields["receipted_message_id"] == "ABCD1234"


def test_decode_leaves_octets_of_strings_as_latin_1() -> None:
    frame = encode("submit_sm_resp", 1, message_id="AB")
    mangled = frame[:-3] + b"\xc4\xe9\0"
    assert decode(mangled).fields["message_id"] == "Äé"


@given(st.binary(max_size=80))
def test_decode_raises_nothing_but_pdu_error(data: bytes) -> None:
    with suppress(PduError):
        decode(data)


@given(
    st.sampled_from([0x0000_0005, 0x8000_0009, 0x8000_0004, 0x0000_0004, 0x0000_0009]),
    st.binary(max_size=120),
)
def test_decode_of_any_body_raises_nothing_but_pdu_error(command_id: int, body: bytes) -> None:
    try:
        pdu = decode(struct.pack(">LLLL", 16 + len(body), command_id, 0, 1) + body)
    except PduError:
        return
    assert pdu.sequence == 1
    for key, value in pdu.fields.items():
        assert isinstance(value, str | bytes | int), key


# --- read_deliver -----------------------------------------------------------------------------


def test_gsm_text_with_extension_characters() -> None:
    part = read_deliver(deliver(data_coding=0, short_message=b"5\x1be \x1b<1\x1b> \x00\x11[]"))
    assert part == Part("79120000001", "7900", "5€ [1] @_ÄÑ", None, 1, 1, None)


def test_ucs2_cyrillic() -> None:
    text = "Показания 1234567890 12345"
    part = read_deliver(deliver(data_coding=8, short_message=text.encode("utf-16-be")))
    assert isinstance(part, Part)
    assert part.text == text


def test_ucs2_with_an_emoji_surrogate_pair() -> None:
    text = "1234567890 12345 👍"
    part = read_deliver(deliver(data_coding=8, short_message=text.encode("utf-16-be")))
    assert isinstance(part, Part)
    assert part.text == text


def test_latin_1() -> None:
    part = read_deliver(deliver(data_coding=3, short_message="Zähler 12 µ".encode("latin-1")))
    assert isinstance(part, Part)
    assert part.text == "Zähler 12 µ"


def test_message_payload_instead_of_short_message() -> None:
    text = "Показания " * 20
    part = read_deliver(deliver(data_coding=8, message_payload=text.encode("utf-16-be")))
    assert isinstance(part, Part)
    assert part.text == text


def test_message_payload_wins_over_short_message() -> None:
    # smpplib refuses to generate both; an SMSC may still send them
    pdu = Pdu(
        "deliver_sm",
        0,
        1,
        {"short_message": b"short", "message_payload": b"payload", "data_coding": 0},
    )
    part = read_deliver(pdu)
    assert isinstance(part, Part)
    assert part.text == "payload"


def test_udh_8_bit_reference() -> None:
    part = read_deliver(deliver(esm_class=0x40, short_message=b"\x05\x00\x03\x2a\x03\x02Hello"))
    assert isinstance(part, Part)
    assert (part.reference, part.total, part.number, part.text) == (0x2A, 3, 2, "Hello")


def test_udh_16_bit_reference_before_ucs2_text() -> None:
    body = b"\x06\x08\x04\x12\x34\x02\x01" + "Показ".encode("utf-16-be")
    part = read_deliver(deliver(esm_class=0x40, data_coding=8, short_message=body))
    assert isinstance(part, Part)
    assert (part.reference, part.total, part.number, part.text) == (0x1234, 2, 1, "Показ")


def test_udh_with_another_element_before_the_concatenation() -> None:
    body = b"\x0b\x05\x04\x0b\x84\x23\xf0\x00\x03\x07\x02\x02tail"
    part = read_deliver(deliver(esm_class=0x43, short_message=body))
    assert isinstance(part, Part)
    assert (part.reference, part.total, part.number, part.text) == (7, 2, 2, "tail")


def test_udh_without_concatenation_is_a_single_message() -> None:
    part = read_deliver(deliver(esm_class=0x40, short_message=b"\x04\x05\x02\x0b\x84Hi"))
    assert isinstance(part, Part)
    assert (part.reference, part.total, part.number, part.text) == (None, 1, 1, "Hi")


@pytest.mark.parametrize("element", [b"\x00\x03\x07\x00\x01", b"\x00\x03\x07\x02\x03"])
def test_an_invalid_concatenation_element_is_ignored(element: bytes) -> None:
    part = read_deliver(deliver(esm_class=0x40, short_message=b"\x05" + element + b"x"))
    assert isinstance(part, Part)
    assert (part.reference, part.total, part.number, part.text) == (None, 1, 1, "x")


@pytest.mark.parametrize("body", [b"\x09\x00\x03\x01\x02\x01ab", b"\x03\x00\x03\x01\x02", b""])
def test_a_malformed_udh_is_a_pdu_error(body: bytes) -> None:
    with pytest.raises(PduError):
        read_deliver(deliver(esm_class=0x40, short_message=body))


def test_sar_tlvs() -> None:
    part = read_deliver(
        deliver(
            short_message=b"second",
            sar_msg_ref_num=513,
            sar_total_segments=2,
            sar_segment_seqnum=2,
        )
    )
    assert isinstance(part, Part)
    assert (part.reference, part.total, part.number, part.text) == (513, 2, 2, "second")


def test_a_single_message_has_no_reference_nor_smsc_id() -> None:
    # receipted_message_id on a message that is not a receipt is not its SMSC id
    part = read_deliver(deliver(short_message=b"1234567890 5", receipted_message_id="X1"))
    assert part == Part("79120000001", "7900", "1234567890 5", None, 1, 1, None)


def test_receipt_in_text_form() -> None:
    text = (
        b"id:0123456789 sub:001 dlvrd:000 submit date:2410201200 done date:2410201205 "
        b"stat:UNDELIV err:034 text:Pokazaniya prinyaty"
    )
    receipt = read_deliver(deliver(esm_class=0x04, short_message=text))
    assert receipt == Receipt("0123456789", "UNDELIV", "034")


def test_receipt_with_tlvs() -> None:
    receipt = read_deliver(
        deliver(esm_class=0x04, receipted_message_id="5F3A0B77", message_state=5)
    )
    assert receipt == Receipt("5F3A0B77", "UNDELIV", None)


def test_receipt_tlv_id_wins_and_text_state_wins() -> None:
    receipt = read_deliver(
        deliver(
            esm_class=0x04,
            short_message=b"id:99 stat:DELIVRD err:000",
            receipted_message_id="5F3A0B77",
            message_state=5,
        )
    )
    assert receipt == Receipt("5F3A0B77", "DELIVRD", None)


def test_intermediate_notification_is_a_receipt() -> None:
    receipt = read_deliver(deliver(esm_class=0x20, receipted_message_id="A1", message_state=1))
    assert receipt == Receipt("A1", "ENROUTE", None)


def test_data_sm_is_read_like_a_deliver_sm() -> None:
    pdu = decode(
        encode(
            "data_sm",
            5,
            source_addr="79120000001",
            destination_addr="7900",
            data_coding=8,
            message_payload="Показания 12".encode("utf-16-be"),
        )
    )
    assert read_deliver(pdu) == Part("79120000001", "7900", "Показания 12", None, 1, 1, None)


def test_read_deliver_refuses_other_commands() -> None:
    with pytest.raises(PduError):
        read_deliver(decode(encode("submit_sm", 1, source_addr="1", destination_addr="2")))


# --- parse_receipt_text ---------------------------------------------------------------------


def test_parse_receipt_text_standard() -> None:
    assert parse_receipt_text(
        "id:abc sub:001 dlvrd:001 submit date:2410201200 done date:2410201205 "
        "stat:DELIVRD err:000 text:Hello: world id:x"
    ) == {
        "id": "abc",
        "sub": "001",
        "dlvrd": "001",
        "submit date": "2410201200",
        "done date": "2410201205",
        "stat": "DELIVRD",
        "err": "000",
        "text": "Hello: world id:x",
    }


def test_parse_receipt_text_case_and_missing_fields() -> None:
    assert parse_receipt_text("ID:7F Stat:delivrd Submit Date:2410201200 Text:") == {
        "id": "7F",
        "stat": "delivrd",
        "submit date": "2410201200",
        "text": "",
    }
    assert parse_receipt_text("nothing here") == {}


# --- decode_text ------------------------------------------------------------------------------


def test_gsm_tables() -> None:
    basic = bytes(code for code in range(128) if code != 0x1B)
    assert decode_text(basic, 0) == GSM_BASIC
    extension = b"\x1b\x0a\x1b\x14\x1b\x28\x1b\x29\x1b\x2f\x1b\x3c\x1b\x3d\x1b\x3e\x1b\x40\x1b\x65"
    assert decode_text(extension, 0) == GSM_EXTENSION


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"\x1bA", "A"),  # no extension: the basic table's character
        (b"a\x1b", "a\ufffd"),
        (b"\x80a", "\ufffda"),
    ],
)
def test_gsm_oddities(data: bytes, text: str) -> None:
    assert decode_text(data, 0) == text


@pytest.mark.parametrize(
    ("data", "data_coding", "text"),
    [
        (b"abc\xc4", 1, "abc\ufffd"),
        (b"\xc4", 2, "Ä"),
        (b"\xc4", 4, "Ä"),
        (b"\xbf\xee", 6, "Пю"),  # ISO-8859-5
        (b"\x04\x1f\x00", 8, "П\ufffd"),  # odd length
        (b"\xd8\x3d", 8, "\ufffd"),  # lone surrogate
        (b"\x5f", 0xF0, "§"),  # group 1111, GSM
        (b"\x5f", 0xF4, "_"),  # group 1111, 8-bit
        (b"\x5f", 0x11, "§"),  # general group, GSM
        (b"\x04\x1f", 0x18, "П"),  # general group, UCS-2
        (b"\x04\x1f", 0xE0, "П"),  # message waiting, UCS-2
        (b"\x5f", 0xC0, "§"),  # message waiting, GSM
        (b"\xc4", 0x90, "Ä"),  # reserved group
    ],
)
def test_decode_text_by_data_coding(data: bytes, data_coding: int, text: str) -> None:
    assert decode_text(data, data_coding) == text


@given(st.binary(max_size=300), st.integers(min_value=-1, max_value=256))
def test_decode_text_never_raises(data: bytes, data_coding: int) -> None:
    assert isinstance(decode_text(data, data_coding), str)


# --- segments ---------------------------------------------------------------------------------


def udh(reference: int, total: int, number: int) -> bytes:
    return bytes((0x05, 0x00, 0x03, reference, total, number))


def test_gsm_encodable() -> None:
    assert gsm_encodable(GSM_BASIC + GSM_EXTENSION)
    assert not gsm_encodable("`")  # smpplib's table encodes it as § (0x5F)
    assert not gsm_encodable("\x1b")
    assert not gsm_encodable("П")


def test_160_gsm_characters_are_one_part() -> None:
    result = segments("a" * 160, 1)
    assert (result.data_coding, result.esm_class, result.parts) == (0, 0, (b"a" * 160,))


def test_161_gsm_characters_are_153_and_8() -> None:
    result = segments("a" * 161, 0x1FF)
    assert (result.data_coding, result.esm_class) == (0, 0x40)
    assert result.parts == (udh(0xFF, 2, 1) + b"a" * 153, udh(0xFF, 2, 2) + b"a" * 8)


def test_euro_counts_two_septets() -> None:
    assert segments("€" * 80, 1).parts == (b"\x1be" * 80,)
    assert len(segments("€" * 80 + "a", 1).parts) == 2


def test_an_escape_pair_is_never_split() -> None:
    result = segments("a" * 152 + "€" + "b" * 10, 9)
    assert result.parts == (udh(9, 2, 1) + b"a" * 152, udh(9, 2, 2) + b"\x1be" + b"b" * 10)


def test_gsm_is_sent_unpacked() -> None:
    assert segments("@[Ü", 1).parts == (b"\x00\x1b\x3c\x5e",)


def test_70_cyrillic_characters_are_one_ucs2_part() -> None:
    result = segments("я" * 70, 1)
    assert (result.data_coding, result.esm_class) == (8, 0)
    assert result.parts == (("я" * 70).encode("utf-16-be"),)


def test_71_cyrillic_characters_are_two_parts() -> None:
    result = segments("я" * 71, 3)
    assert (result.data_coding, result.esm_class) == (8, 0x40)
    assert result.parts == (
        udh(3, 2, 1) + ("я" * 67).encode("utf-16-be"),
        udh(3, 2, 2) + ("я" * 4).encode("utf-16-be"),
    )


def test_a_surrogate_pair_is_never_split() -> None:
    result = segments("я" * 66 + "👍" + "я" * 10, 4)
    assert result.parts == (
        udh(4, 2, 1) + ("я" * 66).encode("utf-16-be"),
        udh(4, 2, 2) + ("👍" + "я" * 10).encode("utf-16-be"),
    )
    assert len(segments("👍" * 35, 1).parts) == 1
    assert len(segments("👍" * 35 + "я", 1).parts) == 2


def test_more_than_255_parts_is_refused() -> None:
    assert len(segments("a" * 153 * 255, 1).parts) == 255
    with pytest.raises(ValueError):
        segments("a" * (153 * 255 + 1), 1)


def on_air_octets(part: bytes, data_coding: int, esm_class: int) -> int:
    """Octets of the TP-User-Data the SMSC sends: GSM septets packed, after the UDH and its
    fill bits."""
    if data_coding != 0:
        return len(part)
    header = part[0] + 1 if esm_class & 0x40 else 0
    header_septets = math.ceil(header * 8 / 7)
    return math.ceil((header_septets + len(part) - header) * 7 / 8)


gsm_texts = st.text(alphabet=st.sampled_from(GSM_BASIC + GSM_EXTENSION), max_size=700)
any_texts = st.text(max_size=400)


@given(st.one_of(gsm_texts, any_texts), st.integers(min_value=0, max_value=0xFFFF))
def test_parts_join_back_into_the_text_and_fit_140_octets(text: str, reference: int) -> None:
    result = segments(text, reference)
    assert result.data_coding == (0 if gsm_encodable(text) else 8)
    texts = []
    for number, part in enumerate(result.parts, start=1):
        assert on_air_octets(part, result.data_coding, result.esm_class) <= 140
        if result.esm_class & 0x40:
            assert part[:6] == udh(reference & 0xFF, len(result.parts), number)
            part = part[6:]
        texts.append(decode_text(part, result.data_coding))
    assert "".join(texts) == text
    assert (result.esm_class == 0x40) == (len(result.parts) > 1)
