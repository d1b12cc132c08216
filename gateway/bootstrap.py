"""The composition root: the only place that builds engines, services and channels."""

from __future__ import annotations

import asyncio
import functools
import importlib.metadata
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import InitVar, dataclass, field
from datetime import UTC, datetime
from email.utils import parseaddr
from typing import TYPE_CHECKING, Any, Literal, cast

import structlog
from aiohttp import web

from billing_bridge.delivery import OutboxRelay, RelayPolicy
from billing_bridge.http_billing import HttpBilling
from billing_bridge.remote_charge import RemoteCharge
from channels.email_channel import MailChannel, MailOutbox, MailRules
from channels.email_imap import ImapConfig, ImapPoller
from channels.email_relay import SmtpRelaySender
from channels.email_smtp import SmtpReceiver
from channels.sms_smpp import SmppChannel, SmppConfig, SmppLink, SmppSender
from channels.sms_twilio import TwilioRestSender, TwilioSmsChannel
from gateway import metrics, renderers
from gateway.app import Probes, build_app
from gateway.chats import ChatDesk
from gateway.domain.outbound import ChannelSender
from gateway.domain.ports import OnEntered, OnInbound
from gateway.intake import Clock, Intake
from gateway.leases import Leases
from gateway.mail import MailDesk
from gateway.mail_report import list_report
from gateway.metrics import TimedBilling
from gateway.outbound import OutboundSender
from gateway.reminders import Reminders
from gateway.review import Review
from gateway.settings import Settings
from gateway.storage import Database
from gateway.storage.outbound import SqlOutboundQueue
from gateway.storage.outbox_store import EmbeddedBilling, SqlOutboxStore
from gateway.storage.smpp import SqlSmsParts
from parsers import HELP_TEXT

if TYPE_CHECKING:  # aiogram takes seconds to import: only a gateway with a bot pays it
    from aiogram import Bot

    from channels.telegram import TelegramChannel

log = structlog.get_logger("gateway.bootstrap")


@functools.cache
def version() -> str:
    """This gateway's version (its installed distribution's), read once when first asked."""
    try:
        return importlib.metadata.version("meter-gateway")
    except importlib.metadata.PackageNotFoundError:  # a source tree that is not installed
        return "0+unknown"


# Each channel's wording of an outcome (gateway.renderers); `gateway sms` is the SMS channel.
# An elder's list (`gateway list`, the email channel) words each line as an SMS would be:
# the email report (gateway.mail_report) quotes those texts for the lines it lists.
RENDERERS = {
    "sms": renderers.sms,
    "smpp": renderers.sms,
    "email": renderers.sms,
    "telegram": renderers.chat,
}


# Messages per second each provider takes on our initiative: Telegram allows about 30
# overall (and one per chat, which one reminder per chat and period keeps).
CHANNEL_RATES = {"telegram": 25.0}


def senders(settings: Settings, clock: Clock) -> dict[str, ChannelSender]:
    """The channels that can send on their own initiative (a review decision, a list's
    report): SMS when Twilio's REST API is configured, email with a mail relay."""
    found: dict[str, ChannelSender] = {}
    relay = SmtpRelaySender(
        host=settings.mail_relay_host,
        port=settings.mail_relay_port,
        user=settings.mail_relay_user,
        password=settings.mail_relay_password,
        tls=_tls(settings.mail_relay_tls),
        mail_from=parseaddr(settings.mail_from)[1],
        # A send must end well within the outbound queue's 60 s lease on a pass of 4 rounds.
        timeout=10.0,
    )
    if relay.configured:
        found["email"] = MailOutbox(relay, settings.mail_from, clock)
    sms = TwilioRestSender(
        account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token,
        from_number=settings.twilio_from,
        api_base=settings.twilio_api_base,
    )
    if sms.configured:
        found["sms"] = sms
    return found


def telegram_channel(
    settings: Settings,
    bot: Bot,
    on_inbound: OnInbound,
    on_entered: OnEntered,
    desk: ChatDesk,
    clock: Clock,
    leases: Leases | None = None,
) -> TelegramChannel:
    """The Telegram bot's handlers, its dialog state in Redis when configured."""
    from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage, DefaultKeyBuilder
    from aiogram.fsm.storage.memory import MemoryStorage, SimpleEventIsolation
    from aiogram.fsm.storage.redis import RedisStorage

    from channels.telegram import TelegramChannel

    storage: BaseStorage = MemoryStorage()
    isolation: BaseEventIsolation = SimpleEventIsolation()
    if settings.redis_url:
        keys = DefaultKeyBuilder(prefix=f"{settings.redis_prefix}:fsm", with_bot_id=True)
        redis = RedisStorage.from_url(settings.redis_url, key_builder=keys)
        storage, isolation = redis, redis.create_isolation()
    return TelegramChannel(
        bot=bot,
        on_inbound=on_inbound,
        on_entered=on_entered,
        summarize=renderers.chat_summary,
        desk=desk,
        clock=clock,
        zone=settings.zone,
        storage=storage,
        isolation=isolation,
        help_text=HELP_TEXT,
        webhook_url=settings.telegram_webhook_url,
        webhook_secret=settings.telegram_webhook_secret,
        singleton=leases.run if leases is not None else None,
    )


def smpp_link(settings: Settings) -> SmppLink | None:
    """The binding to the SMS operator, when ``GATEWAY_SMPP_HOST`` is set."""
    if not settings.smpp_host:
        return None
    config = SmppConfig(
        host=settings.smpp_host,
        port=settings.smpp_port,
        system_id=settings.smpp_system_id,
        password=settings.smpp_password,
        system_type=settings.smpp_system_type,
        address_range=settings.smpp_address_range,
        source_addr=settings.smpp_source_addr,
        tls="ssl" if settings.smpp_tls == "ssl" else "none",
        bind="split" if settings.smpp_bind == "split" else "transceiver",
        submits_per_second=settings.smpp_submits_per_second,
        window=settings.smpp_window,
        enquire_link_interval=settings.smpp_enquire_link_interval,
        part_timeout=settings.smpp_part_timeout,
    )
    return SmppLink(config)


def mail_channel(
    settings: Settings, intake: Intake, db: Database, clock: Clock, outbound: OutboundSender
) -> MailChannel:
    """The email channel: what a received mail becomes (its transports are started by
    :meth:`Gateway.web_app` when configured)."""
    rules = MailRules(
        mail_from=settings.mail_from,
        max_message_bytes=settings.smtp_max_bytes,
        max_attachment_bytes=settings.mail_attachment_max_bytes,
        authserv_id=settings.email_authserv_id,
    )
    desk = MailDesk(db, clock, settings.zone)
    return MailChannel(
        rules, on_list=intake, desk=desk, report=list_report, clock=clock, notify=outbound.send_now
    )


Loop = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


def mail_transports(
    settings: Settings, mail: MailChannel
) -> list[tuple[str, Loop, Callable[[], bool] | None]]:
    """What receives mail, as loops to run while serving: the IMAP poller (with whether it
    is connected), the SMTP receiver, each when configured."""
    loops: list[tuple[str, Loop, Callable[[], bool] | None]] = []
    if settings.imap_host:
        config = ImapConfig(
            host=settings.imap_host,
            port=settings.imap_port,
            user=settings.imap_user,
            password=settings.imap_password,
            folder=settings.imap_folder,
            tls=_tls(settings.imap_tls),
            done_folder=settings.imap_done_folder,
            poll_interval=settings.imap_poll_interval,
            max_message_bytes=settings.smtp_max_bytes,
        )
        poller = ImapPoller(config, mail.receive)
        loops.append(("imap", poller.run_forever, lambda: poller.connected))
    if settings.smtp_listen:
        receiver = SmtpReceiver(settings.smtp_listen, settings.smtp_max_bytes, mail.receive)
        loops.append(("smtp", receiver.run, None))
    return loops


def _tls(value: str) -> Literal["ssl", "starttls", "none"]:
    assert value in ("ssl", "starttls", "none"), "checked by Settings"
    return cast(Literal["ssl", "starttls", "none"], value)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Gateway:
    settings: Settings
    db: Database
    intake: Intake
    clock: Clock

    outbound: OutboundSender
    desk: ChatDesk
    mail: MailChannel
    telegram: TelegramChannel | None = None
    smpp: SmppChannel | None = None
    smpp_link: SmppLink | None = None
    # This process's leases on the singletons (see gateway.leases).
    lease_holder: InitVar[Leases | None] = None
    leases: Leases = field(init=False)

    def __post_init__(self, lease_holder: Leases | None) -> None:
        self.leases = lease_holder or Leases(self.db)

    @property
    def review(self) -> Review:
        return Review(self.db, self.outbound, self.clock)

    @asynccontextmanager
    async def relay(self) -> AsyncIterator[OutboxRelay]:
        """The outbox relay to billing's HTTP API, or to the embedded billing without one."""
        s = self.settings
        policy = RelayPolicy(
            batch=s.relay_batch,
            concurrency=s.relay_concurrency,
            lease_seconds=s.relay_lease_seconds,
            backoff_base=s.relay_backoff_base,
            backoff_cap=s.relay_backoff_cap,
            circuit_threshold=s.relay_circuit_threshold,
            circuit_open_base=s.relay_circuit_open_base,
            circuit_open_cap=s.relay_circuit_open_cap,
        )
        store = SqlOutboxStore(self.db)
        if not s.billing_url:
            yield OutboxRelay(store, EmbeddedBilling(self.db, self.clock), self.clock, policy)
            return
        client = HttpBilling(s.billing_url, s.billing_timeout)
        try:
            yield OutboxRelay(store, TimedBilling(client), self.clock, policy)
        finally:
            await client.close()

    async def _send_forever(self, stop: asyncio.Event) -> None:
        await self.outbound.run_forever(stop, self.settings.relay_interval)

    async def _relay_forever(self, stop: asyncio.Event) -> None:
        async with self.relay() as relay:
            await relay.run_forever(stop, self.settings.relay_interval)

    @property
    def reminders(self) -> Reminders:
        return Reminders(self.db, self.settings, self.clock)

    def _singleton(self, name: str, job: Loop) -> Loop:
        """``job`` run only while this process holds the lease ``name``."""
        return lambda stop: self.leases.run(name, job, stop)

    async def _schema_current(self) -> bool:
        try:
            return (await self.db.schema_state()).up_to_date
        except Exception:
            return False

    async def _refresh_metrics(self) -> None:
        now = self.clock()
        outbox = await SqlOutboxStore(self.db).gauge(now)
        outbound = await SqlOutboundQueue(self.db).gauge(now)
        metrics.queues(outbox, outbound)

    def web_app(self) -> web.Application:
        sms = TwilioSmsChannel(
            self.intake,
            auth_token=self.settings.twilio_auth_token,
            public_url=self.settings.public_url,
            clock=self.clock,
            max_body_bytes=self.settings.max_body_bytes,
        )
        chat = self.telegram
        mail = mail_transports(self.settings, self.mail)
        leases = self.leases
        links: dict[str, Callable[[], bool]] = {name: up for name, _, up in mail if up}
        if chat is not None:
            links["telegram"] = lambda: chat.up
        if self.smpp_link is not None:
            smpp = self.smpp_link
            links["smpp"] = lambda: smpp.up
        probes = Probes(
            database=self.db.ping,
            version=version(),
            schema=self._schema_current,
            # A link another process holds is not this one's to report.
            links=lambda: {name: up() for name, up in links.items() if name in leases.running},
            refresh_metrics=self._refresh_metrics,
        )
        app = build_app(sms, self.settings.max_body_bytes, probes, chat.routes() if chat else ())
        if chat is None:
            log.info("telegram_off", reason="GATEWAY_TELEGRAM_TOKEN is not set")
        else:
            app.cleanup_ctx.append(chat.run)
            app.cleanup_ctx.append(
                while_serving(self._singleton("reminders", self.reminders.run_forever))
            )
        if not mail:
            log.info("email_off", reason="neither GATEWAY_IMAP_HOST nor GATEWAY_SMTP_LISTEN is set")
        for name, run, _ in mail:
            if name == "imap":  # one poller among all processes
                app.cleanup_ctx.append(while_serving(self._singleton("imap", run)))
            else:  # every process may take SMTP deliveries
                leases.running.add(name)
                app.cleanup_ctx.append(while_serving(run))
        app.on_shutdown.append(lambda _app: self.mail.aclose())
        app.cleanup_ctx.append(while_serving(self._relay_forever))
        interval = self.settings.relay_interval
        app.cleanup_ctx.append(
            while_serving(lambda stop: self.outbound.run_forever(stop, interval))
        )
        # After the senders: cleaned up before them, the link unbinds first and a submit
        # still awaiting the SMSC ends at once (queued again) instead of holding shutdown.
        if self.smpp_link is None or self.smpp is None:
            log.info("smpp_off", reason="GATEWAY_SMPP_HOST is not set")
        else:
            link, channel = self.smpp_link, self.smpp

            async def smpp_job(stop: asyncio.Event) -> None:
                await asyncio.gather(link.run(stop), channel.run_give_up(stop))

            app.cleanup_ctx.append(while_serving(self._singleton("smpp", smpp_job)))
        return app


def while_serving(
    run: Callable[[asyncio.Event], Coroutine[Any, Any, None]],
) -> Callable[[web.Application], AsyncIterator[None]]:
    """An aiohttp cleanup context running ``run(stop)`` as a task while the server runs
    (the relay, the outbound senders, reminders); ``stop`` is set when it shuts down."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = asyncio.create_task(run(stop))
        yield
        stop.set()
        await task

    return context


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[Database]:
    """The database alone, whatever its schema (``gateway db upgrade``, ``db current``)."""
    db = Database(settings.database_url, settings.database_timeout)
    try:
        yield db
    finally:
        await db.dispose()


@asynccontextmanager
async def gateway(
    settings: Settings, clock: Callable[[], datetime] = utc_now, *, upgrade: bool = False
) -> AsyncIterator[Gateway]:
    """Open the database and wire the services. A database whose schema is not at the
    newest revision is refused (:class:`SchemaMismatch` naming `gateway db upgrade`);
    ``upgrade=True`` creates or upgrades it first (tests and benchmarks on a new database).
    """
    db = Database(settings.database_url, settings.database_timeout)
    quote = (
        RemoteCharge(settings.billing_charge_url, settings.billing_charge_timeout)
        if settings.billing_charge_url
        else None
    )
    try:
        if upgrade:
            await db.upgrade_schema()
        else:
            await db.check_schema()
        desk = ChatDesk(db, clock, settings.default_country_code)
        bot: Bot | None = None
        channel_senders = senders(settings, clock)
        link = smpp_link(settings)
        if link is not None:
            channel_senders["smpp"] = SmppSender(link)
        if settings.telegram_token:
            from channels.telegram import TelegramSender, telegram_bot

            bot = telegram_bot(settings.telegram_token, settings.telegram_api_base)
            channel_senders["telegram"] = TelegramSender(bot, desk.mark_blocked)
        outbound = OutboundSender(SqlOutboundQueue(db), channel_senders, clock, rates=CHANNEL_RATES)
        intake = Intake(
            db,
            settings,
            clock,
            quote,
            renderers=RENDERERS,
            notifiable=outbound.channels,
            queued_replies=frozenset({"smpp"}),
        )
        smpp = None
        if link is not None:
            smpp = SmppChannel(
                intake,
                SqlSmsParts(db),
                SqlOutboundQueue(db).receipt,
                clock,
                part_timeout=settings.smpp_part_timeout,
                replied=lambda: outbound.nudge("smpp"),
            )
            link.attach(smpp.on_deliver)
        mail = mail_channel(settings, intake, db, clock, outbound)
        leases = Leases(db)
        telegram = None
        if bot is not None:
            telegram = telegram_channel(settings, bot, intake, intake, desk, clock, leases)
        try:
            yield Gateway(
                settings, db, intake, clock, outbound, desk, mail, telegram, smpp, link, leases
            )
        finally:
            if bot is not None:
                await bot.session.close()
    finally:
        if quote is not None:
            await quote.close()
        await db.dispose()
