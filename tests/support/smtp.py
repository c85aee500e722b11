"""A real SMTP server (aiosmtpd) on a loopback port, and the messages it accepted."""

from __future__ import annotations

import email
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

from aiosmtpd.controller import Controller

from tests.support.servers import free_port


class Inbox:
    """aiosmtpd handler: keeps every accepted message, parsed."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        with self._lock:
            self.messages.append(parsed)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [m for m in self.messages if str(m["To"]) == address]

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()


class SMTPServer:
    """Start, stop and start again on the same port (to test delivery after an outage)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.inbox = Inbox()
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def wait_for(
        self, predicate: Callable[[list[EmailMessage]], bool], seconds: float = 20
    ) -> list[EmailMessage]:
        """Poll the inbox until `predicate` holds (end-to-end tests: another process sends)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self.inbox._lock:
                current = list(self.inbox.messages)
            if predicate(current):
                return current
            time.sleep(0.1)
        raise AssertionError(f"mail did not arrive in {seconds}s; have {len(current)} message(s)")


def text_part(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    content: str = part.get_content()  # type: ignore[attr-defined] # EmailMessage part
    return content


def html_part(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    content: str = part.get_content()  # type: ignore[attr-defined] # EmailMessage part
    return content
