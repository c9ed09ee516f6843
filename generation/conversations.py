"""Stored chat conversations for the chat page: each turn is saved as it happens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID, uuid4

from accounts.repository import User
from core.clock import utcnow
from core.db import Tx, get_database
from core.errors import NotFound
from generation import repository as repo
from generation.repository import Conversation
from generation.services import StreamDone, complete_chat, stream_chat

MAX_CONTEXT_MESSAGES = 40  # the oldest turns are left out of long conversations


async def start_conversation(user: User, model: str, first_message: str) -> Conversation:
    conversation_id = uuid4()
    title = " ".join(first_message.split())[:60] or "New chat"

    def insert(tx: Tx) -> None:
        repo.insert_conversation(
            tx,
            conversation_id=conversation_id,
            user_id=user.id,
            title=title,
            model=model,
            now=utcnow(),
        )

    await get_database().awrite(insert)
    return await get_conversation(user, conversation_id)


async def get_conversation(user: User, conversation_id: UUID) -> Conversation:
    conversation = await get_database().aread(repo.get_conversation, conversation_id, user.id)
    if conversation is None:
        raise NotFound("No such conversation.", code="conversation_not_found")
    return conversation


async def list_conversations(user: User) -> list[Conversation]:
    return await get_database().aread(repo.list_conversations, user.id)


async def delete_conversation(user: User, conversation_id: UUID) -> None:
    if not await get_database().awrite(repo.delete_conversation, conversation_id, user.id):
        raise NotFound("No such conversation.", code="conversation_not_found")


async def _save(conversation_id: UUID, role: str, content: str) -> None:
    await get_database().awrite(repo.add_message, conversation_id, role, content, utcnow())


def _context(conversation: Conversation, content: str) -> list[dict[str, str]]:
    history = [{"role": role, "content": text} for role, text in conversation.messages]
    return [*history[-MAX_CONTEXT_MESSAGES:], {"role": "user", "content": content}]


async def stream_turn(user: User, conversation: Conversation, content: str) -> AsyncIterator[Any]:
    """Save the question, stream the answer, save what was answered (even if stopped)."""
    messages = _context(conversation, content)
    await _save(conversation.id, "user", content)
    pieces: list[str] = []
    finished = False
    try:
        async for item in stream_chat(user, conversation.model, messages):
            if isinstance(item, StreamDone):
                finished = True
            else:
                pieces.append(item)
            yield item
    finally:
        if pieces:
            text = "".join(pieces) + ("" if finished else " [stopped]")
            await _save(conversation.id, "assistant", text)


async def send_turn(user: User, conversation: Conversation, content: str) -> None:
    """The same turn without streaming (the page's no-JavaScript path)."""
    messages = _context(conversation, content)
    await _save(conversation.id, "user", content)
    answer = await complete_chat(user, conversation.model, messages)
    await _save(conversation.id, "assistant", answer.text)
