"""The event loop's clock, read the way anyio reads it, inside and outside asyncio."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from vkcompose.backends.clock import AnyioClock

pytestmark = pytest.mark.anyio


async def test_the_clock_is_the_event_loops() -> None:
    clock = AnyioClock()
    before = anyio.current_time()
    now = clock.now()
    assert before <= now <= anyio.current_time()
    wakeup = anyio.Event()
    await clock.wait_until(now + 0.05, wakeup)
    assert clock.now() >= now + 0.05


async def test_the_clock_reads_in_a_loop_callback_outside_any_task() -> None:
    clock = AnyioClock()
    read: list[float] = []
    before = anyio.current_time()
    asyncio.get_running_loop().call_soon(lambda: read.append(clock.now()))
    await anyio.sleep(0.01)
    assert len(read) == 1 and before <= read[0] <= anyio.current_time()


def test_the_clock_reads_anyio_without_an_asyncio_loop() -> None:
    with pytest.raises(RuntimeError):  # anyio's own answer outside any event loop
        AnyioClock().now()
