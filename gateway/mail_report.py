"""The report an elder gets back for a list: a Russian text and a table of every line.

The text names the counts, the preliminary charge of each account the list confirmed and
every line that was not accepted — its line number (and its file and line there when it
came from an attachment), the line as written and why — then the attachments that could
not be read. Long lists are cut at :data:`MAX_LISTED` items per section; the table always
holds every line.

The table (:data:`TABLE_NAME`) is CSV in UTF-8 with a byte-order mark, separated by ``;``
with decimal commas: Excel with Russian regional settings opens it by a double click with
Cyrillic intact and numbers as numbers, and every other spreadsheet reads it too. A cell
that would start with ``=``, ``+``, ``-``, ``@`` (a formula to Excel) is prefixed with
``'``: what an elder's mail says never runs as a formula on the supplier's computer.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from decimal import Decimal

from gateway import replies
from gateway.domain.lists import ListLine, ListReport, ListResult, Locate
from gateway.domain.outcome import Charge, Status

TABLE_NAME = "otchet.csv"
# Items listed per section of the text (accounts, rejected lines); the rest are counted.
MAX_LISTED = 300
# The line as written, in the text (the table has it whole).
LINE_ECHO = 120

# The table's columns: a public contract (README "Connecting a mailbox"): add, never rename.
COLUMNS = (
    "строка",
    "файл",
    "строка в файле",
    "текст строки",
    "итог",
    "код ошибки",
    "лицевой счёт",
    "к оплате",
    "пояснение",
)

STATUS_WORDS = {
    Status.ACCEPTED: "принято",
    Status.DUPLICATE: "уже было принято",
    Status.HELD: "на проверке",
    Status.REJECTED: "не принято",
    Status.ANSWERED: "ответ",
}

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def list_report(
    result: ListResult, *, subject: str, notes: Sequence[str], locate: Locate
) -> ListReport:
    """The report of ``result`` (see the module's notes)."""
    return ListReport(_text(result, subject, notes, locate), _table(result, locate), TABLE_NAME)


def _text(result: ListResult, subject: str, notes: Sequence[str], locate: Locate) -> str:
    counts = result.counts()
    about = f"«{replies.safe(subject, 100)}»" if subject.strip() else "без темы"
    out = ["Здравствуйте!", "", f"Ваш список показаний (письмо {about}) обработан."]
    if not result.lines:
        out += [
            "",
            "В письме не нашлось ни одной строки с показаниями. Пишите по строке на "
            "лицевой счёт: номер счёта и показания через пробел, например:",
            "1234567890 12345 6789",
            "кв. 12 — 1234567891 345 210",
            "Можно в тексте письма или во вложении CSV или XLSX (Excel).",
        ]
    else:
        out += [
            "",
            f"Строк с показаниями: {len(result.lines)}. Принято: {counts['accepted']}, "
            f"уже были приняты раньше: {counts['duplicate']}, на проверке у оператора: "
            f"{counts['held']}, не принято: {counts['rejected']}.",
        ]
    charges = _charges(result.lines)
    if charges:
        out += ["", "Предварительно к оплате по лицевым счетам:"]
        for account, charge in list(charges.items())[:MAX_LISTED]:
            debt = f" (с долгом {replies.money(charge.debt)})" if charge.debt > 0 else ""
            out.append(f"• ЛС {replies.safe(account, 32)}: {replies.money(charge.total)}{debt}")
        out += _more(len(charges))
    held = [line for line in result.lines if line.outcome.status is Status.HELD]
    if held:
        out += [
            "",
            "На проверке у оператора (расход намного выше обычного; решение придёт "
            "отдельно или будет видно в квитанции):",
        ]
        out += [_line(line, locate) for line in held[:MAX_LISTED]]
        out += _more(len(held))
    rejected = [line for line in result.lines if line.outcome.status is Status.REJECTED]
    if rejected:
        out += ["", "Не принято — исправьте эти строки и пришлите их ещё раз:"]
        for line in rejected[:MAX_LISTED]:
            out.append(f"{_line(line, locate)} — {line.outcome.reply or _code(line)}")
        out += _more(len(rejected))
    if notes:
        out += ["", "Не прочитаны вложения:"] + [f"• {note}" for note in notes]
    out += [
        "",
        f"Итог по каждой строке — во вложении {TABLE_NAME} (открывается в Excel).",
        "",
        "Это письмо отправлено автоматически; отвечать на него не нужно.",
    ]
    return "\n".join(out) + "\n"


def _charges(lines: Sequence[ListLine]) -> dict[str, Charge]:
    """Each account's charge after the list: the last line that confirmed its readings."""
    charges: dict[str, Charge] = {}
    for line in lines:
        outcome = line.outcome
        if outcome.account is not None and outcome.charge is not None:
            charges.pop(outcome.account, None)
            charges[outcome.account] = outcome.charge
    return charges


def _line(line: ListLine, locate: Locate) -> str:
    text = replies.safe(line.text.strip(), LINE_ECHO)
    return f"• строка {line.line}{_where(line.line, locate)}: «{text}»"


def _where(number: int, locate: Locate) -> str:
    found = locate(number)
    if found is None:
        return ""
    name, at = found
    return f" ({replies.safe(name, 80)}, строка {at})"


def _more(total: int) -> list[str]:
    return [f"…и ещё {total - MAX_LISTED} — см. вложение."] if total > MAX_LISTED else []


def _code(line: ListLine) -> str:
    return line.outcome.error.code if line.outcome.error else line.outcome.status.value


def _table(result: ListResult, locate: Locate) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for line in result.lines:
        outcome = line.outcome
        found = locate(line.line)
        writer.writerow(
            [
                line.line,
                _cell(found[0]) if found else "",
                found[1] if found else "",
                _cell(line.text),
                STATUS_WORDS[outcome.status],
                outcome.error.code if outcome.error else "",
                _cell(outcome.account or ""),
                _decimal(outcome.charge.total) if outcome.charge else "",
                _cell(outcome.reply or ""),
            ]
        )
    return buffer.getvalue().encode("utf-8-sig")


def _cell(text: str) -> str:
    """Text as a spreadsheet shows it and never runs: a would-be formula gets a ``'``."""
    text = " ".join(text.split())
    return "'" + text if text.startswith(_FORMULA_START) else text


def _decimal(value: Decimal) -> str:
    return f"{value:.2f}".replace(".", ",")
