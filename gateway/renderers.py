"""Each channel's wording of an outcome. The intake decides and hands over a typed reason;
a renderer, bound per channel in ``bootstrap``, turns it into that channel's reply.

``sms``: the Russian texts of :mod:`gateway.replies`, each within two UCS-2 segments.
``chat``: a messenger's richer text from the same outcome — a confirmation lists each
register with its previous value, consumption, tariff and amount, then the debt and the
total; everything else is the SMS text (it already names the problem and the format).
Never over :data:`CHAT_LIMIT` characters.
"""

from __future__ import annotations

from billing_bridge.charge import normative_charge, tariff_in_force
from gateway import replies
from gateway.domain import periods
from gateway.domain.model import Service, Zone
from gateway.domain.outcome import (
    AccountRequired,
    Charge,
    Confirmed,
    Failed,
    HeldForReview,
    LastReadings,
    NeedsHelp,
    NotAuthorized,
    Outcome,
    OutsideWindow,
    ReadingLine,
    Refused,
    Status,
    Subscription,
    Unanswered,
    UnknownAccount,
    Unreadable,
)
from parsers import HELP_TEXT, problem_text


def sms(outcome: Outcome) -> str | None:
    """The SMS reply to ``outcome``; an outcome without a reason (one stored earlier and
    answered again) keeps the reply it was given."""
    reason = outcome.reason
    if reason is None:
        return outcome.reply
    if isinstance(reason, Confirmed):
        assert outcome.charge is not None, "a confirmation is worded with its charge"
        return replies.accepted(
            reason.account,
            outcome.readings,
            outcome.charge,
            corrected=reason.corrected,
            period=reason.period,
        )
    if isinstance(reason, HeldForReview):
        return replies.held_for_review(reason.account, notify=reason.notify)
    if isinstance(reason, Refused):
        return replies.rejected(reason.account, reason.rejection, reason.today)
    if isinstance(reason, UnknownAccount):
        return replies.unknown_account(reason.number)
    if isinstance(reason, OutsideWindow):
        return replies.outside_window(reason.account, reason.window, reason.opens)
    if isinstance(reason, Unreadable):
        if reason.account is None:
            return replies.safe(reason.problem)
        # The problem, then the account's own format instead of the generic hint.
        return replies.unparseable(reason.account, problem_text(reason.kind, reason.token))
    if isinstance(reason, NotAuthorized):
        return replies.not_authorized(reason.account, reason.channel)
    if isinstance(reason, AccountRequired):
        return replies.account_required(reason.accounts)
    if isinstance(reason, NeedsHelp):
        return HELP_TEXT
    if isinstance(reason, Subscription):
        return replies.STOPPED if reason.stopped else replies.STARTED
    if isinstance(reason, LastReadings):
        return replies.last_readings(reason.account, reason.tariffs, reason.today)
    if isinstance(reason, Unanswered):
        return None
    assert isinstance(reason, Failed)
    return replies.INTERNAL_ERROR


# Telegram refuses a message over 4,096 characters.
CHAT_LIMIT = 4096


def chat(outcome: Outcome) -> str | None:
    """The chat reply to ``outcome`` (see the module's notes)."""
    reason = outcome.reason
    if isinstance(reason, Confirmed) and outcome.charge is not None:
        head = "Исправлено" if reason.corrected else "Принято"
        if reason.period is not None:
            head += f" за {periods.label(reason.period)}"
        return charge_statement(f"{head}, ЛС {reason.account}", outcome.readings, outcome.charge)
    if isinstance(reason, LastReadings):
        return tariff_sheet(reason)
    text = sms(outcome)
    return None if text is None else text[:CHAT_LIMIT]


def chat_summary(outcome: Outcome) -> str:
    """A guided dialog's summary before the customer confirms: what would be accepted,
    with the consumption and the preliminary charge per line (or why not)."""
    reason = outcome.reason
    if isinstance(reason, Confirmed) and outcome.charge is not None:
        head = f"Проверьте и подтвердите, ЛС {reason.account}"
        if outcome.status is Status.DUPLICATE:
            head = f"Эти показания уже приняты, ЛС {reason.account}"
        return charge_statement(head, outcome.readings, outcome.charge)
    if isinstance(reason, HeldForReview):
        return (
            f"ЛС {reason.account}: расход намного выше обычного — после отправки показания "
            "проверит оператор."
        )
    return chat(outcome) or ""


def tariff_sheet(last: LastReadings) -> str:
    """Each register's last accepted reading and the tariff in force today, then the
    normative charge without readings."""
    lines = [f"ЛС {replies.safe(last.account.number, 32)}:"]
    for register in last.account.ordered_registers:
        label = replies.register_label(register.service, register.zone)
        previous = register.previous
        was = (
            "показаний нет"
            if previous is None
            else f"{replies.number(previous.value)} от {previous.taken_on:%d.%m.%Y}"
        )
        tariff = tariff_in_force(last.tariffs, register.service, register.zone, last.today)
        price = f", тариф {replies.money(tariff.price)}" if tariff else ", тарифа нет"
        lines.append(f"• {label} (счётчик {replies.safe(register.meter, 64)}): {was}{price}")
    services = [r.service for r in last.account.ordered_registers]
    normative = normative_charge(services, last.account.residents, list(last.tariffs), last.today)
    if normative is not None:
        lines.append(f"Без показаний по нормативу: {replies.money(normative)} в месяц")
    return "\n".join(lines)[:CHAT_LIMIT]


def charge_statement(head: str, readings: tuple[ReadingLine, ...], charge: Charge) -> str:
    """``head``, then a line per register (previous → current = consumption × tariff =
    amount), the debt and the preliminary total."""
    lines = [replies.safe(head, 200) + ":"]
    for reading, line in zip(readings, charge.lines, strict=False):
        label = replies.register_label(Service(reading.service), Zone(reading.zone))
        was = "—" if reading.previous is None else replies.number(reading.previous)
        text = f"• {label} (счётчик {replies.safe(reading.meter, 64)}): {was} → "
        text += f"{replies.number(reading.value)}, расход {replies.number(reading.consumption)}"
        if line.tariff is not None and line.amount is not None:
            text += f" × {replies.money(line.tariff)} = {replies.money(line.amount)}"
        lines.append(text)
    if charge.debt > 0:
        lines.append(f"Долг: {replies.money(charge.debt)}")
    lines.append(f"Итого к оплате (предварительно): {replies.money(charge.total)}")
    return "\n".join(lines)[:CHAT_LIMIT]
