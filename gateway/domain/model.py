"""The registry (accounts, registers, tariffs) and readings as immutable values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum


class Service(StrEnum):
    ELECTRICITY = "electricity"
    HOT_WATER = "hot_water"
    COLD_WATER = "cold_water"


class Zone(StrEnum):
    SINGLE = "single"
    DAY = "day"
    NIGHT = "night"
    KITCHEN = "kitchen"
    BATH = "bath"


# The positional order of values in a message: electricity single | day, night;
# then hot water single | kitchen, bath; then cold water single | kitchen, bath.
SERVICE_ORDER: dict[Service, int] = {s: i for i, s in enumerate(Service)}
ZONE_ORDER: dict[Zone, int] = {z: i for i, z in enumerate(Zone)}

# A service or a zone by its value: what ``Service(value)`` gives, without the enum call's
# machinery (every register loaded, and every reading charged and worded, takes two).
SERVICE_OF: dict[str, Service] = {s.value: s for s in Service}
ZONE_OF: dict[str, Zone] = {z.value: z for z in Zone}


def digit_counts(value: Decimal) -> tuple[int, int]:
    """(digits before the point without leading zeros, at least 1; digits after the point
    without trailing zeros) of a finite ``value``: ``0012.500`` → (2, 1), ``0.0`` → (1, 0).
    Linear in the number of digits, whatever their count."""
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int), "digit_counts needs a finite value"
    # as_tuple() has no leading zeros (zero itself is the single digit 0).
    if not any(digits):
        return 1, 0
    trailing_zeros = len(digits) - len(bytes(digits).rstrip(b"\0"))
    integer = max(1, len(digits) + exponent)
    fraction = max(0, -(exponent + trailing_zeros))
    return integer, fraction


@dataclass(frozen=True, slots=True)
class Capacity:
    """A meter's digit capacity as printed on it, e.g. ``6.3``."""

    integer_digits: int
    fraction_digits: int

    @classmethod
    def parse(cls, text: str) -> Capacity:
        whole, _, fraction = text.strip().partition(".")
        if not whole.isdigit() or (fraction and not fraction.isdigit()):
            raise ValueError(f"digit capacity must look like 6.3, got {text!r}")
        if len(whole.lstrip("0")) > 2 or len(fraction.lstrip("0")) > 1:
            # Out of range however many digits: int() would refuse over 4,300 of them.
            raise ValueError(f"digit capacity out of range: {text!r}")
        capacity = cls(int(whole), int(fraction or 0))
        if not 1 <= capacity.integer_digits <= 12 or capacity.fraction_digits > 6:
            raise ValueError(f"digit capacity out of range: {text!r}")
        return capacity

    def fits(self, value: Decimal) -> bool:
        """At most ``integer_digits`` digits before the point once leading zeros are
        dropped (zero counts as one), at most ``fraction_digits`` after it once trailing
        zeros are. Counted on the digits themselves, never through ``int``/``str`` or
        a context's precision, so a value of any length is answered exactly."""
        if not value.is_finite() or value < 0:
            return False
        integer, fraction = digit_counts(value)
        return integer <= self.integer_digits and fraction <= self.fraction_digits

    @property
    def rollover(self) -> Decimal:
        """The value at which the counter wraps to zero (10^integer_digits)."""
        return Decimal(10) ** self.integer_digits

    def __str__(self) -> str:
        return f"{self.integer_digits}.{self.fraction_digits}"


@dataclass(frozen=True, slots=True)
class PreviousReading:
    value: Decimal
    taken_on: date
    # For a reading this gateway stored: what it was compared with and consumed, its id.
    compared_with: Decimal | None = None
    consumption: Decimal | None = None
    reading_id: int | None = None
    held: bool = False


@dataclass(frozen=True, slots=True)
class Register:
    """One counter of a meter: a single-rate meter has one, a day/night meter two."""

    id: int
    account: str
    meter: str
    service: Service
    zone: Zone
    capacity: Capacity
    verified_until: date | None
    # The last accepted reading of an earlier period (or the registry's baseline, when
    # newer): what a new reading is validated against.
    previous: PreviousReading | None
    # True when ``previous`` is a reading this gateway accepted (not the registry's baseline).
    previous_is_ours: bool = False
    # The reading already stored for the current period (accepted or held): a new one
    # corrects it, or repeats it.
    current: PreviousReading | None = None
    # The consumption accepted before the current period and the days it covered: the
    # register's average use, which the outlier rule compares a new reading with.
    history: tuple[Decimal, int] = (Decimal(0), 0)

    @property
    def sort_key(self) -> tuple[int, int, str]:
        return (SERVICE_ORDER[self.service], ZONE_ORDER[self.zone], self.meter)


@dataclass(frozen=True, slots=True)
class Account:
    number: str
    debt: Decimal
    registers: tuple[Register, ...]
    residents: int | None = None
    # Who may act on it: an elder by its building; an SMS sender by its registry phone.
    building: str = ""
    phone: str = ""

    @property
    def ordered_registers(self) -> tuple[Register, ...]:
        return tuple(sorted(self.registers, key=lambda r: r.sort_key))


@dataclass(frozen=True, slots=True)
class Tariff:
    service: Service
    zone: Zone
    price: Decimal
    valid_from: date
    # Normative consumption per resident per month, when the supplier charges one.
    normative: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Sender:
    """Who is acting: a channel and the sender's address on it (an E.164 phone for SMS,
    an email address for an elder, a chat id for Telegram)."""

    channel: str
    address: str


@dataclass(frozen=True, slots=True)
class EnteredValue:
    """One register's value, entered for it by name (meter serial and zone)."""

    meter: str
    zone: Zone
    value: Decimal


@dataclass(frozen=True, slots=True)
class Entered:
    """Readings entered register by register (a guided chat dialog): nothing to parse.
    Registers left out are left alone, as with labelled values."""

    account: str
    values: tuple[EnteredValue, ...]

    def as_text(self) -> str:
        """What the audit row shows when the channel gives no text of its own."""
        parts = (f"{v.meter}/{v.zone.value}={format(v.value, 'f')}" for v in self.values)
        return " ".join((self.account, *parts))


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """What every channel turns a provider's payload into."""

    channel: str
    sender: str
    text: str
    received_at: datetime
    external_id: str | None = None

    @property
    def origin(self) -> Sender:
        return Sender(self.channel, self.sender)
