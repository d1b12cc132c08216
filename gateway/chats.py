"""The chat desk: what a chat channel (Telegram) asks of the gateway besides readings —
keeping updates, linking accounts with a proof, listing and unlinking them, preferences.

Readings themselves go through the intake like every channel's; this service holds the
rest of the chat's state (:mod:`gateway.domain.chats`) behind one unit of work per call.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Protocol, TypeVar

import structlog

from gateway.domain.chats import (
    LOCK_WINDOW,
    MAX_WRONG_ANSWERS,
    ChatPrefs,
    ChatStore,
    LinkFacts,
    LinkMethod,
    LinkOutcome,
    Proof,
    Verdict,
    locked_until,
    methods,
)
from gateway.domain.inbound import e164
from gateway.domain.model import Account
from gateway.domain.privacy import mask_sender
from gateway.domain.store import Store, StoredReading

log = structlog.get_logger("gateway.chats")


class ChatUnit(Store, Protocol):
    """A unit of work that also holds the chat channel's tables."""

    @property
    def chats(self) -> ChatStore: ...


T = TypeVar("T")


class ChatTransactor(Protocol):
    async def run(self, work: Callable[[ChatUnit], T]) -> T: ...


class ChatDesk:
    """The chat desk over the gateway's database (see :class:`gateway.domain.chats.Desk`)."""

    def __init__(
        self, db: ChatTransactor, clock: Callable[[], datetime], country_code: str = "7"
    ) -> None:
        self._db = db
        self._clock = clock
        self._country_code = country_code

    # ----- updates -------------------------------------------------------------------

    async def keep_update(self, update_id: int, payload: str) -> bool:
        now = self._clock()
        return await self._db.run(lambda uow: uow.chats.record_update(update_id, payload, now))

    async def processed(self, update_id: int) -> None:
        now = self._clock()
        await self._db.run(lambda uow: uow.chats.mark_processed(update_id, now))

    async def unprocessed(self, limit: int = 100) -> list[tuple[int, str]]:
        return await self._db.run(lambda uow: uow.chats.unprocessed(limit))

    # ----- linking -------------------------------------------------------------------

    async def start_link(self, chat: str, account: str) -> LinkOutcome:
        """Before asking a question: is there such an account, is it linked already, is
        linking it locked, can it be proved at all?"""
        now = self._clock()

        def check(uow: ChatUnit) -> LinkOutcome:
            gate = _gate(uow, chat, account, now)
            if isinstance(gate, LinkOutcome):
                return gate
            facts, wrong = gate
            if not methods(facts):
                return LinkOutcome(Verdict.NOT_OFFERED, facts)
            return LinkOutcome(Verdict.ASK, facts, MAX_WRONG_ANSWERS - len(wrong))

        return await self._db.run(check)

    async def prove(self, chat: str, account: str, proof: Proof) -> LinkOutcome:
        """Check ``proof``; link when it holds. Every attempt is recorded; a wrong one
        counts towards the lock, across all chats."""
        now = self._clock()

        def attempt(uow: ChatUnit) -> LinkOutcome:
            gate = _gate(uow, chat, account, now)
            if isinstance(gate, LinkOutcome):
                return gate
            facts, wrong = gate
            if proof.method not in methods(facts):
                return LinkOutcome(Verdict.NOT_OFFERED, facts)
            if proof.method is LinkMethod.CONTACT and proof.contact_user_id != proof.from_user_id:
                uow.chats.record_attempt(account, chat, proof.method, False, now)
                return LinkOutcome(Verdict.NOT_OWN_CONTACT, facts)
            ok = self._holds(facts, proof)
            uow.chats.record_attempt(account, chat, proof.method, ok, now)
            if ok:
                uow.chats.link(chat, account, now)
                return LinkOutcome(Verdict.LINKED, facts)
            wrong = [*wrong, now]
            until = locked_until(wrong)
            if until is not None:
                return LinkOutcome(Verdict.LOCKED, facts, until=until)
            return LinkOutcome(Verdict.WRONG, facts, MAX_WRONG_ANSWERS - len(wrong))

        outcome = await self._db.run(attempt)
        log.info(
            "link_attempt",
            chat=mask_sender(chat),
            method=proof.method.value,
            verdict=outcome.verdict.value,
        )
        return outcome

    def _holds(self, facts: LinkFacts, proof: Proof) -> bool:
        if proof.method is LinkMethod.RECEIPT_CODE:
            return _code(proof.answer) == _code(facts.receipt_code)
        if proof.method is LinkMethod.BILL_TOTAL:
            return facts.last_bill_total is not None and money(proof.answer) == (
                facts.last_bill_total
            )
        return e164(proof.answer, self._country_code) == facts.phone

    async def linked(self, chat: str) -> list[LinkFacts]:
        return await self._db.run(lambda uow: uow.chats.linked(chat))

    async def history(self, chat: str) -> list[tuple[LinkFacts, list[StoredReading]]]:
        """The chat's linked accounts, each with every reading received for it from any
        channel, oldest first."""

        def read(uow: ChatUnit) -> list[tuple[LinkFacts, list[StoredReading]]]:
            return [(f, uow.readings.history(f.account)) for f in uow.chats.linked(chat)]

        return await self._db.run(read)

    async def account(self, chat: str, account: str) -> Account | None:
        """A linked account with its registers and their last accepted readings (None
        when the chat has not linked it): what a guided dialog asks about."""

        def read(uow: ChatUnit) -> Account | None:
            if all(f.account != account for f in uow.chats.linked(chat)):
                return None
            return uow.registry.load_account(account)

        return await self._db.run(read)

    async def unlink(self, chat: str, account: str) -> bool:
        return await self._db.run(lambda uow: uow.chats.unlink(chat, account))

    # ----- preferences ---------------------------------------------------------------

    async def prefs(self, chat: str) -> ChatPrefs:
        return await self._db.run(lambda uow: uow.chats.prefs(chat))

    async def set_reminders(self, chat: str, on: bool) -> None:
        now = self._clock()
        await self._db.run(lambda uow: uow.chats.set_reminders(chat, on, now))

    async def mark_blocked(self, chat: str) -> None:
        """The user blocked the bot: the chat is never messaged again."""
        now = self._clock()
        await self._db.run(lambda uow: uow.chats.mark_blocked(chat, now))
        log.info("chat_blocked", chat=mask_sender(chat))


def _gate(
    uow: ChatUnit, chat: str, account: str, now: datetime
) -> LinkOutcome | tuple[LinkFacts, list[datetime]]:
    """Why linking cannot go on (no such account, linked already, locked), or the
    account's facts and its wrong answers within the window."""
    facts = uow.chats.link_facts(account)
    if facts is None:
        return LinkOutcome(Verdict.UNKNOWN)
    if any(f.account == account for f in uow.chats.linked(chat)):
        return LinkOutcome(Verdict.ALREADY, facts)
    wrong = uow.chats.wrong_answers(account, now - LOCK_WINDOW)
    until = locked_until(wrong)
    if until is not None and until > now:
        return LinkOutcome(Verdict.LOCKED, facts, until=until)
    return facts, wrong


# Spaces of any kind (a thin or no-break space groups thousands), the rouble sign and word.
_MONEY_NOISE = re.compile(r"[\s\u00a0\u202f\u2009]|₽|руб\.?|р\.", re.IGNORECASE)
_MONEY = re.compile(r"[0-9]+(?:[.,][0-9]{1,2})?")


def money(text: str) -> Decimal | None:
    """A bill total as people write it: ``1234.56``, ``1234,56``, ``1 234,56``,
    ``1234,56 ₽``; None when it is not an amount."""
    cleaned = _MONEY_NOISE.sub("", text)
    if not _MONEY.fullmatch(cleaned):
        return None
    try:
        return Decimal(cleaned.replace(",", "."))
    except InvalidOperation:
        return None


def _code(text: str) -> str:
    """A code as typed: case and spaces do not matter."""
    return re.sub(r"\s+", "", text).upper()
