"""The report an elder gets for a list: its text and its table (gateway.mail_report)."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

from gateway.domain.lists import ListLine, ListResult
from gateway.domain.outcome import Charge, Outcome, OutcomeError, Status
from gateway.mail_report import MAX_LISTED, TABLE_NAME, list_report


def accepted(account: str, total: str, debt: str = "0") -> Outcome:
    charge = Charge((), Decimal(debt), Decimal(total))
    return Outcome(Status.ACCEPTED, account, "Принято", charge=charge)


def rejected(account: str | None, code: str, reply: str) -> Outcome:
    return Outcome(Status.REJECTED, account, reply, error=OutcomeError(code, code))


def nowhere(line: int) -> tuple[str, int] | None:
    return None


def rows(table: bytes) -> list[list[str]]:
    assert table.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(table.decode("utf-8-sig")), delimiter=";"))


def test_an_account_named_twice_is_charged_as_its_last_line_says() -> None:
    result = ListResult(
        1,
        (
            ListLine(1, "1234567890 100", accepted("1234567890", "100.00")),
            ListLine(2, "1234567891 5", accepted("1234567891", "20.50", debt="10")),
            ListLine(3, "1234567890 110", accepted("1234567890", "164.30")),
        ),
    )

    text = list_report(result, subject="Дом 10", notes=[], locate=nowhere).text

    assert "• ЛС 1234567890: 164,30 ₽\n" in text
    assert "• ЛС 1234567891: 20,50 ₽ (с долгом 10,00 ₽)" in text
    assert "100,00" not in text
    assert text.index("1234567891: ") < text.index("1234567890: ")  # in the order last named
    assert "(письмо «Дом 10»)" in text


def test_rejected_lines_name_their_file_and_row_and_why() -> None:
    result = ListResult(
        1, (ListLine(4, "кв 2 1234567891 4.5.6", rejected("1234567891", "unparseable", "Ошибка")),)
    )

    def locate(line: int) -> tuple[str, int] | None:
        return ("дом.csv", line - 2)

    report = list_report(result, subject="", notes=["фото.jpg — не читается"], locate=locate)

    assert "• строка 4 (дом.csv, строка 2): «кв 2 1234567891 4.5.6» — Ошибка" in report.text
    assert "Не прочитаны вложения:\n• фото.jpg — не читается" in report.text
    assert "(письмо без темы)" in report.text
    assert rows(report.table)[1][:6] == [
        "4",
        "дом.csv",
        "2",
        "кв 2 1234567891 4.5.6",
        "не принято",
        "unparseable",
    ]
    assert report.table_name == TABLE_NAME


def test_a_long_list_is_cut_in_the_text_and_whole_in_the_table() -> None:
    lines = tuple(
        ListLine(i, f"{i} x", rejected(None, "unparseable", "Ошибка"))
        for i in range(1, MAX_LISTED + 51)
    )

    report = list_report(ListResult(1, lines), subject="", notes=[], locate=nowhere)

    assert report.text.count("• строка") == MAX_LISTED
    assert "…и ещё 50 — см. вложение." in report.text
    assert len(rows(report.table)) == MAX_LISTED + 50 + 1


def test_what_the_mail_wrote_never_runs_as_a_formula_in_excel() -> None:
    lines = (
        ListLine(1, '=HYPERLINK("http://evil.example","1234567890")', rejected(None, "x", "-")),
        ListLine(2, "+7 912 1234567890 1", rejected(None, "x", "@ответ")),
        ListLine(3, "1234567890 12345", rejected(None, "x", "ok")),
    )

    table = rows(list_report(ListResult(1, lines), subject="", notes=[], locate=nowhere).table)

    assert [row[3] for row in table[1:]] == [
        '\'=HYPERLINK("http://evil.example","1234567890")',
        "'+7 912 1234567890 1",
        "1234567890 12345",
    ]
    assert [row[8] for row in table[1:]] == ["'-", "'@ответ", "ok"]


def test_a_mail_without_a_list_is_told_the_format() -> None:
    text = list_report(ListResult(1, ()), subject="Привет", notes=[], locate=nowhere).text

    assert "не нашлось ни одной строки с показаниями" in text
    assert "1234567890 12345 6789" in text
    assert "Строк с показаниями" not in text
