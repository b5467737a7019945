"""The MQTT inbox is bounded: what finds it full is dropped and counted, never queued."""

from __future__ import annotations

import asyncio

import aiomqtt

from controlroom.daemon.mqtt.bridge import Inbox


def test_a_message_that_finds_the_inbox_full_is_handed_to_overflow():
    async def scenario():
        overflowed = []
        inbox = Inbox(overflowed.append, maxsize=3)
        messages = [aiomqtt.Message(f"controlroom/a/volume/step{n}", b"1", 0, False, 0, None) for n in range(5)]
        for message in messages:
            inbox.put_nowait(message)
        assert overflowed == messages[3:]
        assert [inbox.get_nowait() for _ in range(3)] == messages[:3]
        inbox.put_nowait(messages[4])  # room again
        assert inbox.get_nowait() is messages[4]

    asyncio.run(scenario())
