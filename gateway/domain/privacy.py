"""Masking what identifies a person before it reaches a log."""

from __future__ import annotations


def mask_sender(sender: str) -> str:
    """``+79121234567`` → ``+7912***4567``; ``name@example.org`` → ``n***@example.org``."""
    if "@" in sender:
        local, _, domain = sender.partition("@")
        return f"{local[:1]}***@{domain}"
    if len(sender) <= 6:
        return "***"
    if len(sender) < 10:  # short ids (Telegram users): reveal at most four characters
        return f"{sender[:2]}***{sender[-2:]}"
    return f"{sender[:5]}***{sender[-4:]}"
