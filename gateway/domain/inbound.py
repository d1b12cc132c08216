"""What the intake does to every inbound message before anything else reads it.

Channels hand over what the provider sent, which may be anything: a NUL in the text, a
``From`` of ten thousand characters, a phone written three ways. The intake admits a
message through :func:`admit`, so the parser, the rate limit, the database and the reply
all see the same clean values, and nothing a sender writes can make storing it fail.
"""

from __future__ import annotations

import re
from dataclasses import replace

from gateway.domain.model import InboundMessage

# C0 and C1 controls (tab, line feed and carriage return are ordinary white space),
# UTF-16 surrogates (a lone one cannot be encoded) and the two non-characters XML 1.0
# forbids. None of them means anything in a reading; each becomes a space, so a control
# between two numbers still separates them.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
# In a sender or an id a space is as wrong as a control: they are dropped.
_ADDRESS_NOISE = re.compile(r"[\s\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_PHONE_PUNCTUATION = re.compile(r"[\s()\-.]")
_DIGITS = re.compile(r"[0-9]+")

SMS_CHANNELS = frozenset({"sms", "smpp"})


def clean_text(text: str) -> str:
    """``text`` with every control character replaced by a space."""
    return _CONTROL.sub(" ", text)


def e164(raw: str, country_code: str = "7") -> str:
    """A phone number in E.164 (``+79120000001``) when it can be read as one.

    ``+7 912 000-00-01``, ``+7 (912) 000-00-01`` and ``79120000001`` are ``+79120000001``;
    with the Russian country code, ``89120000001`` (the trunk prefix 8) and ``9120000001``
    (ten digits) are too; ``00`` before a number is the international prefix. Anything
    else (a short number such as ``4545``, an alphanumeric sender) is returned as written.
    """
    compact = _PHONE_PUNCTUATION.sub("", raw)
    if compact.startswith("+") and _DIGITS.fullmatch(compact[1:]):
        return compact
    if not _DIGITS.fullmatch(compact):
        return raw
    if compact.startswith("00") and len(compact) > 8:
        return "+" + compact[2:]
    if country_code == "7":
        if len(compact) == 11 and compact[0] in "78":
            return "+7" + compact[1:]
        if len(compact) == 10 and compact[0] == "9":
            return "+7" + compact
    elif len(compact) > 8 and compact.startswith(country_code):
        return "+" + compact
    return raw


def admit(message: InboundMessage, country_code: str = "7") -> InboundMessage:
    """The message with control characters out of its text, sender and id, and an SMS
    sender in E.164 so one phone is one sender however it was written."""
    sender = _ADDRESS_NOISE.sub("", message.sender)
    if message.channel in SMS_CHANNELS:
        sender = e164(sender, country_code)
    external_id = message.external_id
    if external_id is not None:
        external_id = _ADDRESS_NOISE.sub("", external_id) or None
    text = clean_text(message.text)
    if (text, sender, external_id) == (message.text, message.sender, message.external_id):
        return message  # already clean (nearly every message): no copy
    return replace(message, text=text, sender=sender, external_id=external_id)
