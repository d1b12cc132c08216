"""Who may act on which account: one policy for every channel.

- SMS (any provider): any account, as a paper form would; a sender whose phone is the
  registry phone of exactly one account may leave the account number out.
- An elder (email): the accounts of the buildings the supplier assigned to that elder.
- A chat: the accounts linked to it (the Telegram channel adds the links); with exactly
  one linked account the number may be left out.
- Anything else: nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gateway.domain.inbound import SMS_CHANNELS
from gateway.domain.model import Account, Sender

ELDER_CHANNEL = "email"
CHAT_CHANNEL = "telegram"
# Channels whose senders may leave the account number out when it is implied.
OMISSIBLE_CHANNELS = SMS_CHANNELS | {CHAT_CHANNEL}


class Directory(Protocol):
    """The registry lookups authorization needs (the storage answers them)."""

    def accounts_by_phone(self, phone: str) -> list[str]: ...

    def elder_buildings(self, email: str) -> frozenset[str]: ...

    def chat_accounts(self, chat: str) -> frozenset[str]: ...


@dataclass(frozen=True, slots=True)
class Scope:
    """What one sender may act on."""

    everything: bool = False
    buildings: frozenset[str] = frozenset()
    accounts: frozenset[str] = frozenset()

    def permits(self, account: Account) -> bool:
        if self.everything or account.number in self.accounts:
            return True
        return bool(account.building) and account.building in self.buildings


class ChannelAuthorization:
    """The gateway's authorization port (see the module's rules)."""

    def scope(self, directory: Directory, sender: Sender) -> Scope:
        if sender.channel in SMS_CHANNELS:
            return Scope(everything=True)
        if sender.channel == ELDER_CHANNEL and sender.address:
            return Scope(buildings=directory.elder_buildings(sender.address))
        if sender.channel == CHAT_CHANNEL and sender.address:
            return Scope(accounts=directory.chat_accounts(sender.address))
        return Scope()

    def implied_accounts(self, directory: Directory, sender: Sender) -> list[str]:
        """The accounts a sender may mean when the number is left out: an SMS sender's
        own, by the registry phone; a chat's linked ones. Exactly one may be left out."""
        if sender.channel in SMS_CHANNELS and sender.address:
            return directory.accounts_by_phone(sender.address)
        if sender.channel == CHAT_CHANNEL and sender.address:
            return sorted(directory.chat_accounts(sender.address))
        return []
