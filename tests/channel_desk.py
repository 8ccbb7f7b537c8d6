"""What every channel's end-to-end tests ask of a reply: its delivery, and waiting for a state."""

from __future__ import annotations

import asyncio


class DeliveryWaits:
    """Mixed into a test desk that can list a conversation's messages (``messages``)."""

    async def messages(self, conversation_id: str) -> list[dict]:
        raise NotImplementedError

    async def delivery(self, conversation_id: str, message_id: str) -> dict:
        [message] = [m for m in await self.messages(conversation_id) if m["id"] == message_id]
        [delivery] = message["deliveries"]
        return delivery

    async def wait_delivery(self, conversation_id: str, message_id: str, status: str, timeout_s: float = 8) -> dict:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while (delivery := await self.delivery(conversation_id, message_id))["status"] != status:
            assert asyncio.get_running_loop().time() < deadline, delivery
            await asyncio.sleep(0.05)
        return delivery

    async def wait_messages(self, conversation_id: str, predicate, timeout_s: float = 8) -> list[dict]:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not predicate(messages := await self.messages(conversation_id)):
            assert asyncio.get_running_loop().time() < deadline, messages
            await asyncio.sleep(0.05)
        return messages
