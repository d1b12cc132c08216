"""channels.email_content: one email's bytes to the list text and the attachment notes,
checked end to end through the real ``parsers.parse_list``."""

from __future__ import annotations

import io
from datetime import datetime
from decimal import Decimal
from email.message import EmailMessage

import openpyxl
import pytest

from channels import email_content
from channels.email_content import (
    BODY_NAME,
    MAX_COLUMNS,
    MailContent,
    decode_text,
    html_to_text,
    read_message,
    rows_to_lines,
)
from parsers import Submission, parse_list

LIMIT = 200_000
XLSX_TYPE = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")


def mail(body: str | None = "", *, html: str | None = None, sender: str = "") -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender or "Староста <Elder@Example.RU>"
    message["To"] = "meters@supplier.ru"
    message["Subject"] = "Показания дом 10"
    message["Message-ID"] = "<abc@example.ru>"
    if body is not None:
        message.set_content(body)
    if html is not None:
        if body is None:
            message.set_content(html, subtype="html")
        else:
            message.add_alternative(html, subtype="html")
    return message


def read(message: EmailMessage | bytes, limit: int = LIMIT) -> MailContent:
    raw = message if isinstance(message, bytes) else message.as_bytes()
    return read_message(raw, max_attachment_bytes=limit)


def readings(text: str) -> list[tuple[str, tuple[Decimal, ...]]]:
    """What the real list parser makes of a text: (account, values) of every good line,
    and a failure on any data line it cannot read."""
    out = []
    for line in parse_list(text):
        assert isinstance(line.result, Submission), (line.text, line.result)
        out.append((line.result.account, line.result.values))
    return out


def d(*values: str) -> tuple[Decimal, ...]:
    return tuple(Decimal(v) for v in values)


def xlsx(*sheets: list[list[object]], hidden: int | None = None) -> bytes:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for index, rows in enumerate(sheets):
        sheet = book.create_sheet(f"Лист{index + 1}")
        for row in rows:
            sheet.append(row)
        if index == hidden:
            sheet.sheet_state = "hidden"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# --- body --------------------------------------------------------------------------------


def test_plain_body_headers_and_end_to_end() -> None:
    content = read(
        mail(
            "Добрый день!\n"
            "Показания дом 10:\n"
            "кв. 12 — 1234567890 12345 6789\n"
            "кв. 14 — 1234567891 222\n"
            "С уважением, Иван\n"
        )
    )
    assert content.sender == "elder@example.ru"
    assert content.subject == "Показания дом 10"
    assert content.message_id == "<abc@example.ru>"
    assert content.body_kind == "plain"
    assert content.attachments == ()
    assert readings(content.text) == [
        ("1234567890", d("12345", "6789")),
        ("1234567891", d("222")),
    ]
    assert content.locate(3) == (BODY_NAME, 3)


def test_html_only_body_with_table() -> None:
    html = """<html><head><title>1111111111 1</title>
    <style>td { color: red } /* 2222222222 2 */</style></head><body>
    <script>var x = "3333333333 3";</script>
    <p>Добрый&nbsp;день!</p>
    <table><tr><th>кв</th><th>ЛС</th><th>день</th><th>ночь</th></tr>
    <tr><td>кв.&nbsp;12</td><td>1234567890</td><td>12345</td><td>6789</td></tr>
    <tr>
      <td>кв. 14</td>
      <td>1234567891</td><td>222</td><td></td>
    </tr></table>
    <div>Иван &amp; Мария<br>тел. 89991234567</div>
    </body></html>"""
    content = read(mail(None, html=html))
    assert content.body_kind == "html"
    lines = content.body.splitlines()
    assert "кв. 12 1234567890 12345 6789" in lines
    assert "кв. 14 1234567891 222" in lines
    assert "Иван & Мария" in lines
    assert "Добрый день!" in lines
    assert readings(content.text) == [
        ("1234567890", d("12345", "6789")),
        ("1234567891", d("222")),
    ]


def test_plain_part_preferred_over_html() -> None:
    content = read(mail("1234567890 1", html="<p>1234567890 999</p>"))
    assert content.body_kind == "plain"
    assert readings(content.text) == [("1234567890", d("1"))]


def test_quoted_reply_and_signature_dropped() -> None:
    body = (
        "Исправленные:\n"
        "кв. 12 — 1234567890 12346 6790\n"
        "\n"
        "пн, 3 мар. 2025 г. в 10:00, Показания <meters@supplier.ru>:\n"
        "> Строка 1: кв. 12 — 1234567890 12345 6789 — принято\n"
        ">> 1234567892 5\n"
        "-- \n"
        "Иван Петров\n"
        "89991234567\n"
    )
    content = read(mail(body))
    assert not any(line.startswith(">") for line in content.text.splitlines())
    assert "89991234567" not in content.text
    assert readings(content.text) == [("1234567890", d("12346", "6790"))]


def test_outlook_original_message_cut() -> None:
    body = "1234567890 5\n\n-----Original Message-----\nFrom: x\n1234567892 7\n"
    assert readings(read(mail(body)).text) == [("1234567890", d("5"))]


def test_html_quotes_and_signatures_dropped() -> None:
    html = (
        "<div>1234567890 5</div>"
        '<div class="gmail_signature">Иван <b>89991234567</b></div>'
        '<div class="gmail_quote"><div>wrote:</div>'
        "<blockquote><div><div>1234567892 7</div></div></blockquote></div>"
        "<blockquote>1234567893 8</blockquote>"
        "<p>1234567894 9</p>"
        '<div id="divRplyFwdMsg">From: x</div><div>1234567895 1</div>'
    )
    content = read(mail(None, html=html))
    assert readings(content.text) == [("1234567890", d("5")), ("1234567894", d("9"))]


def test_html_to_text_cells_and_breaks() -> None:
    text = html_to_text("<ul><li>a&lt;b</li><li>c</li></ul><table><tr><td>1</td><td>2</td>")
    assert text.split() == ["a<b", "c", "1", "2"]
    assert "1 2" in text.splitlines()


def test_html_pre_keeps_lines() -> None:
    text = html_to_text("<pre>1234567890 1\n1234567891  2</pre>x\ny")
    assert [line for line in text.splitlines() if line] == [
        "1234567890 1",
        "1234567891 2",
        "x y",
    ]


def test_format_flowed_unwrapped() -> None:
    raw = (
        b"From: elder@example.ru\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8; format=flowed\r\n\r\n"
        b"1234567890 \r\n12345 6789\r\n 1234567891 1\r\n-- \r\n1234567892 3\r\n"
    )
    content = read(raw)
    assert content.body.splitlines() == ["1234567890 12345 6789", "1234567891 1"]


def test_wrong_charset_label_read_correctly() -> None:
    text = "Добрый день\r\nкв. 12 — 1234567890 12345\r\nСпасибо\r\n"
    raw = (
        b"From: elder@example.ru\r\nSubject: =?utf-8?b?0J/QvtC60LDQt9Cw0L3QuNGP?=\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n" + text.encode("cp1251")
    )
    content = read(raw)
    assert content.subject == "Показания"
    assert content.body.splitlines()[0] == "Добрый день"
    assert readings(content.text) == [("1234567890", d("12345"))]


@pytest.mark.parametrize(
    ("data", "label", "expected"),
    [
        ("Привет".encode("cp1251"), "utf-8", "Привет"),
        ("Привет".encode(), "windows-1251", "Привет"),  # mislabelled UTF-8
        ("Привет".encode("koi8-r"), "koi8-r", "Привет"),
        ("Привет".encode("cp1251"), "x-no-such-charset", "Привет"),
        ("Привет".encode("utf-16"), "utf-16", "Привет"),
        (b"\x98\x98", None, "\x98\x98"),  # neither UTF-8 nor cp1251: latin-1
    ],
)
def test_decode_text_fallbacks(data: bytes, label: str | None, expected: str) -> None:
    assert decode_text(data, label) == expected


# --- CSV -------------------------------------------------------------------------------


def with_file(data: bytes, name: str, ctype: tuple[str, str], body: str = "") -> EmailMessage:
    message = mail(body)
    message.add_attachment(data, maintype=ctype[0], subtype=ctype[1], filename=name)
    return message


CSV = ("text", "csv")


@pytest.mark.parametrize(
    ("data", "name"),
    [
        pytest.param(
            "\ufeffЛС,день,ночь\r\n1234567890,12345,6789\r\n1234567891,222,\r\n".encode(),
            "bom.csv",
            id="utf8-bom-comma-header",
        ),
        pytest.param(
            b"1234567890;12345;6789\n1234567891;222\n",
            "semicolon.csv",
            id="semicolon-no-header",
        ),
        pytest.param(
            "Квартира;Лицевой счёт;День;Ночь\n12;1234567890;12345;6789\n14;1234567891;222;\n"
            "Итого;;12567;6789\n".encode("cp1251"),
            "список.csv",
            id="cp1251-header-apartment",
        ),
        pytest.param(
            b"12\t1234567890\t12345\t6789\n14\t1234567891\t222\n",
            "tabs.tsv",
            id="tab-apartment-without-header",
        ),
        pytest.param(
            "№;ФИО;кв;ЛС;показания\n1;Иванов И.И.;12;1234567890;12345 6789\n"
            '2;"Петров; П.";14;1234567891;222\n'.encode("cp1251"),
            "full.csv",
            id="names-and-numbers-dropped",
        ),
    ],
)
def test_csv_end_to_end(data: bytes, name: str) -> None:
    content = read(with_file(data, name, CSV))
    (attachment,) = content.attachments
    assert attachment.read and attachment.lines == 2 and attachment.kind == "csv"
    assert readings(content.text) == [
        ("1234567890", d("12345", "6789")),
        ("1234567891", d("222")),
    ]


def test_csv_rows_to_lines_and_sources() -> None:
    data = "кв;ЛС;значение\n12;1234567890;123,45\n".encode()
    content = read(with_file(data, "a.csv", ("application", "vnd.ms-excel"), "1234567899 1"))
    # The header row stays as an empty line: line numbers in a.csv are its rows.
    assert content.text == "1234567899 1\n\n\nкв. 12 1234567890 123,45"
    assert readings(content.text)[1] == ("1234567890", d("123.45"))
    assert content.locate(1) == (BODY_NAME, 1)
    assert content.locate(4) == ("a.csv", 2)
    assert content.locate(2) is None


def test_rows_to_lines_apartment_rules() -> None:
    rows = [
        ["ЛС", "показание"],
        ["1234567890", "1"],
        ["кв. 7а", "1234567891", "2"],
        ["12/1", "1234567892", "3"],  # not an apartment the list parser can strip
    ]
    assert list(rows_to_lines(rows)) == [
        "",
        "1234567890 1",
        "кв. 7а 1234567891 2",
        "1234567892 3",
    ]


def test_csv_neither_utf8_nor_cp1251_ignored() -> None:
    content = read(with_file(b"1234567890;1\n\x98\x98\n", "bad.csv", CSV))
    (attachment,) = content.attachments
    assert attachment.reason == "undecodable" and not attachment.read
    assert "bad.csv — не читается" in content.notes()[0]
    assert content.text == ""


def test_txt_attachment_read_as_lines() -> None:
    data = "кв. 12 — 1234567890 12345\r\n".encode("cp1251")
    content = read(with_file(data, "список.txt", ("text", "plain")))
    assert readings(content.text) == [("1234567890", d("12345"))]


# --- XLSX ------------------------------------------------------------------------------


def test_xlsx_numbers_as_floats_end_to_end() -> None:
    data = xlsx(
        [
            ["Квартира", "ЛС", "День", "Ночь", "Дата"],
            [12.0, 1234567890.0, 12345.0, 6789.0, datetime(2025, 3, 1)],
            [14, 1234567891, 123.45, None, None],
            [None, None, None, None, None],
            ["Итого", None, 12468.45, 6789, None],
        ],
        [["hidden"], [1234567899, 1]],
        [[1234567892, 77.5]],
        hidden=1,
    )
    content = read(with_file(data, "дом10.xlsx", XLSX_TYPE))
    (attachment,) = content.attachments
    assert attachment.kind == "xlsx" and attachment.lines == 3
    # Rows without an account are kept as empty lines (line numbers are row numbers).
    assert content.text.splitlines()[:3] == [
        "",
        "кв. 12 1234567890 12345 6789",
        "кв. 14 1234567891 123.45",
    ]
    assert [line for line in content.text.splitlines() if line] == [
        "кв. 12 1234567890 12345 6789",
        "кв. 14 1234567891 123.45",
        "1234567892 77.5",
    ]
    assert readings(content.text) == [
        ("1234567890", d("12345", "6789")),
        ("1234567891", d("123.45")),
        ("1234567892", d("77.5")),
    ]


def test_xlsx_recognised_by_content_type_and_wide_rows_cut() -> None:
    data = xlsx([[1234567890, 5, *range(100, 100 + MAX_COLUMNS)]])
    message = mail("")
    message.add_attachment(data, maintype=XLSX_TYPE[0], subtype=XLSX_TYPE[1])
    content = read(message)
    (attachment,) = content.attachments
    assert attachment.name == "вложение 1" and attachment.read
    assert len(content.text.split()) == MAX_COLUMNS


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"PK\x03\x04 this is no workbook", id="corrupt"),
        pytest.param(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(500), id="encrypted"),
        pytest.param(xlsx([[1]])[:300], id="truncated"),
    ],
)
def test_corrupt_or_encrypted_xlsx_ignored(data: bytes) -> None:
    content = read(with_file(data, "дом.xlsx", XLSX_TYPE, "1234567890 1"))
    (attachment,) = content.attachments
    assert attachment.reason == "corrupt" and attachment.lines is None
    assert content.notes()[0].startswith("дом.xlsx — не читается")
    assert readings(content.text) == [("1234567890", d("1"))]


def test_xlsx_inflating_too_far_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(email_content, "MAX_XLSX_EXPANSION", 0)
    content = read(with_file(xlsx([[1234567890, 1]]), "bomb.xlsx", XLSX_TYPE))
    (attachment,) = content.attachments
    assert attachment.reason == "corrupt"
    assert "распакованном" in attachment.note


def test_xlsx_rows_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(email_content, "MAX_XLSX_ROWS", 2)
    data = xlsx([[1234567890 + n, n] for n in range(5)])
    content = read(with_file(data, "long.xlsx", XLSX_TYPE))
    (attachment,) = content.attachments
    assert attachment.lines == 2 and attachment.note == "прочитаны первые 2 строк таблицы"
    assert readings(content.text) == [("1234567890", d("0")), ("1234567891", d("1"))]


# --- ignored attachments -----------------------------------------------------------------


def test_attachment_over_limit_ignored() -> None:
    data = b"1234567890;1\n" * 100
    content = read(with_file(data, "big.csv", CSV), limit=1024)
    (attachment,) = content.attachments
    assert attachment.reason == "too_large"
    assert content.notes() == ["big.csv — больше 1 КБ, не прочитано"]
    assert content.text == ""


def test_pdf_image_and_others_ignored_and_named() -> None:
    message = with_file(b"%PDF-1.4", "схема.pdf", ("application", "pdf"), "1234567890 1")
    message.add_attachment(b"\x89PNG", maintype="image", subtype="png", filename="фото.png")
    message.add_attachment(b"PK", maintype="application", subtype="octet-stream", filename="a.docx")
    message.add_attachment(b"\0\1", maintype="application", subtype="x-thing")
    content = read(message)
    assert [(a.name, a.kind, a.reason) for a in content.attachments] == [
        ("схема.pdf", "pdf", "unsupported"),
        ("фото.png", "image", "unsupported"),
        ("a.docx", "word", "unsupported"),
        ("вложение 4", "other", "unsupported"),
    ]
    assert content.notes()[0] == "схема.pdf — не читается (PDF)"
    assert content.notes()[3] == "вложение 4 — не читается (тип application/x-thing)"
    assert readings(content.text) == [("1234567890", d("1"))]


def test_inline_image_and_html_alternative_not_reported() -> None:
    message = mail("1234567890 1", html="<p>1234567890 1</p>")
    html_part = message.get_body(preferencelist=("html",))
    assert html_part is not None
    html_part.add_related(b"\x89PNG", maintype="image", subtype="png", cid="<logo>")
    content = read(message)
    assert content.attachments == ()
    assert readings(content.text) == [("1234567890", d("1"))]


def test_forwarded_message_is_one_ignored_attachment() -> None:
    inner = mail("1234567892 9")
    message = mail("1234567890 1")
    message.add_attachment(inner)
    content = read(message)
    (attachment,) = content.attachments
    assert attachment.kind == "message" and not attachment.read
    assert readings(content.text) == [("1234567890", d("1"))]


# --- limits and robustness ---------------------------------------------------------------


def test_message_over_size_limit_reads_headers_only() -> None:
    raw = mail("1234567890 1\n" * 100).as_bytes()
    content = read_message(raw, max_attachment_bytes=LIMIT, max_message_bytes=500)
    assert content.too_large and content.text == ""
    assert content.sender == "elder@example.ru"
    assert content.subject == "Показания дом 10"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff garbage \r\n\r\n\r\n",
        b"From: broken <<<@@>\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n",
        b'Content-Type: text/plain; charset=""\r\nContent-Transfer-Encoding: base64\r\n\r\n!!',
    ],
)
def test_never_raises(raw: bytes) -> None:
    content = read(raw)
    assert content.sender == ""
    assert list(parse_list(content.text)) == []


def test_two_from_addresses_give_no_sender() -> None:
    message = mail("1234567890 1", sender="a@example.ru, b@example.ru")
    assert read(message).sender == ""
