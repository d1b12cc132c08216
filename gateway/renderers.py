"""Each channel's wording of an outcome. The intake decides and hands over a typed reason;
a renderer, bound per channel in ``bootstrap``, turns it into that channel's reply.

``sms``: the Russian texts of :mod:`gateway.replies`, each within two UCS-2 segments.
"""

from __future__ import annotations

from gateway import replies
from gateway.domain.outcome import (
    AccountRequired,
    Confirmed,
    Failed,
    HeldForReview,
    LastReadings,
    NeedsHelp,
    NotAuthorized,
    Outcome,
    OutsideWindow,
    Refused,
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
    if isinstance(reason, LastReadings):
        return replies.last_readings(reason.account, reason.tariffs, reason.today)
    if isinstance(reason, Unanswered):
        return None
    assert isinstance(reason, Failed)
    return replies.INTERNAL_ERROR
