"""Whether the gateway may act on and reply to one received email (pure, headers only).

Two questions, both answered as ``(bool, reason)`` so the caller can log the reason:

* :func:`may_reply` — is this mail written by a person, so that acting on it and answering
  it cannot start a mail loop or answer a bounce, an auto-reply or a mailing list? A bounce
  quotes the gateway's own report (accounts and all), so a refused mail must not be read
  as a list either.
* :func:`authenticated_sender` — when the receiving MTA's authserv-id is configured
  (``GATEWAY_EMAIL_AUTHSERV_ID``), may the From address be believed (DMARC pass, or a
  DKIM pass aligned with From), so the mail may act as that elder?

Nothing here raises on a malformed header: a header that cannot be read counts as absent,
and an absent or ambiguous From is a refusal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import Message
from email.utils import getaddresses, parseaddr

# Local parts that only ever send delivery reports.
_DAEMON_SENDERS = frozenset({"mailer-daemon", "postmaster"})
# Precedence values of list and bulk mail (RFC 3834 §2), and of some auto-responders.
_BULK_PRECEDENCE = frozenset({"bulk", "list", "junk", "auto_reply"})
# Non-standard markers of auto-replies some providers add instead of Auto-Submitted.
_AUTOREPLY_HEADERS = ("X-Autoreply", "X-Autorespond")


def header_text(message: Message, name: str) -> str | None:
    """The first ``name`` header as unfolded text, or None when absent or unreadable."""
    try:
        value = message.get(name)
    except Exception:  # a header the email package cannot parse counts as absent
        return None
    if value is None:
        return None
    return " ".join(str(value).split())


def _all_headers(message: Message, name: str) -> list[str]:
    try:
        values = message.get_all(name) or []
    except Exception:
        return []
    return [" ".join(str(value).split()) for value in values]


def from_address(message: Message) -> str | None:
    """The author's bare address, lower-cased: the one address of the one From header.

    None when From is missing, unreadable, holds no address or more than one, or when
    the message has more than one From header (a known way to make a filter and a reader
    see different authors)."""
    froms = _all_headers(message, "From")
    if len(froms) != 1:
        return None
    addresses = [addr for _, addr in getaddresses(froms) if addr]
    if len(addresses) != 1:
        return None
    address = addresses[0].strip().lower()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        return None
    return address


def _domain(address: str) -> str:
    return address.rpartition("@")[2].strip().strip(".").lower()


def _first_token(value: str) -> str:
    """The keyword of a header like ``auto-replied; owner-email="x@y"`` or ``bulk (x)``."""
    value = _strip_comments(value)
    return value.split(";", 1)[0].strip().strip('"').lower()


def may_reply(message: Message, *, envelope_from: str | None = None) -> tuple[bool, str]:
    """Whether the gateway may act on and answer this mail, with the reason when not.

    ``envelope_from`` is the SMTP ``MAIL FROM`` when the gateway received the mail itself
    (``""`` or ``"<>"`` for a bounce); None when it is unknown (mail fetched from a box),
    and then the ``Return-Path`` header the delivering MTA wrote stands for it and must be
    present. Refused, in this order:

    * a null envelope sender (``MAIL FROM:<>``), or with no envelope a missing or null
      ``Return-Path``: a bounce or a delivery notice;
    * ``Content-Type: multipart/report`` (DSN, MDN);
    * ``Auto-Submitted`` with any value other than ``no`` (RFC 3834), or the
      ``X-Autoreply`` / ``X-Autorespond`` markers some providers use instead;
    * ``List-Id`` (a mailing list; ``List-Unsubscribe`` alone is not used: some personal
      mail services add it, and a refusal here means the elder's list is not read);
    * ``Precedence: bulk | list | junk | auto_reply``;
    * no single From address, or a From of ``mailer-daemon`` / ``postmaster``.
    """
    if envelope_from is not None:
        if parse_path(envelope_from) == "":
            return False, "bounce: null envelope sender"
    else:
        return_path = header_text(message, "Return-Path")
        if return_path is None:
            return False, "bounce?: no Return-Path and no envelope sender"
        if parse_path(return_path) == "":
            return False, "bounce: null Return-Path"
    if message.get_content_type() == "multipart/report":
        return False, "bounce: multipart/report"
    auto = header_text(message, "Auto-Submitted")
    if auto is not None and _first_token(auto) != "no":
        return False, f"auto-submitted: {_first_token(auto) or 'empty'}"
    for name in _AUTOREPLY_HEADERS:
        if header_text(message, name) is not None:
            return False, f"auto-reply: {name}"
    if header_text(message, "List-Id") is not None:
        return False, "mailing list: List-Id"
    precedence = header_text(message, "Precedence")
    if precedence is not None and _first_token(precedence) in _BULK_PRECEDENCE:
        return False, f"precedence: {_first_token(precedence)}"
    sender = from_address(message)
    if sender is None:
        return False, "no single From address"
    if sender.rpartition("@")[0] in _DAEMON_SENDERS:
        return False, f"daemon sender: {sender}"
    return True, "ok"


def parse_path(path: str) -> str:
    """The address of a reverse path (``<a@b>``, ``a@b``, ``<>``); ``""`` for the null
    path. An address-less path counts as null."""
    path = path.strip()
    if path in ("", "<>"):
        return ""
    return parseaddr(path)[1].strip()


# --- Authentication-Results (RFC 8601) -------------------------------------------------

_COMMENT = re.compile(r"\([^()]*\)")
_RESULT = re.compile(r"^\s*([a-z0-9_-]+)\s*(?:/\s*[0-9]+\s*)?=\s*([a-z0-9_-]+)")
_PROPERTY = re.compile(r"([a-z0-9_-]+)\s*\.\s*([a-z0-9_.-]+)\s*=\s*(\"[^\"]*\"|[^\s;]+)")


def _strip_comments(value: str) -> str:
    """Remove ``(comments)``, nested ones too, innermost first."""
    for _ in range(10):  # bounded: a pathological nesting keeps its deepest remnants
        stripped = _COMMENT.sub(" ", value)
        if stripped == value:
            break
        value = stripped
    return value


@dataclass(frozen=True, slots=True)
class AuthResult:
    """One result of an Authentication-Results header: ``dkim=pass header.d=example.ru``
    gives method ``dkim``, result ``pass`` and properties ``{"header.d": "example.ru"}``
    (all lower-cased)."""

    method: str
    result: str
    properties: dict[str, str] = field(default_factory=dict)


def parse_authentication_results(value: str) -> tuple[str, list[AuthResult]]:
    """The authserv-id (lower-cased) and the results of one header value, tolerantly:
    comments dropped, unknown pieces skipped, ``none`` gives no results."""
    text = _strip_comments(value).lower()
    head, _, rest = text.partition(";")
    tokens = head.split()
    authserv_id = tokens[0] if tokens else ""
    results: list[AuthResult] = []
    for piece in rest.split(";"):
        match = _RESULT.match(piece)
        if match is None:
            continue
        properties: dict[str, str] = {}
        for ptype, prop, pvalue in _PROPERTY.findall(piece[match.end() :]):
            properties.setdefault(f"{ptype}.{prop}", pvalue.strip('"'))
        results.append(AuthResult(match.group(1), match.group(2), properties))
    return authserv_id, results


def _aligned(signing_domain: str, from_domain: str) -> bool:
    """DKIM alignment as used here: the signing domain equals the From domain or is a
    parent of it (``d=example.ru`` aligns with ``From: x@mail.example.ru``), and has at
    least two labels.

    This replaces the organisational-domain rule of DMARC relaxed alignment with no public
    suffix list: it is stricter in one direction (a signature of a *sub*-domain of the
    From domain does not count) and cannot be fooled by multi-label suffixes the way "same
    last two labels" would (``evil.msk.ru`` vs ``elder.msk.ru``, ``*.co.uk``): a DKIM pass
    for ``d`` needs ``d``'s DNS zone, and a parent zone's owner controls the child."""
    signing_domain = signing_domain.strip().strip(".").lower()
    if signing_domain.count(".") < 1:
        return False
    return from_domain == signing_domain or from_domain.endswith("." + signing_domain)


def authenticated_sender(message: Message, authserv_id: str | None) -> tuple[bool, str]:
    """Whether the From address may be believed, with the reason.

    With no ``authserv_id`` configured the From is trusted as it is. Otherwise only
    ``Authentication-Results`` headers whose authserv-id equals it (case-insensitive)
    are read; any other (a sender can write one claiming anything) is ignored. The
    receiving MTA must remove incoming headers bearing its own authserv-id (RFC 8601 §5);
    as defence in depth, for each method only the topmost trusted header that reports it
    counts, since the MTA's own headers sit above any the mail arrived with.

    Trusted when that header holds ``dmarc=pass`` (whose ``header.from``, when given, is
    the From domain), or ``dkim=pass`` whose ``header.d`` (else the domain of
    ``header.i``) is aligned with the From domain (see :func:`_aligned`)."""
    if not authserv_id:
        return True, "authentication not configured"
    sender = from_address(message)
    if sender is None:
        return False, "no single From address"
    from_domain = _domain(sender)
    wanted = authserv_id.strip().lower()
    by_method: dict[str, list[AuthResult]] = {}
    seen = False
    for value in _all_headers(message, "Authentication-Results"):
        server, results = parse_authentication_results(value)
        if server != wanted:
            continue
        seen = True
        methods: dict[str, list[AuthResult]] = {}
        for result in results:
            methods.setdefault(result.method, []).append(result)
        for method, found in methods.items():
            by_method.setdefault(method, found)  # the topmost header wins
    if not seen:
        return False, f"no Authentication-Results from {wanted}"
    for result in by_method.get("dmarc", []):
        header_from = result.properties.get("header.from", from_domain).strip(".")
        if result.result == "pass" and header_from == from_domain:
            return True, f"dmarc=pass for {from_domain}"
    for result in by_method.get("dkim", []):
        if result.result != "pass":
            continue
        domain = result.properties.get("header.d") or _domain(result.properties.get("header.i", ""))
        if domain and _aligned(domain, from_domain):
            return True, f"dkim=pass d={domain} aligned with {from_domain}"
    return False, f"no dmarc=pass nor aligned dkim=pass for {from_domain}"


__all__ = [
    "AuthResult",
    "authenticated_sender",
    "from_address",
    "header_text",
    "may_reply",
    "parse_authentication_results",
    "parse_path",
]
