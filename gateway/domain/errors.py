"""Error codes of the public contract (DESIGN.md). Add codes; never rename one."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    UNPARSEABLE = "unparseable"
    UNKNOWN_ACCOUNT = "unknown_account"
    VALUE_COUNT = "value_count"
    BELOW_PREVIOUS = "below_previous"
    JUMP_TOO_LARGE = "jump_too_large"
    TOO_MANY_DIGITS = "too_many_digits"
    VERIFICATION_EXPIRED = "verification_expired"
    OUTSIDE_WINDOW = "outside_window"
    NOT_AUTHORIZED = "not_authorized"
    RATE_LIMITED = "rate_limited"
    UNKNOWN_METER = "unknown_meter"
    AMBIGUOUS_LABEL = "ambiguous_label"
    NOT_READINGS = "not_readings"
    # The account number was left out and the sender's phone is the registry phone of
    # several accounts: which one?
    ACCOUNT_REQUIRED = "account_required"
    INTERNAL = "internal"
    # Email: a bounce, an auto-reply or mailing-list mail: recorded, not read, not answered.
    AUTOMATIC = "automatic"
    # Email: over the message size limit (GATEWAY_SMTP_MAX_BYTES): recorded, not read.
    TOO_LARGE = "too_large"
    # Email: GATEWAY_EMAIL_AUTHSERV_ID is set and the receiving server's checks did not
    # show the From address genuine (no DMARC pass, no aligned DKIM pass): not read.
    NOT_AUTHENTICATED = "not_authenticated"


class GatewayError(Exception):
    """Root of the gateway's own errors. ``retryable`` says whether trying again can help."""

    retryable: bool = False


class RegistryError(GatewayError):
    """A registry row or file is invalid; fixing the data is the only cure."""


class StorageUnavailable(GatewayError):
    """The database could not be reached or was busy; the same call may succeed later."""

    retryable = True


class AlreadyRecorded(GatewayError):
    """A message with this provider id was recorded meanwhile by a concurrent delivery of
    it: the unit of work is undone, and the message is answered as that one was."""

    retryable = True


class AccountNeeded(GatewayError):
    """A held submission holds several accounts' readings (a list): a review decision
    names the account it decides."""

    def __init__(self, message_id: int, accounts: tuple[str, ...]) -> None:
        super().__init__(
            f"submission {message_id} holds readings of several accounts: "
            f"{', '.join(accounts)}; name one with --account"
        )
        self.accounts = accounts


class SchemaMismatch(GatewayError):
    """The database's schema is not the one this gateway needs: `gateway db upgrade`
    brings it there, unless it is not the gateway's or a newer gateway upgraded it."""
