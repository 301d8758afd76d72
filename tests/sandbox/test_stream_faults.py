"""Fault injection on the market streams: disconnects, stalls, a gap in the depth sequence."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp

from tests.sandbox.conftest import Admin, landed


async def _recv(ws: aiohttp.ClientWebSocketResponse, timeout: float = 10) -> aiohttp.WSMessage:
    return await asyncio.wait_for(ws.receive(), timeout)


async def _step(admin: Admin, stream: str, bars: int = 1) -> None:
    await landed(admin, stream)
    for _ in range(bars):
        await asyncio.to_thread(admin.advance, 1)
        await asyncio.sleep(0.1)


async def test_disconnect_fault_closes_the_stream(url: str, admin: Admin) -> None:
    admin.faults(stream_disconnects=1)
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{url}/ws/btcusdt@trade") as ws:
        await _step(admin, "btcusdt@trade")
        msg = await _recv(ws)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert admin("GET", "faults")["stream_disconnects"] == 0
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{url}/ws/btcusdt@trade") as ws:
        await _step(admin, "btcusdt@trade")  # a reconnecting client is served again
        assert json.loads((await _recv(ws)).data)["e"] == "trade"


async def test_stall_fault_delays_then_catches_up(url: str, admin: Admin) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{url}/ws/btcusdt@trade") as ws:
        await landed(admin, "btcusdt@trade")
        admin.faults(stream_stall_ms=1500)
        start = time.monotonic()
        await asyncio.to_thread(admin.advance, 3)
        events = [json.loads((await _recv(ws)).data) for _ in range(3)]
        assert time.monotonic() - start >= 1.2
        assert [e["t"] for e in events] == [events[0]["t"] + k for k in range(3)]  # none lost


async def test_depth_gap_fault_breaks_the_sequence_once(url: str, admin: Admin) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{url}/ws/btcusdt@depth") as ws:
        await _step(admin, "btcusdt@depth")
        first = json.loads((await _recv(ws)).data)
        admin.faults(depth_gaps=1)
        await _step(admin, "btcusdt@depth")
        gap = json.loads((await _recv(ws)).data)
        await _step(admin, "btcusdt@depth")
        after = json.loads((await _recv(ws)).data)
    assert gap["U"] == first["u"] + 2  # update first["u"] + 1 was never sent
    assert after["U"] == gap["u"] + 1
