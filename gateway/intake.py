"""The one service every channel calls: record, parse, validate, store, charge, reply."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from functools import partial

import structlog

from billing_bridge.charge import preliminary_charge
from gateway import metrics
from gateway.coalesce import Coalescer, Settled
from gateway.domain import matching, rules
from gateway.domain.authorization import OMISSIBLE_CHANNELS, ChannelAuthorization, Scope
from gateway.domain.errors import AlreadyRecorded, ErrorCode, StorageUnavailable
from gateway.domain.inbound import SMS_CHANNELS, admit
from gateway.domain.lists import ListLine, ListResult
from gateway.domain.model import Account, Entered, InboundMessage
from gateway.domain.outbound import REPLY_KIND
from gateway.domain.outcome import (
    AccountRequired,
    Confirmed,
    Failed,
    HeldForReview,
    LastReadings,
    NeedsHelp,
    NotAuthorized,
    Outcome,
    OutcomeError,
    OutsideWindow,
    ReadingLine,
    Reason,
    Refused,
    Status,
    Subscription,
    Unanswered,
    UnknownAccount,
    Unreadable,
)
from gateway.domain.periods import WindowPolicy, place
from gateway.domain.ports import Authorizer, ChargeQuote, Renderer
from gateway.domain.privacy import mask_sender
from gateway.domain.store import NewReading, Outbound, Store, StoredMessage, Taken, Transactor
from gateway.settings import Settings
from parsers import Command, ParseError, Submission, parse_list, parse_message
from parsers import ListLine as ParsedLine

log = structlog.get_logger("gateway.intake")

Clock = Callable[[], datetime]


@dataclass
class _Decision:
    """What handling a message decided: its outcome, and the readings to store with it."""

    outcome: Outcome
    readings: list[NewReading] = field(default_factory=list)
    taken_on: date | None = None
    period: str | None = None
    held: bool = False
    # For a confirmation: the date of its charge (billing's own charge may replace ours).
    charge_on: date | None = None


@dataclass
class _Handled:
    channel: str
    outcome: Outcome
    message_id: int | None = None  # None: answered from an earlier delivery
    decision: _Decision | None = None
    # The reply is queued (channels whose replies go through the outbound queue).
    queued: bool = False
    # Answered from an earlier delivery: that message's id.
    earlier_id: int | None = None


# Lines of a list decided in one transaction.
LIST_BATCH = 500
# The most concurrent messages decided together in one transaction.
MESSAGE_BATCH = 64
# After a batch of several messages, the next one waits at most this many seconds for
# their senders' next messages (see gateway.coalesce): a provider that keeps N requests in
# flight gets batches of N, not two halves taking turns.
BATCH_LINGER = 0.003


class Intake:
    """Record, parse, match, validate, store and charge one message, in one transaction.

    The transaction logic is synchronous (see :class:`gateway.storage.Database`); only the
    hop into it is awaited. It decides; it does not word: every outcome carries a typed
    :data:`~gateway.domain.outcome.Reason`, and the renderer of the message's channel
    (bound in ``bootstrap``) words it once the charge is final — at the end of the unit of
    work with the local charge, and again when billing's own charge replaces it."""

    def __init__(
        self,
        db: Transactor,
        settings: Settings,
        clock: Clock,
        quote: ChargeQuote | None = None,
        *,
        renderers: Mapping[str, Renderer],
        authorizer: Authorizer | None = None,
        notifiable: frozenset[str] = frozenset(),
        queued_replies: frozenset[str] = frozenset(),
    ) -> None:
        """``notifiable``: the channels that can send on their own initiative (a held
        submission's reply promises the decision only on those). ``queued_replies``: the
        channels whose reply is not an answer to the provider's request but a message of
        its own (SMPP's submit_sm): it is queued in the outbound queue (kind ``reply``)
        before :meth:`__call__` returns, once per message however often it is delivered."""
        self._db = db
        self._settings = settings
        self._clock = clock
        self._quote = quote
        self._renderers = renderers
        self._authorizer = authorizer or ChannelAuthorization()
        self._notifiable = notifiable
        self._queued_replies = queued_replies
        self._batches: Coalescer[_Item, _Handled] = Coalescer(
            self._store_batch, MESSAGE_BATCH, linger=BATCH_LINGER
        )

    async def __call__(self, message: InboundMessage) -> Outcome:
        """Handle one message; it is stored with its outcome before this returns.

        Raises :class:`StorageUnavailable` when the message could not be stored (the
        database is unreachable or timed out): the channel must then tell its provider
        to retry (a 503, a withheld SMPP response), never answer as if it was handled."""
        started = time.perf_counter()
        message = admit(message, self._settings.default_country_code)
        # Parsing needs no database: it is done before the transaction, so no row or
        # lock is held while it runs, and a long text is parsed off the event loop.
        parsed = await _read(message.text, omissible=message.channel in OMISSIBLE_CHANNELS)
        return await self._decide_and_store(message, parsed, started)

    async def submit(self, message: InboundMessage, entered: Entered) -> Outcome:
        """Readings entered register by register (a guided chat dialog): decided, stored
        and answered exactly as a text message with the same values would be, with no
        parsing. ``message.text`` is what the audit row shows (``entered.as_text()``
        when blank)."""
        if not message.text.strip():
            message = replace(message, text=entered.as_text())
        message = admit(message, self._settings.default_country_code)
        return await self._decide_and_store(message, _Read(entered))

    async def preview(self, message: InboundMessage, entered: Entered) -> Outcome:
        """What :meth:`submit` would answer now, without storing or recording anything:
        the summary a guided dialog shows before the customer confirms (the charge is
        the local one)."""
        message = admit(message, self._settings.default_country_code)
        decision = await self._db.run(lambda uow: self._evaluate(uow, message, _Read(entered)))
        return self._worded(message.channel, decision.outcome)

    async def _decide_and_store(
        self, message: InboundMessage, parsed: _Read, started: float | None = None
    ) -> Outcome:
        try:
            handled = await self._batches.submit((message, parsed))
            outcome = await self._billing_charge(handled)
            if message.channel in self._queued_replies and not handled.queued:
                await self._queue_reply_after(message, handled, outcome)
        except StorageUnavailable as exc:
            _log_unavailable(message, exc)
            raise
        except Exception:
            log.exception(
                "message_failed", channel=message.channel, sender=mask_sender(message.sender)
            )
            outcome = self._worded(message.channel, _rejected(None, ErrorCode.INTERNAL, Failed()))
            await self._record_failure(message, outcome)
        error = outcome.error.code if outcome.error else None
        seconds = time.perf_counter() - (started or time.perf_counter())
        metrics.handled(message.channel, outcome.status.value, error, seconds)
        log.info(
            "message_handled",
            channel=message.channel,
            external_id=message.external_id,
            sender=mask_sender(message.sender),
            status=outcome.status.value,
            error=outcome.error.code if outcome.error else None,
            account=outcome.account,
        )
        return outcome

    async def handle_list(self, message: InboundMessage) -> ListResult:
        """An elder's list: every data line (``parsers.parse_list``) is a submission of its
        own, decided exactly as a message would be, with its own outcome and line number,
        and all of it stored with the one inbound message. Lines are stored in batches of
        :data:`LIST_BATCH`, each batch one transaction, so a list of thousands never holds
        the database for long; the last one writes every line's outcome into the audit
        row. A redelivery of the same message (its external id) is answered as before
        when it was finished; when it was interrupted, every line is decided again, and
        those already stored are duplicates, confirmed and not stored twice. The rate
        limit counts the message, not its lines."""
        began = time.perf_counter()
        message = admit(message, self._settings.default_country_code)
        lines = await asyncio.to_thread(lambda: list(parse_list(message.text)))
        try:
            started = await self._db.run(lambda uow: self._start_list(uow, message))
            if started.rate_limited:
                return started
            if started.complete:
                return started
            done: list[ListLine] = []
            todo = lines
            # At least one batch, even empty: it marks the list complete.
            batches = [todo[at : at + LIST_BATCH] for at in range(0, len(todo), LIST_BATCH)]
            for index, batch in enumerate(batches or [[]]):
                store = partial(
                    self._list_batch,
                    message=message,
                    message_id=started.message_id,
                    done=done,
                    lines=batch,
                    last=index == len(batches) - 1 or not batches,
                )
                done += await self._db.run(store)
        except StorageUnavailable as exc:
            _log_unavailable(message, exc)
            raise
        result = ListResult(started.message_id, tuple(done))
        metrics.handled(message.channel, "list", None, time.perf_counter() - began)
        log.info(
            "list_handled",
            channel=message.channel,
            sender=mask_sender(message.sender),
            lines=len(result.lines),
            **result.counts(),
        )
        return result

    def _start_list(self, uow: Store, message: InboundMessage) -> ListResult:
        """The audit row of the list (or the one an earlier delivery left, with the lines
        it stored); the rate limit counts the message."""
        if message.external_id is not None:
            stored = uow.messages.find(message.channel, message.external_id)
            if stored is not None:
                # Finished: answered as before; interrupted: decided again (not complete).
                return ListResult.from_json(stored.id, stored.outcome)
        if message.sender:
            uow.messages.lock_sender(message.channel, message.sender)
            if self._is_rate_limited(uow, message):
                limited = _rejected(None, ErrorCode.RATE_LIMITED, Unanswered())
                limited = self._worded(message.channel, limited)
                return ListResult(uow.messages.record(message, limited), (), rate_limited=True)
        pending = ListResult(0, (), complete=False)
        return ListResult(uow.messages.record(message, pending.as_outcome()), (), complete=False)

    def _list_batch(
        self,
        uow: Store,
        message: InboundMessage,
        message_id: int,
        done: Sequence[ListLine],
        lines: Sequence[ParsedLine],
        last: bool,
    ) -> list[ListLine]:
        added = []
        scope = self._authorizer.scope(uow.registry, message.origin)
        period = place(self._today(message), self._settings.window).period
        numbers = [line.result.account for line in lines if isinstance(line.result, Submission)]
        batch = _Batch.load(uow, numbers, period)
        for line in lines:
            decision = self._evaluate(uow, message, _Read(line.result), scope, batch)
            decision.outcome = self._worded(message.channel, decision.outcome)
            batch.take(message_id, message.received_at, decision)
            added.append(ListLine(line.number, line.text, decision.outcome))
        batch.flush()
        if last:
            finished = ListResult(message_id, (*done, *added))
            uow.messages.update_outcome(message_id, finished.as_outcome())
        return added

    async def _record_failure(self, message: InboundMessage, outcome: Outcome) -> None:
        """The audit row of a message whose handling failed. Recorded without the
        external id, so the provider's retry is handled afresh. Should even that fail
        for something in the message, it is recorded once more with its text replaced by
        a placeholder; if that fails too, the caller is told it was not stored."""
        failed = replace(message, external_id=None)
        try:
            await self._db.run(lambda uow: uow.messages.record(failed, outcome))
            return
        except StorageUnavailable as exc:
            _log_unavailable(message, exc)
            raise
        except Exception as exc:
            log.error("message_not_recorded", error=type(exc).__name__, attempt=1)
        bare = replace(failed, text=f"[not stored: {len(message.text)} characters]")
        try:
            await self._db.run(lambda uow: uow.messages.record(bare, outcome))
        except Exception as exc:
            log.error("message_not_recorded", error=type(exc).__name__, attempt=2)
            raise StorageUnavailable("the message could not be recorded") from exc

    async def _billing_charge(self, handled: _Handled) -> Outcome:
        """Billing's own charge instead of ours when it answers in time; the stored outcome
        is updated before the reply goes out. The database is not held while waiting."""
        decision, outcome = handled.decision, handled.outcome
        if self._quote is None or decision is None or decision.charge_on is None:
            return outcome
        assert outcome.account is not None
        charge = await self._quote(outcome.account, outcome.readings, decision.charge_on)
        if charge is None:
            return outcome
        quoted = self._worded(handled.channel, replace(outcome, charge=charge))
        message_id = handled.message_id
        assert message_id is not None
        try:
            await self._db.run(lambda uow: uow.messages.update_outcome(message_id, quoted))
        except StorageUnavailable as exc:
            # The message and its readings are stored with the local charge: answer with
            # what is stored, so a retry of the message gets the same reply.
            log.warning("billing_charge_not_recorded", reason=str(exc))
            return outcome
        return quoted

    async def _queue_reply_after(
        self, message: InboundMessage, handled: _Handled, outcome: Outcome
    ) -> None:
        """Queue the reply once the charge is final (billing's own may have reworded it),
        or the reply of an earlier delivery that was stored without its queued reply."""
        message_id = handled.message_id or handled.earlier_id
        if message_id is None or outcome.reply is None:
            return
        reply = outcome.reply
        await self._db.run(lambda uow: _queue_reply(uow, message, message_id, reply))

    async def _store_batch(self, items: list[_Item]) -> list[Settled]:
        """Messages that arrived together, decided in one unit of work (see
        :class:`_Batch`): a few statements for all of them, one commit. Should the batch
        fail — an error in one message, or another process recording one of them first —
        each is handled again alone, so only what fails alone fails."""
        if len(items) > 1:
            try:
                handled = await self._db.run(partial(self._handle_many, items=items))
            except StorageUnavailable as exc:
                return [(False, exc)] * len(items)
            except Exception as exc:
                log.warning("batch_split", messages=len(items), error=type(exc).__name__)
                metrics.batch(len(items), split=True)
            else:
                metrics.batch(len(items))
                return [(True, one) for one in handled]
        else:
            metrics.batch(1)
        settled: list[Settled] = []
        for item in items:
            try:
                settled.append((True, await self._store_alone(item)))
            except Exception as exc:
                settled.append((False, exc))
        return settled

    async def _store_alone(self, item: _Item) -> _Handled:
        try:
            handled = await self._db.run(partial(self._handle_many, items=[item]))
        except AlreadyRecorded:
            # A concurrent delivery of the same external id committed first: this
            # attempt now finds it and answers exactly as that one did.
            handled = await self._db.run(partial(self._handle_many, items=[item]))
        return handled[0]

    def _handle_many(self, uow: Store, items: Sequence[_Item]) -> list[_Handled]:
        period = place(self._today(items[0][0]), self._settings.window).period
        batch = _Batch.for_messages(uow, items, period)
        handled = [self._handle(uow, message, parsed, batch) for message, parsed in items]
        batch.flush()
        return handled

    def _handle(
        self, uow: Store, message: InboundMessage, parsed: _Read, batch: _Batch
    ) -> _Handled:
        if message.external_id is not None:
            stored = batch.find(message.channel, message.external_id)
            if stored is not None:
                earlier = Outcome.from_json(stored.outcome)
                handled = _Handled(message.channel, earlier, earlier_id=stored.id)
                if message.channel in self._queued_replies and earlier.reply is not None:
                    _queue_reply(uow, message, stored.id, earlier.reply)
                    handled.queued = True
                return handled
        if message.sender and self._is_rate_limited(uow, message, batch):
            decision = _Decision(_rejected(None, ErrorCode.RATE_LIMITED, Unanswered()))
        else:
            decision = self._evaluate(uow, message, parsed, batch=batch)
        # The charge is final here unless billing's own replaces it: word it now, so the
        # audit row holds the reply that goes out.
        decision.outcome = self._worded(message.channel, decision.outcome)
        handled = _Handled(message.channel, decision.outcome, None, decision)
        # Queued with the message unless billing's own charge may still reword it.
        final = self._quote is None or decision.charge_on is None
        if message.channel in self._queued_replies and final:
            handled.queued = True
        # Recorded (and its id set) when the batch stores what it decided.
        batch.record(message, handled)
        batch.take(handled, message.received_at, decision)
        return handled

    def _worded(self, channel: str, outcome: Outcome) -> Outcome:
        """``outcome`` with its reply in ``channel``'s words (the error's message too)."""
        render = self._renderers.get(channel)
        if render is None:  # a wiring mistake: the message is still decided and recorded
            log.error("no_renderer", channel=channel)
        reply = render(outcome) if render is not None else None
        error = outcome.error
        if error is not None:
            error = replace(error, message=reply or error.code)
        return outcome.worded(reply, error)

    def _is_rate_limited(
        self, uow: Store, message: InboundMessage, batch: _Batch | None = None
    ) -> bool:
        since = message.received_at - timedelta(minutes=1)
        if batch is None:
            recent = uow.messages.count_recent(message.channel, message.sender, since)
        else:
            recent = batch.count_recent(message.channel, message.sender, since)
        return recent >= self._settings.rate_limit_per_minute

    def _today(self, message: InboundMessage) -> date:
        """The supplier's local date of a message: the tariff date, the period's."""
        return message.received_at.astimezone(self._settings.zone).date()

    def _evaluate(
        self,
        uow: Store,
        message: InboundMessage,
        read: _Read,
        scope: Scope | None = None,
        batch: _Batch | None = None,
    ) -> _Decision:
        """Decide one submission. ``scope``: what the sender may act on, when already
        known; ``batch``: the accounts and history of a list's batch (a list asks once
        for all its lines)."""
        settings = self._settings
        today = self._today(message)
        parsed = read.first
        if isinstance(parsed, Command):
            return _Decision(self._command(uow, message, parsed, today))
        placement = place(today, settings.window)
        account = None
        if isinstance(parsed, Submission | Entered):
            account = _account(uow, parsed.account, placement.period, batch)
        if account is None and read.without_account is not None:
            # Perhaps the number was left out: the sender's own account, by its phone.
            implied = self._authorizer.implied_accounts(uow.registry, message.origin)
            if len(implied) > 1:
                required = AccountRequired(tuple(implied))
                return _Decision(_rejected(None, ErrorCode.ACCOUNT_REQUIRED, required))
            if implied:
                parsed = Submission(implied[0], read.without_account.items)
                account = _account(uow, parsed.account, placement.period, batch)
        if isinstance(parsed, ParseError):
            return _Decision(self._unreadable(uow, message, parsed, batch))
        if account is None:
            unknown = UnknownAccount(parsed.account)
            return _Decision(_rejected(parsed.account, ErrorCode.UNKNOWN_ACCOUNT, unknown))
        scope = scope or self._authorizer.scope(uow.registry, message.origin)
        if not scope.permits(account):
            refused = NotAuthorized(account.number, message.channel)
            return _Decision(_rejected(account.number, ErrorCode.NOT_AUTHORIZED, refused))
        if not placement.inside and settings.window.policy is WindowPolicy.REJECT:
            outside = OutsideWindow(account.number, settings.window, placement.opens)
            return _Decision(_rejected(account.number, ErrorCode.OUTSIDE_WINDOW, outside))
        pairs = (
            matching.entered(account, parsed.values)
            if isinstance(parsed, Entered)
            else matching.assign(account, parsed.items)
        )
        if isinstance(pairs, rules.Rejection):
            return _Decision(_refused(account, pairs, today))
        if rules.is_duplicate(pairs):
            # The same confirmation as when these values were first received.
            repeated = [rules.repeat_of_current(r) for r, _ in pairs]
            if any(r.current is not None and r.current.held for r, _ in pairs):
                return _Decision(self._held(message, account.number, repeated))
            on = repeated_on(repeated, today)
            outcome = self._confirm(uow, account, repeated, on, Status.DUPLICATE)
            return _Decision(outcome, charge_on=on)
        result = rules.check(pairs, today=today, max_jump=settings.max_jump)
        if isinstance(result, rules.Rejection):
            return _Decision(_refused(account, result, today))
        new = [
            NewReading(
                c.register,
                c.value,
                c.previous,
                c.consumption,
                days=rules.days_since_previous(c.register, today),
            )
            for c in result
        ]
        held = rules.outliers(
            result,
            today=today,
            factor=settings.outlier_factor,
            min_days=settings.outlier_min_days,
        )
        if held:
            held_outcome = self._held(message, account.number, result)
            return _Decision(held_outcome, new, today, placement.period, True)
        corrected = any(c.register.current is not None for c in result)
        # Accepted outside the window: the reply names the period it counts for.
        period = None if placement.inside else placement.period
        confirmed = Confirmed(account.number, corrected=corrected, period=period)
        outcome = self._confirm(uow, account, result, today, Status.ACCEPTED, confirmed)
        return _Decision(outcome, new, today, placement.period, charge_on=today)

    def _held(
        self, message: InboundMessage, account: str, checked: Sequence[rules.Checked]
    ) -> Outcome:
        """Accepted for checking: stored, neither charged nor forwarded until an operator
        decides; the sender is told of the decision when their channel can send."""
        lines = _reading_lines(checked)
        held = HeldForReview(account, notify=message.channel in self._notifiable)
        return Outcome(Status.HELD, account, None, readings=lines, reason=held)

    def _unreadable(
        self, uow: Store, message: InboundMessage, err: ParseError, batch: _Batch | None
    ) -> Outcome:
        """Text that is not readings: the help once a day for chatter, else the problem and
        the format of the sender's account when the text starts with a known account."""
        if err.code == ErrorCode.NOT_READINGS:
            since = message.received_at - timedelta(days=1)
            if batch is not None:
                batch.flush()  # the batch's own earlier messages count too
            helped = uow.messages.count_recent(
                message.channel, message.sender, since, error_code=ErrorCode.NOT_READINGS
            )
            reason: Reason = Unanswered() if message.sender and helped else NeedsHelp()
            return _rejected(None, ErrorCode.NOT_READINGS, reason)
        account = uow.registry.load_account(err.account) if err.account else None
        unreadable = Unreadable(err.message, account, err.kind, err.token, err.position)
        return _rejected(
            err.account if account is None else account.number, ErrorCode.UNPARSEABLE, unreadable
        )

    def _command(
        self, uow: Store, message: InboundMessage, command: Command, today: date
    ) -> Outcome:
        if command.kind == "help":
            return Outcome(Status.ANSWERED, None, None, reason=NeedsHelp())
        if command.kind in ("stop", "start"):
            return self._subscription(uow, message, stop=command.kind == "stop")
        assert command.account is not None
        account = uow.registry.load_account(command.account)
        if account is None:
            unknown = UnknownAccount(command.account)
            return _rejected(command.account, ErrorCode.UNKNOWN_ACCOUNT, unknown)
        if not self._authorizer.scope(uow.registry, message.origin).permits(account):
            refused = NotAuthorized(account.number, message.channel)
            return _rejected(account.number, ErrorCode.NOT_AUTHORIZED, refused)
        last = LastReadings(account, tuple(uow.registry.load_tariffs()), today)
        return Outcome(Status.ANSWERED, account.number, None, reason=last)

    def _subscription(self, uow: Store, message: InboundMessage, *, stop: bool) -> Outcome:
        """СТОП / СТАРТ from a phone: confirmed when it changes something, else unanswered
        (a repeated СТОП is not answered again); elsewhere the help text."""
        if message.channel not in SMS_CHANNELS or not message.sender:
            return Outcome(Status.ANSWERED, None, None, reason=NeedsHelp())
        phone = message.sender
        if stop:
            changed = uow.outbound.opt_out(phone, message.received_at)
        else:
            changed = uow.outbound.opt_in(phone)
        log.info("opt_out" if stop else "opt_in", sender=mask_sender(phone), changed=changed)
        reason: Reason = Subscription(stopped=stop) if changed else Unanswered()
        return Outcome(Status.ANSWERED, None, None, reason=reason)

    def _confirm(
        self,
        uow: Store,
        account: Account,
        checked: list[rules.Checked],
        on: date,
        status: Status,
        confirmed: Confirmed | None = None,
    ) -> Outcome:
        lines = _reading_lines(checked)
        charge = preliminary_charge(lines, uow.registry.load_tariffs(), account.debt, on)
        return Outcome(
            status=status,
            account=account.number,
            reply=None,
            readings=lines,
            charge=charge,
            reason=confirmed or Confirmed(account.number),
        )


Parsed = Submission | Command | ParseError | Entered

# Texts up to this length (one SMS) are parsed on the event loop: a thread hop would cost
# more than parsing them. Longer ones, up to the parser's bound, go to a worker thread.
_INLINE_PARSE_CHARS = 160


# An account number is at least this long: a shorter first number, or a text that does
# not parse, may be a message whose sender left the account number out.
_ACCOUNT_DIGITS = 6
_NO_ACCOUNT = "0"


@dataclass(frozen=True, slots=True)
class _Read:
    """The text as parsed, and — when the sender may have left the account number out —
    its values read as if it had been written (under a placeholder account)."""

    first: Parsed
    without_account: Submission | None = None


# A message and its text as parsed: what a batch of messages is made of.
_Item = tuple[InboundMessage, _Read]


async def _read(text: str, *, omissible: bool) -> _Read:
    if len(text) <= _INLINE_PARSE_CHARS:
        return _read_now(text, omissible)
    return await asyncio.to_thread(_read_now, text, omissible)


def _read_now(text: str, omissible: bool) -> _Read:
    first = _parse_now(text)
    if not omissible or isinstance(first, Command):
        return _Read(first)
    if isinstance(first, Submission) and len(first.account) >= _ACCOUNT_DIGITS:
        return _Read(first)
    second = _parse_now(f"{_NO_ACCOUNT} {text}")
    if isinstance(second, Submission) and second.account == _NO_ACCOUNT:
        return _Read(first, second)
    return _Read(first)


def _parse_now(text: str) -> Parsed:
    try:
        return parse_message(text)
    except ParseError as err:
        return err


def _account(uow: Store, number: str, period: str, batch: _Batch | None) -> Account | None:
    """The account a submission names, locked for the rest of the unit of work."""
    if batch is None:
        return uow.registry.load_account(number, period, lock=True)
    return batch.account(number, period)


@dataclass
class _Batch:
    """Submissions decided in one unit of work — the lines of a list, or messages that
    arrived together — shaped for few statements: their accounts are loaded (and locked),
    with their registers' readings and history, at once; for messages, their earlier
    deliveries are looked up in one query and their senders' recent messages (the rate
    limit) in another. The readings they take are stored together at the end — or before
    a later submission for an account that already took some is decided, so it sees them
    (a repeat is a duplicate, a change a correction). What was looked up ahead holds only
    until the batch itself changes it: a second message with the same provider id or
    from the same sender is looked up again, and so sees the first."""

    uow: Store
    period: str
    accounts: dict[str, Account]
    found: dict[tuple[str, str], StoredMessage] = field(default_factory=dict)
    recent: dict[tuple[str, str], list[datetime]] = field(default_factory=dict)
    # Provider ids and senders (by channel) a message of the batch already had.
    seen: set[tuple[str, str, str]] = field(default_factory=set)
    # Messages decided, to be recorded: their ids are set on their _Handled then.
    recording: list[tuple[InboundMessage, _Handled]] = field(default_factory=list)
    # Readings taken, with the message they came in (its id, or its _Handled).
    pending: list[tuple[int | _Handled, datetime, _Decision]] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, uow: Store, numbers: Sequence[str], period: str) -> _Batch:
        return cls(uow, period, uow.registry.load_accounts(numbers, period, lock=True))

    @classmethod
    def for_messages(cls, uow: Store, items: Sequence[_Item], period: str) -> _Batch:
        """Senders are locked before accounts, as a message alone locks them."""
        found: dict[tuple[str, str], StoredMessage] = {}
        recent: dict[tuple[str, str], list[datetime]] = {}
        for channel in {message.channel for message, _ in items}:
            mine = [message for message, _ in items if message.channel == channel]
            ids = [m.external_id for m in mine if m.external_id is not None]
            for external_id, stored in uow.messages.find_many(channel, ids).items():
                found[channel, external_id] = stored
            senders = sorted({m.sender for m in mine if m.sender})
            if senders:
                uow.messages.lock_senders(channel, senders)
                since = min(m.received_at for m in mine) - timedelta(minutes=1)
                for sender, times in uow.messages.recent(channel, senders, since).items():
                    recent[channel, sender] = times
        numbers = [
            read.first.account for _, read in items if isinstance(read.first, Submission | Entered)
        ]
        batch = cls.load(uow, numbers, period)
        batch.found, batch.recent = found, recent
        return batch

    def find(self, channel: str, external_id: str) -> StoredMessage | None:
        if ("id", channel, external_id) in self.seen:
            self.flush()
            return self.uow.messages.find(channel, external_id)
        self.seen.add(("id", channel, external_id))
        return self.found.get((channel, external_id))

    def count_recent(self, channel: str, sender: str, since: datetime) -> int:
        if ("sender", channel, sender) in self.seen or (channel, sender) not in self.recent:
            self.flush()
            return self.uow.messages.count_recent(channel, sender, since)
        self.seen.add(("sender", channel, sender))
        return sum(1 for at in self.recent[channel, sender] if at > since)

    def record(self, message: InboundMessage, handled: _Handled) -> None:
        self.recording.append((message, handled))

    def account(self, number: str, period: str) -> Account | None:
        if number in self.touched:
            self.flush()
            self.accounts.pop(number, None)
        if period != self.period:  # a batch across midnight into another period
            return self.uow.registry.load_account(number, period, lock=True)
        if number not in self.accounts:
            found = self.uow.registry.load_account(number, self.period, lock=True)
            if found is None:
                return None
            self.accounts[number] = found
        return self.accounts[number]

    def take(self, message: int | _Handled, taken_at: datetime, decision: _Decision) -> None:
        if decision.readings:
            self.pending.append((message, taken_at, decision))
            self.touched.update(r.register.account for r in decision.readings)

    def flush(self) -> None:
        """Record the decided messages in one statement (queueing the replies of channels
        that queue them), then store the pending readings: one call per kind (accepted,
        held) and date."""
        if self.recording:
            recorded = [(message, handled.outcome) for message, handled in self.recording]
            ids = self.uow.messages.record_many(recorded)
            for (message, handled), message_id in zip(self.recording, ids, strict=True):
                handled.message_id = message_id
                if handled.queued and handled.outcome.reply is not None:
                    _queue_reply(self.uow, message, message_id, handled.outcome.reply)
            self.recording.clear()
        groups: dict[tuple[bool, date, str], list[Taken]] = {}
        for ref, taken_at, decision in self.pending:
            assert decision.taken_on is not None and decision.period is not None
            of = ref if isinstance(ref, int) else ref.message_id
            assert of is not None
            key = (decision.held, decision.taken_on, decision.period)
            taken = groups.setdefault(key, [])
            taken.extend(Taken(of, taken_at, r) for r in decision.readings)
        # Accepted ones first (a stable sort: otherwise in the order they were decided).
        for (held, taken_on, period), taken in sorted(groups.items(), key=lambda g: g[0][0]):
            self.uow.readings.add_many(taken, taken_on, period, held=held)
        self.pending.clear()
        self.touched.clear()


def _queue_reply(uow: Store, message: InboundMessage, message_id: int, reply: str) -> None:
    """The reply to ``message`` into the outbound queue, unless it is there already."""
    if not uow.outbound.answered(message_id, REPLY_KIND):
        item = Outbound(message.channel, message.sender, reply, REPLY_KIND, message_id)
        uow.outbound.queue(item, message.received_at)


def _log_unavailable(message: InboundMessage, exc: StorageUnavailable) -> None:
    """One event per message that could not be stored, without a traceback."""
    log.warning(
        "message_not_stored",
        channel=message.channel,
        sender=mask_sender(message.sender),
        reason=str(exc),
    )


def repeated_on(checked: list[rules.Checked], default: date) -> date:
    """The date the repeated readings were first taken (their tariff date)."""
    dates = [c.register.current.taken_on for c in checked if c.register.current]
    return max(dates, default=default)


def _reading_lines(checked: Sequence[rules.Checked]) -> tuple[ReadingLine, ...]:
    return tuple(
        ReadingLine(
            meter=c.register.meter,
            service=c.register.service.value,
            zone=c.register.zone.value,
            value=c.value,
            previous=c.previous,
            consumption=c.consumption,
        )
        for c in checked
    )


def _rejected(account: str | None, code: ErrorCode, reason: Reason) -> Outcome:
    """A rejection, to be worded (its error message is the reply, or the code)."""
    return Outcome(
        status=Status.REJECTED,
        account=account,
        reply=None,
        error=OutcomeError(code.value, code.value),
        reason=reason,
    )


def _refused(account: Account, rejection: rules.Rejection, today: date) -> Outcome:
    return _rejected(account.number, rejection.code, Refused(account, rejection, today))
