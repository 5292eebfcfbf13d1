"""Realistic, signed webhook requests, as Meta and Zalo send them.

Used by ``python -m assistant channels simulate messenger|zalo --text "..."`` (an
operator posts one event to a running deployment to check the webhook URL, the
secrets and the pipeline) and by the tests.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from assistant.channels.messenger import SIGNATURE_HEADER as MESSENGER_HEADER
from assistant.channels.messenger import sign as messenger_sign
from assistant.channels.zalo import SIGNATURE_HEADER as ZALO_HEADER
from assistant.channels.zalo import mac as zalo_mac
from assistant.settings import ChannelsSettings

PLATFORMS = ("messenger", "zalo")


def _now_ms() -> int:
    return int(time.time() * 1000)


def messenger_body(
    page_id: str,
    sender_id: str,
    text: str = "",
    mid: str | None = None,
    image: bool = False,
    quick_reply_payload: str | None = None,
    postback_payload: str | None = None,
    timestamp_ms: int | None = None,
) -> bytes:
    """A Messenger ``page`` webhook with one messaging event."""
    ts = timestamp_ms or _now_ms()
    event: dict[str, Any] = {"sender": {"id": sender_id}, "recipient": {"id": page_id}, "timestamp": ts}
    if postback_payload is not None:
        event["postback"] = {"title": text, "payload": postback_payload, "mid": mid or f"m_{uuid.uuid4().hex}"}
    else:
        message: dict[str, Any] = {"mid": mid or f"m_{uuid.uuid4().hex}"}
        if text:
            message["text"] = text
        if quick_reply_payload is not None:
            message["quick_reply"] = {"payload": quick_reply_payload}
        if image:
            message["attachments"] = [{"type": "image", "payload": {"url": "https://scontent.example/photo.jpg"}}]
        event["message"] = message
    body = {"object": "page", "entry": [{"id": page_id, "time": ts, "messaging": [event]}]}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def zalo_body(
    app_id: str,
    sender_id: str,
    text: str = "",
    msg_id: str | None = None,
    event: str | None = None,
    oa_id: str = "simulated-oa",
    timestamp_ms: int | None = None,
) -> bytes:
    """A Zalo OA webhook event (``user_send_text`` unless ``event`` says otherwise)."""
    ts = str(timestamp_ms or _now_ms())
    name = event or "user_send_text"
    body: dict[str, Any] = {"app_id": app_id, "event_name": name, "timestamp": ts, "user_id_by_app": sender_id}
    if name in ("follow", "unfollow"):
        body.update({"oa_id": oa_id, "follower": {"id": sender_id}, "source": "oa_profile"})
    else:
        message: dict[str, Any] = {"msg_id": msg_id or uuid.uuid4().hex[:20]}
        if text:
            message["text"] = text
        if name == "user_send_image":
            message["attachments"] = [
                {"type": "image", "payload": {"url": "https://photo.example/image.jpg", "thumbnail": ""}}
            ]
        body.update({"sender": {"id": sender_id}, "recipient": {"id": oa_id}, "message": message})
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True)
class SignedRequest:
    path: str
    body: bytes
    headers: dict[str, str]


def signed_request(
    platform: str,
    settings: ChannelsSettings,
    text: str,
    sender_id: str,
    image: bool = False,
    message_id: str | None = None,
) -> SignedRequest:
    headers = {"content-type": "application/json"}
    if platform == "messenger":
        section = settings.messenger
        body = messenger_body(section.page_id, sender_id, text, mid=message_id, image=image)
        headers[MESSENGER_HEADER] = messenger_sign(section.app_secret.get_secret_value(), body)
    elif platform == "zalo":
        zalo = settings.zalo
        body = zalo_body(
            zalo.app_id, sender_id, text, msg_id=message_id, event="user_send_image" if image else None
        )
        timestamp = json.loads(body)["timestamp"]
        headers[ZALO_HEADER] = zalo_mac(zalo.app_id, body, timestamp, zalo.oa_secret_key.get_secret_value())
    else:
        raise ValueError(f"unknown platform {platform!r}; expected one of {PLATFORMS}")
    return SignedRequest(f"/webhooks/{platform}", body, headers)


def post(url: str, request: SignedRequest, timeout: float = 10.0) -> httpx.Response:
    return httpx.post(url.rstrip("/") + request.path, content=request.body, headers=request.headers, timeout=timeout)
