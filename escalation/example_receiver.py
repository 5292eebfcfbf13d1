"""An example receiver of tip-report webhooks, for agencies (standard library only).

Run it::

    python -m escalation.example_receiver --port 9000 --secret whsec_...  [--out received/]

and point an agency's endpoint at it::

    ASSISTANT_ESCALATION__ENDPOINTS__CITY_POLICE__SINK=webhook
    ASSISTANT_ESCALATION__ENDPOINTS__CITY_POLICE__URL=http://127.0.0.1:9000/webhook
    ASSISTANT_ESCALATION__ENDPOINTS__CITY_POLICE__SECRETS='["whsec_..."]'

What a receiver must do, and this one does:

1. verify the signature on the RAW body before parsing it
   (``escalation.webhooks.verify``; copy that function if you do not use
   Python): answer 401 when it fails;
2. deduplicate on ``webhook-id`` (``<report id>.v<version>``): the sender
   delivers at least once, so a repeat must get 2xx and change nothing;
3. store the report durably, THEN answer 2xx quickly (within 10 s);
4. optionally answer ``{"acknowledged": true, "reference": "<case no>"}`` once
   a person has taken the case; the report then shows as acknowledged.

``ReceiverStore`` and ``serve`` are also what the tests and the benchmark use,
with ``script`` to answer some requests with errors or slowly.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from escalation.webhooks import WebhookVerificationError, verify

MAX_BODY = 1024 * 1024


@dataclass
class Received:
    webhook_id: str
    at: float
    payload: dict[str, Any]


@dataclass
class ReceiverStore:
    secrets: Sequence[str]
    out_dir: Path | None = None
    acknowledge: bool = False
    script: list[int | float] = field(default_factory=list)
    """Answers to the next requests, in order: an int is an HTTP status to return
    (without storing), a float is a delay in seconds before storing normally."""
    received: dict[str, Received] = field(default_factory=dict)
    requests: int = 0
    duplicates: int = 0
    rejected_signatures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.requests += 1
            step = self.script.pop(0) if self.script else None
        if isinstance(step, int):
            return step, {"error": "scripted failure"}
        if isinstance(step, float):
            time.sleep(step)
        try:
            webhook_id = verify(body, headers, self.secrets)
        except WebhookVerificationError as exc:
            with self.lock:
                self.rejected_signatures += 1
            return 401, {"error": str(exc)}
        with self.lock:
            if webhook_id in self.received:
                self.duplicates += 1
                return 200, {"received": True, "duplicate": True, "reference": webhook_id}
            payload = json.loads(body)
            if self.out_dir is not None:
                self.out_dir.mkdir(parents=True, exist_ok=True)
                safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in webhook_id)
                (self.out_dir / f"{safe}.json").write_bytes(body)
            self.received[webhook_id] = Received(webhook_id, time.time(), payload)
        answer: dict[str, Any] = {"received": True, "reference": webhook_id}
        if self.acknowledge:
            answer["acknowledged"] = True
        return 200, answer


def _handler(store: ReceiverStore) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_BODY:
                self._answer(413, {"error": "too large"})
                return
            body = self.rfile.read(length)
            status, answer = store.handle(body, {k.lower(): v for k, v in self.headers.items()})
            self._answer(status, answer)

        def _answer(self, status: int, answer: dict[str, Any]) -> None:
            data = json.dumps(answer).encode()
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                # The sender went away (timeout, crash): it will retry with the same webhook-id.
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: ARG002 - quiet: no access log
            return

    return Handler


def serve(store: ReceiverStore, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """Start the receiver in a daemon thread; ``server.server_address[1]`` is the port."""
    server = ThreadingHTTPServer((host, port), _handler(store))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Example receiver of signed tip-report webhooks.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--secret", action="append", required=True, help="signing secret (repeat for rotation)")
    parser.add_argument("--out", type=Path, default=Path("received"), help="folder for the received reports")
    parser.add_argument("--acknowledge", action="store_true", help="answer acknowledged=true")
    args = parser.parse_args(argv)
    store = ReceiverStore(args.secret, args.out, args.acknowledge)
    server = serve(store, args.host, args.port)
    print(f"receiving on http://{args.host}:{server.server_address[1]}/  ->  {args.out}/")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.shutdown()


if __name__ == "__main__":
    main()
