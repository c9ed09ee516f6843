"""Stored chat conversations for the chat page: each turn is saved as it happens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

from accounts.repository import User
from core.clock import utcnow
from core.db import Tx, get_database
from core.errors import NotFound
from generation import repository as repo
from generation.ledger import Admission, admit, release
from generation.pricing import chat_demand
from generation.repository import ChatMessage, Conversation
from generation.services import StreamDone, answer_chat, stream_answer

MAX_CONTEXT_MESSAGES = 40  # the oldest turns are left out of long conversations


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


async def _save(conversation_id: UUID, message: ChatMessage) -> None:
    await get_database().awrite(repo.add_message, conversation_id, message, utcnow())


def _context(conversation: Conversation, content: str) -> list[dict[str, str]]:
    """What the model sees: the stored turns as they were said, never the page's marks."""
    history = [{"role": m.role, "content": m.content} for m in conversation.messages]
    return [*history[-MAX_CONTEXT_MESSAGES:], {"role": "user", "content": content}]


@dataclass(frozen=True)
class Turn:
    """A question admitted for an answer: its conversation exists and holds the question."""

    admission: Admission
    conversation: Conversation
    messages: list[dict[str, str]]  # what the model is sent


async def open_turn(
    user: User, conversation: Conversation | None, model: str, content: str
) -> Turn:
    """Admit the call first; only then start a new conversation and save the question, so
    a refused call leaves nothing behind."""
    if conversation is not None:
        messages = _context(conversation, content)
        model = conversation.model
    else:
        messages = [{"role": "user", "content": content}]
    admission = await admit(user, "chat", model, chat_demand(messages))
    try:
        conversation = await _ask(user, conversation, admission.model.id, content)
    except BaseException:
        release(admission)
        raise
    return Turn(admission, conversation, messages)


async def _ask(
    user: User, conversation: Conversation | None, model: str, content: str
) -> Conversation:
    """Save the question, in a new conversation if there is none yet: one commit, so a
    new conversation never exists without its first question."""
    question, now = ChatMessage("user", content), utcnow()
    if conversation is not None:
        await get_database().awrite(repo.add_message, conversation.id, question, now)
        return conversation
    conversation_id = uuid4()
    title = " ".join(content.split())[:60] or "New chat"

    def start(tx: Tx) -> None:
        repo.insert_conversation(
            tx, conversation_id=conversation_id, user_id=user.id, title=title, model=model,
            now=now,
        )  # fmt: skip
        repo.add_message(tx, conversation_id, question, now)

    await get_database().awrite(start)
    return await get_conversation(user, conversation_id)


async def stream_turn(turn: Turn) -> AsyncIterator[Any]:
    """Stream the answer, then save what was answered (even if stopped)."""
    pieces: list[str] = []
    finished = False
    answer = stream_answer(turn.admission, turn.messages, conversation_id=turn.conversation.id)
    try:
        async for item in answer:
            if isinstance(item, StreamDone):
                finished = True
            else:
                pieces.append(item)
            yield item
    finally:
        await answer.aclose()
        if pieces:
            answer_text = ChatMessage("assistant", "".join(pieces), stopped=not finished)
            await _save(turn.conversation.id, answer_text)


async def send_turn(turn: Turn) -> None:
    """The same turn without streaming (the page's no-JavaScript path)."""
    answer = await answer_chat(turn.admission, turn.messages, conversation_id=turn.conversation.id)
    await _save(turn.conversation.id, ChatMessage("assistant", answer.text))


async def conversation_titles(user: User, ids: list[UUID]) -> dict[UUID, str]:
    return await get_database().aread(repo.conversation_titles, user.id, ids)
