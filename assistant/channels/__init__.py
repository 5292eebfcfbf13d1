"""Zalo Official Account and Facebook Messenger channels.

    base.py       the ``Channel`` protocol, ``InboundMessage``, errors
    messenger.py  Messenger webhook + Send API      zalo.py  Zalo OA webhook + OA API
    http.py       the outgoing HTTP client (timeouts, retries, Retry-After, metrics)
    service.py    inbox, background worker, audience, pipeline, windows and quotas
    routes.py     GET/POST /webhooks/messenger, POST /webhooks/zalo
    models.py     channel_user, channel_event, channel_credential (migration 0003)
    fake.py       ``CollectingChannel``, the in-memory channel for tests
    simulate.py   ``python -m assistant channels simulate``

Setup and the platforms' rules: ``docs/channels.md``.
"""

from assistant.channels.base import (
    Channel,
    ChannelError,
    DeliveryError,
    DeliveryRejected,
    DeliveryUnavailable,
    InboundMessage,
    OutboundMessage,
    QuickReply,
    SentMessage,
    SignatureError,
)
from assistant.channels.fake import CollectingChannel

__all__ = [
    "Channel",
    "ChannelError",
    "CollectingChannel",
    "DeliveryError",
    "DeliveryRejected",
    "DeliveryUnavailable",
    "InboundMessage",
    "OutboundMessage",
    "QuickReply",
    "SentMessage",
    "SignatureError",
]
