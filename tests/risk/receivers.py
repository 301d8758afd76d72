"""Loopback receivers that record what alert channels send: HTTP (aiohttp) and SMTP (aiosmtpd)."""

from __future__ import annotations

import asyncio
import email
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller


@dataclass
class HttpReceiver:
    """Records JSON posts by path; /fail answers 500, /hang never answers in time."""

    url: str = ""
    posts: list[tuple[str, Any]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def bodies(self, path_part: str) -> list[Any]:
        return [body for path, body in self.posts if path_part in path]


@contextmanager
def http_receiver() -> Iterator[HttpReceiver]:
    """An aiohttp server on 127.0.0.1 in a background thread."""
    receiver = HttpReceiver()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    state: dict[str, Any] = {}

    async def handle(request: web.Request) -> web.Response:
        if "/hang" in request.path:
            await asyncio.get_running_loop().run_in_executor(None, receiver.release.wait, 30)
            return web.json_response({"ok": True})
        if "/fail" in request.path:
            return web.Response(status=500, text="boom")
        receiver.posts.append((request.path, await request.json()))
        return web.json_response({"ok": True})

    async def start() -> None:
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        state["runner"] = runner
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        receiver.url = f"http://127.0.0.1:{port}"

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield receiver
    finally:
        receiver.release.set()
        asyncio.run_coroutine_threadsafe(state["runner"].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def smtp_server() -> Iterator[tuple[int, list[email.message.Message]]]:
    """An aiosmtpd server on 127.0.0.1; yields (port, received messages)."""
    mailbox = _Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield controller.port, mailbox.messages
    finally:
        controller.stop()
