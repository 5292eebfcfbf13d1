"""Channels by name, built only when enabled in the settings.

To add a platform: write ``<platform>.py`` with a class following
``assistant.channels.base.Channel``, add a settings section under
``ChannelsSettings`` and a factory here; the webhook route
``POST /webhooks/<platform>`` and the contract tests then apply to it.
"""

from __future__ import annotations

from collections.abc import Callable

from assistant.channels.base import Channel
from assistant.channels.http import PlatformHttpClient
from assistant.channels.messenger import MessengerChannel
from assistant.channels.metrics import ChannelMetrics
from assistant.channels.service import ChannelService
from assistant.channels.zalo import ZaloChannel, ZaloTokenStore
from assistant.conversations import ChatService
from assistant.db import Database
from assistant.metrics import Metrics
from assistant.privacy.service import PrivacyService
from assistant.prompts import PromptBook
from assistant.settings import ChannelsSettings, Settings

ChannelFactory = Callable[[ChannelsSettings, Database, ChannelMetrics], Channel]


def _http(name: str, settings: ChannelsSettings, metrics: ChannelMetrics) -> PlatformHttpClient:
    return PlatformHttpClient(
        name,
        metrics,
        timeout=settings.http_timeout_seconds,
        max_retries=settings.http_max_retries,
        max_retry_after=settings.http_max_retry_after_seconds,
        backoff=settings.http_backoff_seconds,
    )


def make_messenger(settings: ChannelsSettings, _db: Database, metrics: ChannelMetrics) -> Channel:
    return MessengerChannel(settings.messenger, _http("messenger", settings, metrics))


def make_zalo(settings: ChannelsSettings, db: Database, metrics: ChannelMetrics) -> Channel:
    http = _http("zalo", settings, metrics)
    return ZaloChannel(settings.zalo, http, ZaloTokenStore(db, settings.zalo, http, metrics))


CHANNEL_FACTORIES: dict[str, ChannelFactory] = {"messenger": make_messenger, "zalo": make_zalo}


def enabled_channels(settings: ChannelsSettings, db: Database, metrics: ChannelMetrics) -> dict[str, Channel]:
    return {
        name: factory(settings, db, metrics)
        for name, factory in CHANNEL_FACTORIES.items()
        if getattr(settings, name).enabled
    }


def build_channel_service(
    settings: Settings,
    db: Database,
    chat: ChatService,
    prompts: PromptBook,
    metrics: Metrics,
) -> ChannelService:
    """The channel service of one instance (with no channel enabled, it does nothing)."""
    channel_metrics = ChannelMetrics(metrics.registry)
    return ChannelService(
        db=db,
        chat=chat,
        prompts=prompts,
        settings=settings.channels,
        pseudonym_key=settings.security.pseudonym_key.get_secret_value(),
        metrics=channel_metrics,
        channels=enabled_channels(settings.channels, db, channel_metrics),
        app_metrics=metrics,
        max_message_chars=settings.chat.max_message_chars,
        notice_version=settings.widget.notice_version,  # the same notice version as the widget
        privacy=PrivacyService(db, settings.privacy),
    )
