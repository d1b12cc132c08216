"""Masking what identifies a person before it reaches a log."""

from __future__ import annotations


def mask_sender(sender: str) -> str:
    """What a log may show of a sender: an international number's first digit (no more
    than its country code) and its last four, ``+79121234567`` → ``+7***4567``; the last
    two of a shorter id; nothing of one of six characters or fewer; an email's domain,
    ``name@example.org`` → ``n***@example.org``."""
    if "@" in sender:
        local, _, domain = sender.partition("@")
        return f"{local[:1]}***@{domain}"
    if len(sender) <= 6:
        return "***"
    if len(sender) < 10:  # short ids (Telegram users, short numbers)
        return f"***{sender[-2:]}"
    head = sender[:2] if sender.startswith("+") else ""
    return f"{head}***{sender[-4:]}"
