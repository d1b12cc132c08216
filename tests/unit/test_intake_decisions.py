"""The intake's decisions against the in-memory storage fake (``tests.memory_store``): no
database, no network. The registry is the demo one of ``tests.conftest``; the clock stands
at 2026-11-20 12:00 Moscow time, inside the acceptance window (15th to 25th)."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from gateway.bootstrap import RENDERERS
from gateway.domain.errors import ErrorCode
from gateway.domain.model import InboundMessage, Service, Tariff, Zone
from gateway.domain.outcome import (
    AccountRequired,
    Confirmed,
    Failed,
    HeldForReview,
    NotAuthorized,
    Outcome,
    OutsideWindow,
    Refused,
    Status,
    Unanswered,
    UnknownAccount,
)
from gateway.domain.store import Taken
from gateway.intake import Intake
from gateway.settings import Settings
from tests.conftest import ACCOUNTS, METERS, START, TARIFFS
from tests.memory_store import MemoryReadings, MemoryStorage, Meter

# START: 2026-11-20 12:00 Moscow time.
ELDER = "Elder@Example.org"  # the registry keeps elders' addresses lower-cased
CHAT = "100"


def moscow_noon(day: int, month: int = 11) -> datetime:
    return datetime(2026, month, day, 9, 0, tzinfo=UTC)


def _date(text: str) -> date | None:
    return date.fromisoformat(text) if text else None


def demo_registry(meters_csv: str = METERS) -> MemoryStorage:
    """The fake holding the registry ``tests.conftest`` imports into a real database."""
    storage = MemoryStorage()
    meters: dict[str, list[Meter]] = defaultdict(list)
    for row in csv.DictReader(io.StringIO(meters_csv)):
        meters[row["account"]].append(
            Meter(
                row["meter"],
                Service(row["service"]),
                Zone(row["zone"]),
                row["digits"],
                _date(row["verified_until"]),
                Decimal(row["last_value"]) if row["last_value"] else None,
                _date(row["last_date"]),
            )
        )
    for row in csv.DictReader(io.StringIO(ACCOUNTS)):
        number = row["account"]
        storage.add_account(
            number,
            meters[number],
            debt=Decimal(row["debt"]),
            building=row["building"],
            phone=row["phone"],
        )
    for row in csv.DictReader(io.StringIO(TARIFFS)):
        valid_from = date.fromisoformat(row["valid_from"])
        tariff = Tariff(
            Service(row["service"]), Zone(row["zone"]), Decimal(row["price"]), valid_from
        )
        storage.add_tariff(tariff)
    return storage


@dataclass
class Clock:
    """A clock tests move by hand (as tests.conftest's)."""

    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@dataclass
class Harness:
    storage: MemoryStorage
    clock: Clock
    settings: Settings

    @property
    def intake(self) -> Intake:
        return Intake(self.storage, self.settings, self.clock, renderers=RENDERERS)

    async def send(
        self,
        text: str,
        sender: str = "+79120000001",
        channel: str = "sms",
        external_id: str | None = None,
    ) -> Outcome:
        return await self.intake(InboundMessage(channel, sender, text, self.clock(), external_id))

    def codes(self) -> list[str | None]:
        """The error code of every stored message, in order (None: no error)."""
        return [m.error_code for m in self.storage.state.messages]

    def nothing_but_messages(self) -> bool:
        s = self.storage.state
        return not s.readings and not s.outbox and not s.outbound


@pytest.fixture
def settings() -> Settings:
    """Settings as ``tests.conftest`` builds them; the database URL is never used."""
    return Settings.from_mapping(
        {"twilio_auth_token": "test-auth-token", "public_url": "https://gateway.example.org"}
    )


@pytest.fixture
def gw(settings: Settings) -> Harness:
    return Harness(demo_registry(), Clock(), settings)


def reading_values(outcome: Outcome) -> list[tuple[str, Decimal, Decimal | None, Decimal]]:
    return [(r.zone, r.value, r.previous, r.consumption) for r in outcome.readings]


# ----- accepted, duplicate, correction, held ------------------------------------------------


async def test_a_valid_reading_is_accepted_stored_forwarded_and_charged(gw: Harness) -> None:
    outcome = await gw.send("1234567890 12345 6789", external_id="SM1")

    assert (outcome.status, outcome.account, outcome.error) == (Status.ACCEPTED, "1234567890", None)
    assert outcome.reason == Confirmed("1234567890", corrected=False, period=None)
    assert reading_values(outcome) == [
        ("day", Decimal(12345), Decimal(12000), Decimal(345)),
        ("night", Decimal(6789), Decimal(6500), Decimal(289)),
    ]
    # 345 × 6.80 + 289 × 3.45 + debt 100.00
    assert outcome.charge is not None and outcome.charge.total == Decimal("3443.05")
    assert outcome.reply and "3443,05" in outcome.reply
    state = gw.storage.state
    (message,) = state.messages
    assert (message.status, message.error_code, message.account) == ("accepted", None, "1234567890")
    assert message.message.external_id == "SM1" and message.reply == outcome.reply
    assert message.outcome == outcome.to_json()
    assert [(r.value, r.status, r.period, r.message_id) for r in state.readings] == [
        (Decimal(12345), "accepted", "2026-11", message.id),
        (Decimal(6789), "accepted", "2026-11", message.id),
    ]
    assert [o.reading_id for o in state.outbox] == [r.id for r in state.readings]
    assert [(o.payload["kind"], o.payload["value"]) for o in state.outbox] == [
        ("reading", "12345"),
        ("reading", "6789"),
    ]


async def test_the_same_values_again_are_a_duplicate_and_nothing_new_is_stored(
    gw: Harness,
) -> None:
    first = await gw.send("1234567891 4600")
    gw.clock.advance(hours=2)
    again = await gw.send("1234567891 4600")

    assert again.status is Status.DUPLICATE and again.error is None
    assert again.reason == Confirmed("1234567891")
    assert again.readings == first.readings and again.charge == first.charge
    assert again.reply == first.reply
    assert [m.status for m in gw.storage.state.messages] == ["accepted", "duplicate"]
    assert len(gw.storage.state.readings) == 1 and len(gw.storage.state.outbox) == 1


async def test_a_correction_in_the_same_period_replaces_the_earlier_reading(gw: Harness) -> None:
    await gw.send("1234567891 4600")
    outcome = await gw.send("1234567891 4650")

    assert outcome.status is Status.ACCEPTED
    assert outcome.reason == Confirmed("1234567891", corrected=True)
    # Validated against the earlier period (the registry's 4521), not the reading it fixes.
    assert reading_values(outcome) == [("single", Decimal(4650), Decimal(4521), Decimal(129))]
    first, second = gw.storage.state.readings
    assert (first.status, second.status, second.replaces_id) == ("replaced", "accepted", first.id)
    assert [o.payload["kind"] for o in gw.storage.state.outbox] == ["reading", "correction"]
    assert gw.storage.state.outbox[1].payload["replaces"]["reading_id"] == first.id


HISTORY = "account,meter,service,zone,digits,verified_until,last_value,last_date\n" + (
    "1234567891,611002,electricity,single,5.1,2030-06-30,4000,2026-08-20\n"
)


@pytest.mark.parametrize(
    ("value", "status"),
    [(5530, Status.HELD), (4900, Status.ACCEPTED)],
    ids=["30-a-day-is-held", "10-a-day-is-accepted"],
)
async def test_an_outlier_is_held_unforwarded_and_usual_use_accepted(
    settings: Settings, value: int, status: Status
) -> None:
    """Two months of about 10 kWh a day; then 31 days at 30 a day is an outlier."""
    gw = Harness(demo_registry(HISTORY), Clock(), settings)
    for month, earlier in ((9, 4300), (10, 4600)):
        gw.clock.now = moscow_noon(20, month)
        assert (await gw.send(f"1234567891 {earlier}")).status is Status.ACCEPTED
    gw.clock.now = moscow_noon(20)

    outcome = await gw.send(f"1234567891 {value}")

    assert outcome.status is status and outcome.error is None
    readings, outbox = gw.storage.state.readings, gw.storage.state.outbox
    assert [r.period for r in readings] == ["2026-09", "2026-10", "2026-11"]
    if status is Status.HELD:
        assert isinstance(outcome.reason, HeldForReview) and outcome.charge is None
        assert outcome.reason.account == "1234567891"
        assert readings[-1].status == "held"
        assert len(outbox) == 2  # the two earlier months only
        assert [r.reading_id for r in gw.storage.readings.held()] == [readings[-1].id]
    else:
        assert outcome.reason == Confirmed("1234567891") and outcome.charge is not None
        assert readings[-1].status == "accepted" and len(outbox) == 3


# ----- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("1234567891 123456", ErrorCode.TOO_MANY_DIGITS),
        ("1234567890 11999 6789", ErrorCode.BELOW_PREVIOUS),
        ("1234567890 12345", ErrorCode.VALUE_COUNT),
        ("1234567890 13001 6789", ErrorCode.JUMP_TOO_LARGE),
    ],
)
async def test_a_rule_refusal_stores_nothing_but_the_audit_message(
    gw: Harness, text: str, code: ErrorCode
) -> None:
    outcome = await gw.send(text)

    assert outcome.status is Status.REJECTED and outcome.account == text.split()[0]
    assert outcome.error is not None and outcome.error.code == code
    assert isinstance(outcome.reason, Refused) and outcome.reason.rejection.code is code
    assert outcome.reason.account.number == outcome.account
    assert outcome.reply and outcome.error.message == outcome.reply
    assert gw.codes() == [code] and gw.nothing_but_messages()


async def test_an_unknown_account_is_refused(gw: Harness) -> None:
    outcome = await gw.send("9999999999 100")

    assert (outcome.status, outcome.account) == (Status.REJECTED, "9999999999")
    assert outcome.error is not None and outcome.error.code == ErrorCode.UNKNOWN_ACCOUNT
    assert outcome.reason == UnknownAccount("9999999999")
    assert gw.codes() == ["unknown_account"] and gw.nothing_but_messages()


# ----- who may act on what -------------------------------------------------------------------


async def test_an_elder_acts_only_on_the_accounts_of_their_buildings(gw: Harness) -> None:
    gw.storage.add_elder("elder@example.org", "b1")

    outside = await gw.send("0012345678 999990 311", ELDER, channel="email")  # building b2
    inside = await gw.send("1234567891 4600", ELDER, channel="email")  # building b1

    assert outside.error is not None and outside.error.code == ErrorCode.NOT_AUTHORIZED
    assert outside.reason == NotAuthorized("0012345678", "email")
    assert (inside.status, inside.account) == (Status.ACCEPTED, "1234567891")
    assert gw.codes() == ["not_authorized", None]
    assert [gw.storage.state.registers[r.register_id][0] for r in gw.storage.state.readings] == [
        "1234567891"
    ]


async def test_a_chat_acts_only_on_its_linked_accounts_and_may_leave_a_single_one_out(
    gw: Harness,
) -> None:
    gw.storage.link_chat(CHAT, "1234567891")

    unlinked = await gw.send("1234567890 12345 6789", CHAT, channel="telegram")
    named = await gw.send("1234567891 4600", CHAT, channel="telegram")
    left_out = await gw.send("4650", CHAT, channel="telegram")

    assert unlinked.error is not None and unlinked.error.code == ErrorCode.NOT_AUTHORIZED
    assert unlinked.reason == NotAuthorized("1234567890", "telegram")
    assert (named.status, named.account) == (Status.ACCEPTED, "1234567891")
    assert (left_out.status, left_out.account) == (Status.ACCEPTED, "1234567891")
    assert left_out.reason == Confirmed("1234567891", corrected=True)
    assert [r.value for r in gw.storage.readings_of("1234567890")] == []
    assert [r.value for r in gw.storage.readings_of("1234567891")] == [4600, 4650]


async def test_a_chat_with_two_linked_accounts_must_name_one(gw: Harness) -> None:
    gw.storage.link_chat(CHAT, "1234567891", "0012345678")

    outcome = await gw.send("4600", CHAT, channel="telegram")

    assert outcome.error is not None and outcome.error.code == ErrorCode.ACCOUNT_REQUIRED
    assert outcome.reason == AccountRequired(("0012345678", "1234567891"))
    assert gw.nothing_but_messages()


async def test_an_sms_sender_may_leave_out_the_one_account_of_their_phone(gw: Harness) -> None:
    outcome = await gw.send("4600", "8 912 000-00-02")  # the registry phone of 1234567891

    assert (outcome.status, outcome.account) == (Status.ACCEPTED, "1234567891")
    assert outcome.reason == Confirmed("1234567891")
    assert [r.value for r in gw.storage.readings_of("1234567891")] == [4600]
    assert gw.storage.state.messages[0].message.sender == "+79120000002"


async def test_an_sms_sender_whose_phone_has_two_accounts_must_name_one(gw: Harness) -> None:
    meter = Meter("611009", Service.ELECTRICITY, Zone.SINGLE, "5.1")
    gw.storage.add_account("1234567899", [meter], phone="+79120000002")

    outcome = await gw.send("4600", "+79120000002")

    assert (outcome.status, outcome.account) == (Status.REJECTED, None)
    assert outcome.error is not None and outcome.error.code == ErrorCode.ACCOUNT_REQUIRED
    assert outcome.reason == AccountRequired(("1234567891", "1234567899"))
    assert gw.codes() == ["account_required"] and gw.nothing_but_messages()


# ----- rate limit, redelivery, window ---------------------------------------------------------


async def test_the_rate_limit_silences_a_sender_for_the_rest_of_the_minute(
    gw: Harness, settings: Settings
) -> None:
    gw.settings = replace(settings, rate_limit_per_minute=3)
    for i in range(3):
        assert (await gw.send(f"абв {i}", "+79991112233")).status is Status.REJECTED
        gw.clock.advance(seconds=1)

    limited = await gw.send("1234567891 4600", "+79991112233")
    other = await gw.send("1234567890 12345 6789", "+79990000000")
    gw.clock.advance(seconds=60)
    later = await gw.send("1234567891 4600", "+79991112233")

    assert (limited.status, limited.reply) == (Status.REJECTED, None)
    assert limited.error is not None and limited.error.code == ErrorCode.RATE_LIMITED
    assert isinstance(limited.reason, Unanswered)
    assert other.status is Status.ACCEPTED and later.status is Status.ACCEPTED
    assert gw.codes() == ["unparseable"] * 3 + ["rate_limited", None, None]
    assert [r.value for r in gw.storage.readings_of("1234567891")] == [4600]  # `later` only
    assert gw.storage.readings_of("1234567891")[0].message_id == 6


async def test_a_repeated_external_id_is_answered_as_before_and_stored_once(gw: Harness) -> None:
    first = await gw.send("1234567891 4600", external_id="SMdup")
    again = await gw.send("1234567891 4600", external_id="SMdup")
    # Even with other text: the provider's id says it is the same message.
    changed = await gw.send("1234567891 4700", external_id="SMdup")
    other_channel = await gw.send("1234567891 4600", ELDER, channel="email", external_id="SMdup")

    assert first.status is Status.ACCEPTED
    assert again == first and changed == first
    assert (again.reply, again.charge) == (first.reply, first.charge)
    assert again.reason is None  # rebuilt from the stored JSON, not decided again
    assert other_channel.error is not None and other_channel.error.code == "not_authorized"
    assert len(gw.storage.state.messages) == 2
    assert [r.value for r in gw.storage.state.readings] == [4600]
    assert len(gw.storage.state.outbox) == 1


async def test_outside_the_window_a_rejecting_policy_refuses(
    gw: Harness, settings: Settings
) -> None:
    gw.settings = replace(settings, window_policy="reject")
    gw.clock.now = moscow_noon(27)

    outcome = await gw.send("1234567891 4600")

    assert outcome.error is not None and outcome.error.code == ErrorCode.OUTSIDE_WINDOW
    assert isinstance(outcome.reason, OutsideWindow)
    assert (outcome.reason.account, outcome.reason.opens) == ("1234567891", date(2026, 12, 15))
    assert gw.codes() == ["outside_window"] and gw.nothing_but_messages()


async def test_outside_the_window_the_next_period_policy_counts_it_for_the_next_period(
    gw: Harness,
) -> None:
    assert gw.settings.window_policy == "next_period"
    gw.clock.now = moscow_noon(27)

    outcome = await gw.send("1234567891 4600")

    assert outcome.status is Status.ACCEPTED
    assert outcome.reason == Confirmed("1234567891", period="2026-12")
    assert [(r.period, r.taken_on) for r in gw.storage.state.readings] == [
        ("2026-12", date(2026, 11, 27))
    ]
    assert gw.storage.state.outbox[0].payload["period"] == "2026-12"


# ----- an elder's list ------------------------------------------------------------------------

LIST = """Добрый день! Показания по дому 10, Пушкинская.

1. кв. 2 — 1234567891 4600
2. кв. 1 — 1234567890 11999 6789
3. кв. 2 — 1234567891 4600
4. 0012345678 999990 311
"""


async def test_a_list_decides_each_line_and_stores_all_of_it_with_one_message(
    gw: Harness,
) -> None:
    gw.storage.add_elder("elder@example.org", "b1")

    result = await gw.intake.handle_list(InboundMessage("email", ELDER, LIST, gw.clock(), "<l1>"))

    assert [
        (line.line, line.outcome.status, line.outcome.error and line.outcome.error.code)
        for line in result.lines
    ] == [
        (3, Status.ACCEPTED, None),
        (4, Status.REJECTED, "below_previous"),
        (5, Status.DUPLICATE, None),  # the same values again, within the list
        (6, Status.REJECTED, "not_authorized"),  # another building's account
    ]
    assert result.lines[0].text == "1. кв. 2 — 1234567891 4600"
    assert result.lines[3].outcome.reason == NotAuthorized("0012345678", "email")
    state = gw.storage.state
    (message,) = state.messages
    assert (message.id, message.status, message.reply) == (
        result.message_id,
        "answered",
        "4 lines: 1 accepted, 1 duplicates, 0 held, 2 rejected",
    )
    assert message.outcome["complete"] is True
    assert [line["status"] for line in message.outcome["lines"]] == [
        "accepted",
        "rejected",
        "duplicate",
        "rejected",
    ]
    assert [(r.value, r.message_id, r.status) for r in state.readings] == [
        (Decimal(4600), result.message_id, "accepted")
    ]
    assert len(state.outbox) == 1

    again = await gw.intake.handle_list(InboundMessage("email", ELDER, LIST, gw.clock(), "<l1>"))
    assert [line.to_json() for line in again.lines] == [line.to_json() for line in result.lines]
    assert len(state.messages) == 1 and len(gw.storage.state.readings) == 1


# ----- a failure inside the unit of work ------------------------------------------------------


class FailingReadings(MemoryReadings):
    """Stores the readings, then fails: the unit of work must undo all of it."""

    def add_many(
        self, taken: Sequence[Taken], taken_on: date, period: str, *, held: bool = False
    ) -> list[int]:
        super().add_many(taken, taken_on, period, held=held)
        raise RuntimeError("the disk is on fire")


async def test_a_failure_inside_the_unit_of_work_leaves_nothing_half_stored(
    gw: Harness,
) -> None:
    gw.storage.readings = FailingReadings(gw.storage)

    failed = await gw.send("1234567891 4600", external_id="SMfail")

    assert (failed.status, failed.account) == (Status.REJECTED, None)
    assert failed.error is not None and failed.error.code == ErrorCode.INTERNAL
    assert isinstance(failed.reason, Failed)
    state = gw.storage.state
    assert not state.readings and not state.outbox
    # Only the failure's own audit row, without the id so the provider's retry is fresh.
    (message,) = state.messages
    assert (message.error_code, message.message.external_id) == ("internal", None)

    gw.storage.readings = MemoryReadings(gw.storage)
    retried = await gw.send("1234567891 4600", external_id="SMfail")

    assert retried.status is Status.ACCEPTED
    assert [(r.value, r.message_id) for r in gw.storage.state.readings] == [(Decimal(4600), 2)]


# ----- СТОП / СТАРТ, and replies through the outbound queue -------------------------------


async def test_stop_and_start_change_the_phones_state_and_are_confirmed_once(
    gw: Harness,
) -> None:
    stopped = await gw.send("СТОП")
    again = await gw.send("stop")
    started = await gw.send("Старт")
    state_after = dict(gw.storage.state.opt_outs)
    started_again = await gw.send("START")

    assert stopped.reply is not None and "отключены" in stopped.reply
    assert again.reply is None and again.status is Status.ANSWERED  # recorded, not answered
    assert started.reply is not None and "снова включены" in started.reply
    assert started_again.reply is None
    assert state_after == {} and gw.storage.state.opt_outs == {}
    assert len(gw.storage.state.messages) == 4


async def test_stop_from_a_chat_is_answered_with_the_help_text(gw: Harness) -> None:
    outcome = await gw.send("СТОП", sender=CHAT, channel="telegram")

    assert outcome.reply is not None and "1234567890" in outcome.reply  # the formats
    assert gw.storage.state.opt_outs == {}


async def test_a_queued_reply_is_queued_with_the_message_once_however_often_delivered(
    gw: Harness,
) -> None:
    intake = Intake(
        gw.storage,
        gw.settings,
        gw.clock,
        renderers=RENDERERS,
        queued_replies=frozenset({"smpp"}),
    )
    message = InboundMessage("smpp", "+79120000001", "1234567890 12345 6789", gw.clock(), "m1")

    first = await intake(message)
    second = await intake(message)

    queued = gw.storage.state.outbound
    assert [(item.channel, item.recipient, item.kind) for item, _ in queued] == [
        ("smpp", "+79120000001", "reply")
    ]
    assert queued[0][0].text == first.reply == second.reply
