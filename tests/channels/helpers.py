"""What the contract tests need to know about one platform: how it signs and
shapes a webhook, and what reached the (fake) platform for a user."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from assistant.channels.fake import SIGNATURE_HEADER as FAKE_HEADER
from assistant.channels.fake import CollectingChannel
from assistant.channels.messenger import SIGNATURE_HEADER as MESSENGER_HEADER
from assistant.channels.messenger import sign as messenger_sign
from assistant.channels.simulate import messenger_body, zalo_body
from assistant.channels.zalo import SIGNATURE_HEADER as ZALO_HEADER
from assistant.channels.zalo import mac as zalo_mac
from tests.channels.conftest import APP_SECRET, PAGE_ID, ZALO_APP_ID, ZALO_OA_SECRET, ChannelEnv


@dataclass
class Hook:
    """Builds signed webhooks for one channel and reads what was sent back."""

    name: str
    env: ChannelEnv
    mids: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    # -- inbound ---------------------------------------------------------------------
    def text(self, sender: str, text: str, mid: str | None = None) -> bytes:
        mid = mid or f"mid-{uuid.uuid4().hex[:20]}"
        self.mids[sender].add(mid)
        if self.name == "messenger":
            return messenger_body(PAGE_ID, sender, text, mid=mid)
        if self.name == "zalo":
            return zalo_body(ZALO_APP_ID, sender, text, msg_id=mid)
        return CollectingChannel.webhook([{"id": mid, "kind": "text", "sender": sender, "text": text}])

    def image(self, sender: str, mid: str | None = None) -> bytes:
        mid = mid or f"mid-{uuid.uuid4().hex[:20]}"
        self.mids[sender].add(mid)
        if self.name == "messenger":
            return messenger_body(PAGE_ID, sender, mid=mid, image=True)
        if self.name == "zalo":
            return zalo_body(ZALO_APP_ID, sender, msg_id=mid, event="user_send_image")
        return CollectingChannel.webhook([{"id": mid, "kind": "attachment", "sender": sender, "attachments": ["image"]}])

    def audience_answer(self, sender: str, title: str, payload: str) -> bytes:
        """Tapping an audience quick reply."""
        mid = f"mid-{uuid.uuid4().hex[:20]}"
        self.mids[sender].add(mid)
        if self.name == "messenger":
            return messenger_body(PAGE_ID, sender, title, mid=mid, quick_reply_payload=payload)
        if self.name == "zalo":  # oa.query.show: the button's text comes back as the user's message
            return zalo_body(ZALO_APP_ID, sender, title, msg_id=mid)
        return CollectingChannel.webhook([{"id": mid, "kind": "text", "sender": sender, "text": title, "payload": payload}])

    def sign(self, body: bytes) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if self.name == "messenger":
            headers[MESSENGER_HEADER] = messenger_sign(APP_SECRET, body)
        elif self.name == "zalo":
            headers[ZALO_HEADER] = zalo_mac(ZALO_APP_ID, body, json.loads(body)["timestamp"], ZALO_OA_SECRET)
        else:
            headers[FAKE_HEADER] = self.fake.sign(body)
        return headers

    def post(self, body: bytes, headers: dict[str, str] | None = None) -> Any:
        return self.env.client.post(f"/webhooks/{self.name}", content=body, headers=headers or self.sign(body))

    @property
    def signature_header(self) -> str:
        return {"messenger": MESSENGER_HEADER, "zalo": ZALO_HEADER}.get(self.name, FAKE_HEADER)

    # -- outbound --------------------------------------------------------------------
    @property
    def fake(self) -> CollectingChannel:
        channel = self.env.channels.get(self.name)
        assert isinstance(channel, CollectingChannel)
        return channel

    def sent(self, sender: str) -> list[dict[str, Any]]:
        """Messages the platform accepted for ``sender``: ``{"text", "quick_replies", "raw"}``."""
        if self.name == "messenger":
            return [
                {"text": m["message"]["text"], "quick_replies": [q["payload"] for q in m["message"].get("quick_replies", [])],
                 "raw": m}
                for m in self.env.graph.messages(sender)
            ]
        if self.name == "zalo":
            out = []
            for m in self.env.zalo.messages():
                recipient = m["recipient"]
                if recipient.get("user_id") == sender or recipient.get("message_id") in self.mids[sender]:
                    buttons = (m["message"].get("attachment") or {}).get("payload", {}).get("buttons", [])
                    out.append({"text": m["message"]["text"], "quick_replies": [b["title"] for b in buttons], "raw": m})
            return out
        return [
            {"text": m.text, "quick_replies": [q.payload for q in m.quick_replies], "raw": m}
            for m in self.fake.sent
            if m.recipient_id == sender
        ]

    def texts(self, sender: str) -> list[str]:
        return [m["text"] for m in self.sent(sender)]
