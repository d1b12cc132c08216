"""gateway.domain.authorization: the scope of each kind of sender (pure, a fake directory)."""

from __future__ import annotations

from decimal import Decimal

from gateway.domain.authorization import ChannelAuthorization, Scope
from gateway.domain.model import Account, Sender


class FakeDirectory:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def accounts_by_phone(self, phone: str) -> list[str]:
        self.asked.append(phone)
        return {"+79120000001": ["1111111111"], "+79120000009": ["2", "3"]}.get(phone, [])

    def elder_buildings(self, email: str) -> frozenset[str]:
        self.asked.append(email)
        return frozenset({"elder@example.org": {"b1", "b2"}}.get(email, set()))

    def chat_accounts(self, chat: str) -> frozenset[str]:
        self.asked.append(chat)
        return frozenset({"100": {"1111111111"}, "200": {"3", "2"}}.get(chat, set()))


def account(number: str, building: str = "") -> Account:
    return Account(number, Decimal(0), (), building=building)


AUTH = ChannelAuthorization()


def test_an_sms_sender_may_act_on_any_account_without_a_lookup() -> None:
    directory = FakeDirectory()
    scope = AUTH.scope(directory, Sender("sms", "+79120000001"))

    assert scope.permits(account("1234567890")) and scope.permits(account("1", "b9"))
    assert directory.asked == []


def test_an_elder_may_act_on_the_accounts_of_their_buildings_only() -> None:
    scope = AUTH.scope(FakeDirectory(), Sender("email", "elder@example.org"))

    assert scope.permits(account("1", "b1")) and scope.permits(account("2", "b2"))
    assert not scope.permits(account("3", "b3"))
    assert not scope.permits(account("4", ""))  # an account of no building


def test_an_address_that_is_no_elder_may_act_on_nothing() -> None:
    scope = AUTH.scope(FakeDirectory(), Sender("email", "someone@example.org"))

    assert scope == Scope() and not scope.permits(account("1", "b1"))


def test_an_unknown_channel_may_act_on_nothing() -> None:
    assert AUTH.scope(FakeDirectory(), Sender("fax", "+79120000001")) == Scope()


def test_a_scope_of_linked_accounts_permits_exactly_those() -> None:
    scope = Scope(accounts=frozenset({"1234567890"}))

    assert scope.permits(account("1234567890")) and not scope.permits(account("1234567891"))


def test_only_an_sms_senders_own_accounts_are_implied() -> None:
    directory = FakeDirectory()

    assert AUTH.implied_accounts(directory, Sender("sms", "+79120000001")) == ["1111111111"]
    assert AUTH.implied_accounts(directory, Sender("sms", "+79120000009")) == ["2", "3"]
    assert AUTH.implied_accounts(directory, Sender("sms", "")) == []
    assert AUTH.implied_accounts(directory, Sender("email", "elder@example.org")) == []


def test_a_chat_may_act_on_its_linked_accounts_only() -> None:
    scope = AUTH.scope(FakeDirectory(), Sender("telegram", "100"))

    assert scope.permits(account("1111111111"))
    assert not scope.permits(account("2")) and not scope.permits(account("1", "b1"))
    assert AUTH.scope(FakeDirectory(), Sender("telegram", "999")) == Scope()


def test_a_chat_may_leave_out_the_number_of_its_one_linked_account() -> None:
    assert AUTH.implied_accounts(FakeDirectory(), Sender("telegram", "100")) == ["1111111111"]
    # Several: the reply lists them, in number order, and asks which.
    assert AUTH.implied_accounts(FakeDirectory(), Sender("telegram", "200")) == ["2", "3"]
    assert AUTH.implied_accounts(FakeDirectory(), Sender("telegram", "999")) == []
