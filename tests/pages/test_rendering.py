"""How pages render: safe Markdown on every path, CSP, names not paths, money, plurals."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.template import Context, Template
from django.test import AsyncClient, Client

from generation.markdown import render_markdown
from tests.conftest import PASSWORD, Persona
from tests.pages.test_pages import browser, text_of

REPO = Path(__file__).parents[2]
MODEL = "openai/gpt-4o-mini"
# The stand-in echoes the prompt, so this comes back as the model's answer.
HOSTILE = (
    "x\n\n## Heading\n\n- one\n- two\n\n| a | b |\n|---|--:|\n| 1 | 2 |\n\n"
    "```python\nprint('<b>hi</b>')\n```\n\n[fine](https://example.com/)\n\n"
    '<script>window.xss=1</script> <img src=x onerror="window.xss=2">\n\n'
    '[click](javascript:window.xss=3) <a href="javascript:window.xss=4">raw</a>\n\n'
    '<iframe src="https://evil.example/"></iframe> <b onclick="x()">bold</b>\n\n'
    "![pixel](https://tracker.example/p.png) [data](data:text/html;base64,PHNjcmlwdD4=)"
)


@pytest.fixture
def markdown_answers(stub, monkeypatch):
    """Answers are HOSTILE, streamed line by line. The stand-in echoes the prompt with its
    whitespace collapsed, so block-level Markdown needs this wrapper around its client."""
    import dataclasses

    from generation import services
    from generation.openrouter.results import ContentDelta, StreamEnd

    real = services.get_openrouter_client

    class Answering:
        def __init__(self, client):
            self.client = client

        async def chat(self, payload, **kwargs):
            return dataclasses.replace(await self.client.chat(payload, **kwargs), text=HOSTILE)

        async def stream_chat(self, payload, **kwargs):
            async for event in self.client.stream_chat(payload, **kwargs):
                if isinstance(event, StreamEnd):
                    for line in HOSTILE.splitlines(keepends=True):
                        yield ContentDelta(line)
                    yield dataclasses.replace(event, text=HOSTILE)

        def __getattr__(self, name):
            return getattr(self.client, name)

    monkeypatch.setattr(services, "get_openrouter_client", lambda: Answering(real()))


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))


def elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Elements()
    parser.feed(html)
    return parser.elements


def assert_safe(html: str) -> None:
    """No script, frame or handler, no javascript:/data: URL, no inline style: anywhere."""
    for tag, attrs in elements(html):
        assert tag not in ("iframe", "object", "embed", "style"), tag
        assert not (tag == "script" and not attrs.get("src")), "inline <script>"
        for name, value in attrs.items():
            assert not name.startswith("on"), f"<{tag} {name}=…>"
            assert name != "style", f"<{tag} style=…>"
            if name in ("href", "src", "action", "formaction"):
                assert not (value or "").strip().lower().startswith(("javascript:", "data:"))
        if tag == "img":
            assert (attrs.get("src") or "").startswith("/"), "an image from another host"


def assert_markdown_rendered(html: str) -> None:
    assert "<h2>Heading</h2>" in html and "<li>one</li>" in html
    assert "<table>" in html and '<td class="align-right">2</td>' in html
    assert '<code class="language-python">print(' in html
    assert (
        '<a href="https://example.com/" target="_blank" rel="noopener noreferrer nofollow">fine</a>'
        in html
    )


# -- Markdown ---------------------------------------------------------------------------------


def test_markdown_is_rendered_and_hostile_markup_is_neutralised():
    html = str(render_markdown(HOSTILE))
    assert_markdown_rendered(html)
    assert_safe(html)
    assert "&lt;script&gt;" in html  # shown as text, not run
    assert '<a href="https://tracker.example/p.png"' in html  # an image becomes a link


def test_every_link_is_forced_to_noopener_noreferrer_nofollow():
    html = str(render_markdown("[a](https://a.example/) <https://b.example/> [c](mailto:c@x.io)"))
    links = [attrs for tag, attrs in elements(html) if tag == "a"]
    assert len(links) == 3
    assert all(attrs["rel"] == "noopener noreferrer nofollow" for attrs in links)


def test_the_text_result_renders_markdown_safely(alice, markdown_answers):
    page = text_of(browser(alice).post("/generate/text", {"model": MODEL, "prompt": HOSTILE}))
    assert 'data-testid="text-result"' in page
    assert_markdown_rendered(page)
    assert_safe(page)


def test_chat_history_and_dashboard_render_markdown_safely(alice, markdown_answers):
    client = browser(alice)
    location = client.post("/chat/send", {"model": MODEL, "content": HOSTILE})["Location"]
    for path in (location, "/history", "/history?kind=chat", "/"):
        page = text_of(client.get(path))
        assert "<h2>Heading</h2>" in page, path
        assert_safe(page)


def test_the_image_result_renders_its_text_safely(alice, markdown_answers):
    page = text_of(
        browser(alice).post(
            "/generate/image", {"model": "google/gemini-2.5-flash-image", "prompt": HOSTILE}
        )
    )
    assert 'data-testid="generated-image"' in page
    assert_safe(page)


async def _signed_in_async_client(persona: Persona) -> AsyncClient:
    client = AsyncClient()
    response = await client.post("/login", {"email": persona.email, "password": PASSWORD})
    assert response.status_code == 302
    return client


async def _page_events(response) -> list[tuple[str, dict]]:
    text = b"".join([chunk async for chunk in response.streaming_content]).decode()
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


@pytest.mark.anyio
async def test_the_chat_stream_sends_only_sanitised_html(
    alice, markdown_answers, database, monkeypatch
):
    monkeypatch.setattr("generation.views.RENDER_INTERVAL", 0)  # re-render on every piece
    client = await _signed_in_async_client(alice)
    response = await client.post("/chat/stream", {"model": MODEL, "content": HOSTILE})
    assert response.status_code == 200
    assert response["X-Conversation-Url"].startswith("/chat/")
    events = await _page_events(response)
    assert [name for name, _ in events[:-1]] == ["answer"] * (len(events) - 1)
    assert len(events) > 2, "the answer was not re-rendered as it grew"
    assert events[-1][0] == "done"
    for _, data in events:
        assert set(data) == {"html"}  # never the raw model text
        assert_safe(data["html"])
    assert_markdown_rendered(events[-1][1]["html"])


# -- chat state -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_stopped_answer_is_kept_as_stopped_and_never_sent_back_as_such(
    alice, stub, database
):
    from accounts.identity import get_directory
    from generation import conversations

    stub.configure(token_delay=0.02)
    user = get_directory().user(__import__("uuid").UUID(alice.id))
    turn = await conversations.open_turn(user, None, MODEL, "one two three four five six")
    answer = conversations.stream_turn(turn)
    pieces = [await anext(answer), await anext(answer)]
    await answer.aclose()  # the person pressed Stop
    chat = await conversations.get_conversation(user, turn.conversation.id)
    stopped = chat.messages[-1]
    assert stopped.role == "assistant" and stopped.stopped
    assert stopped.content == "".join(pieces)

    await conversations.send_turn(await conversations.open_turn(user, chat, MODEL, "go on"))
    sent = stub.requests("/api/v1/chat/completions")[-1]["json"]["messages"]
    assert sent[-2] == {"role": "assistant", "content": "".join(pieces)}
    assert all("stopped" not in m["content"] for m in sent)
    stub.configure(token_delay=0)


@pytest.mark.anyio
async def test_a_new_conversation_and_its_first_question_are_one_commit(
    alice, stub, database, monkeypatch
):
    """If the question cannot be saved, no empty conversation is left behind either, and
    the admission is given back."""
    from accounts.identity import get_directory
    from core.db import DatabaseError
    from generation import conversations
    from generation import repository as repo

    user = get_directory().user(__import__("uuid").UUID(alice.id))

    def refuse(*args, **kwargs):
        raise DatabaseError("the disk is full")

    released = []
    monkeypatch.setattr(repo, "add_message", refuse)
    monkeypatch.setattr(conversations, "release", released.append)
    with pytest.raises(DatabaseError):
        await conversations.open_turn(user, None, MODEL, "a first question")
    assert await conversations.list_conversations(user) == []
    assert len(released) == 1
    monkeypatch.undo()
    turn = await conversations.open_turn(user, None, MODEL, "a first question")
    conversation = await conversations.get_conversation(user, turn.conversation.id)
    assert [(m.role, m.content) for m in conversation.messages] == [("user", "a first question")]


def test_history_links_chat_turns_to_their_conversation(alice, stub):
    client = browser(alice)
    location = client.post("/chat/send", {"model": MODEL, "content": "first turn"})["Location"]
    client.post(f"{location}/send", {"content": "second turn"})
    page = text_of(client.get("/history"))
    links = re.findall(r'href="(/chat/[0-9a-f-]+)" data-testid="history-conversation"', page)
    assert links == [location]  # two turns, one entry, linked
    assert "2 turns here" in page


def test_the_chat_sidebar_fragment_renders_for_htmx(alice, stub):
    client = browser(alice)
    location = client.post("/chat/send", {"model": MODEL, "content": "sidebar please"})["Location"]
    fragment = text_of(client.get(location, headers={"HX-Request": "true"}))
    assert fragment.lstrip().startswith('<aside id="chat-sidebar"')
    assert 'id="chat-head" class="chat-head" hx-swap-oob="true"' in fragment
    assert "<title>sidebar please · aigateway</title>" in fragment


# -- CSP, inline code, URLs by name ------------------------------------------------------------


def test_pages_send_a_strict_content_security_policy(alice):
    for response in (Client().get("/"), Client().get("/login"), browser(alice).get("/profile")):
        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "Content-Security-Policy" in Client().get("/no/such/page")


PAGES = ["/", "/generate/text", "/generate/image", "/generate/video", "/generate/video?tab=image",
         "/chat", "/history", "/profile", "/admin/users", "/admin/stats", "/admin/health",
         "/admin/tokens", "/admin/audit"]  # fmt: skip


def test_pages_carry_no_inline_script_handler_or_style(admin, stub):
    client = browser(admin)
    client.post("/profile", {"action": "key", "name": "laptop"})
    for path in PAGES:
        response = client.get(path)
        assert response.status_code == 200, path
        assert_safe(text_of(response))
    for path in ("/", "/login", "/register"):
        assert_safe(text_of(Client().get(path)))


LITERAL_PATH = re.compile(
    r'(?:href|action|src|hx-get|hx-post)="/|Redirect\(\s*f?"/|redirect\(\s*f?"/'
)


def test_templates_and_page_views_name_urls_instead_of_writing_paths():
    files = [*REPO.glob("templates/**/*.html"), *REPO.glob("*/views.py"), *REPO.glob("*/web.py")]
    offenders = [
        f"{path.relative_to(REPO)}: {match.group(0)}"
        for path in files
        for match in LITERAL_PATH.finditer(path.read_text())
    ]
    assert offenders == []


# -- details ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "shown"),
    [(0, "$0.00"), (0.48, "$0.48"), (1234.5, "$1,234.50"), (0.0387, "$0.0387"), (0.05, "$0.05"),
     (0.00002, "&lt; $0.0001"), (None, "—")],
)  # fmt: skip
def test_one_money_format_everywhere(amount, shown):
    html = Template("{% load money %}{{ v|usd }}").render(Context({"v": amount}))
    assert f">{shown}</span>" in html


def test_a_rounded_amount_keeps_the_exact_one_in_a_tooltip():
    html = Template("{% load money %}{{ v|usd }}|{{ v|usd_text }}").render(Context({"v": 2e-05}))
    assert html == '<span class="money" title="$0.00002">&lt; $0.0001</span>|&lt; $0.0001'


def test_a_video_in_progress_reads_in_progress():
    html = Template("{% load answers %}{{ s|status_label }}").render(Context({"s": "in_progress"}))
    assert html == "in progress"


def test_counts_read_in_the_singular_for_one(admin, alice, stub):
    alice.client.call("POST", "/api/generate/text", {"model": MODEL, "prompt": "x"})
    page = text_of(browser(admin).get("/admin/stats"))
    assert re.search(r"provider calls? \(0 errors\)", page) and "1 call<" in page
    assert not re.search(r"\b1 (calls|errors|tokens|generations)\b", page)


def test_the_api_docs_are_linked_from_the_navigation_and_the_keys(alice):
    page = text_of(browser(alice).get("/profile"))
    assert page.count('href="/api/docs/"') == 3  # and from "Use with your tools"
    assert 'href="/api/docs/"' in text_of(Client().get("/"))
