"""The browser product in real headless Chromium against the real server and stand-in.

Screenshots of the main pages at 1280 px and 390 px land in test-artifacts/screenshots/.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.e2e.browser import assert_accessible, needs_chromium, new_page, problems, shot
from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, serve_with_admin
from tests.openrouter_stub import StubServer
from tests.servers import GatewayServer

STUB_KEY = "sk-or-v1-browser-test-key-" + "b" * 30

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with StubServer(api_key=STUB_KEY, video_seconds=2, token_delay=0.03) as server:
        yield server


@pytest.fixture(scope="module")
def site(stub: StubServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    server = GatewayServer(
        tmp_path_factory.mktemp("browser"),
        env={
            "OPENROUTER_BASE_URL": stub.base_url,
            "OPENROUTER_API_KEY": STUB_KEY,
            "RATE_LIMIT_USER": "off",
            "RATE_LIMIT_ANON": "off",
            "RATE_LIMIT_AUTH": "off",
        },
    )
    yield from serve_with_admin(server)


@contextlib.contextmanager
def slower_stub(stub: StubServer, **settings: float) -> Iterator[None]:
    """Change the stand-in's timings for one test, then put the module's back."""
    stub.configure(**settings)
    try:
        yield
    finally:
        stub.configure(video_seconds=2, token_delay=0.03)


# Answers the stand-in echoes back: inline Markdown, and markup that must never run.
MARKDOWN_PROMPT = (
    "Show **bold words**, `inline code` and [a link](https://example.com/) "
    "<img src=x onerror=window.__xss=1> <script>window.__xss=2</script> "
    "[bad](javascript:window.__xss=3) in many small words please"
)


def register(page, email: str) -> None:  # type: ignore[no-untyped-def]
    page.goto("/register")
    page.fill("#id_email", email)
    page.fill("#id_password", PASSWORD)
    page.fill("#id_password_again", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url("**/")


def log_in(page, email: str, password: str) -> None:  # type: ignore[no-untyped-def]
    page.goto("/login")
    page.fill("#id_email", email)
    page.fill("#id_password", password)
    page.click("main button[type=submit]")
    page.wait_for_url("**/")


def assert_answer_is_safe_markdown(answer) -> None:  # type: ignore[no-untyped-def]
    assert answer.locator("strong").inner_text() == "bold words"
    assert answer.locator("code").first.inner_text() == "inline code"
    link = answer.locator("a[href='https://example.com/']")
    assert link.get_attribute("rel") == "noopener noreferrer nofollow"
    assert answer.locator("img, script, [onerror], a[href^='javascript']").count() == 0
    assert "<script>" in answer.inner_text()  # shown as text


def in_view(page, selector: str) -> bool:  # type: ignore[no-untyped-def]
    return bool(
        page.evaluate(
            "s => { const r = document.querySelector(s).getBoundingClientRect();"
            " return r.top >= 0 && r.top < window.innerHeight; }",
            selector,
        )
    )


@pytest.mark.parametrize("width", [1280, 390])
def test_a_user_generates_text_image_video_and_chats_then_logs_out(browser, site, stub, width):  # type: ignore[no-untyped-def]
    page = new_page(browser, site, width)
    page.goto("/")
    shot(page, "landing")
    register(page, f"browser-{uuid.uuid4().hex[:8]}@example.com")
    assert page.get_by_text("Welcome! Your account is ready.").is_visible()

    # Text: the answer appears in place (htmx), as Markdown, and scrolls into view; the
    # spend bar above it shows the answer's cost at once.
    page.goto("/generate/text")
    page.evaluate("window.__noReload = true")
    spent_before = page.locator("[data-testid=spend]").inner_text()
    page.fill("#id_prompt", MARKDOWN_PROMPT)
    page.click("#panel button[type=submit]")
    result = page.wait_for_selector("[data-testid=text-result]")
    page.wait_for_function(
        "before => document.querySelector('[data-testid=spend]').innerText !== before",
        arg=spent_before,
    )
    assert page.locator("[data-testid=spend]").count() == 1
    assert_answer_is_safe_markdown(page.locator("[data-testid=text-result]"))
    assert "many small words" in result.inner_text()
    assert page.evaluate("window.__noReload") is True
    page.wait_for_function(
        "() => { const r = document.querySelector('#result').getBoundingClientRect();"
        " return r.top >= 0 && r.bottom <= window.innerHeight; }"
    )
    if width < 800:  # the result sits below the form: the page scrolled to it
        assert page.evaluate("window.scrollY") > 0
    shot(page, "generate-text")

    # Image: visible inline.
    page.goto("/generate/image")
    page.fill("#id_prompt", "a red fox in snow")
    page.click("#panel button[type=submit]")
    image = page.wait_for_selector("[data-testid=generated-image]")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image)
    assert in_view(page, "#result")
    shot(page, "generate-image")

    # Video: submit, then watch it play without touching the page.
    page.goto("/generate/video")
    shot(page, "generate-video-form")
    page.fill("#id_prompt", "waves on a beach")
    page.fill("#id_duration", "4")
    page.click("main form button[type=submit]")
    page.wait_for_url("**/generate/video/*")
    assert "_" not in page.locator("#job-status .badge").inner_text()
    video = page.wait_for_selector("[data-testid=video]", timeout=40_000)
    page.wait_for_function("v => v.readyState >= 2 && v.currentTime > 0", arg=video, timeout=20_000)
    shot(page, "video-playing")

    # Chat: the answer streams in piece by piece, rendered as Markdown as it grows; then
    # the sidebar and the title show the new conversation, without a reload.
    page.goto("/chat")
    page.evaluate("window.__noReload = true")
    assert page.locator("[data-testid=chat-title]").inner_text() == "New chat"
    page.fill("#id_content", MARKDOWN_PROMPT)
    page.click("#chat-form button[type=submit]")
    answer = page.wait_for_selector(".bubble.assistant[data-streaming=true]")
    seen = set()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and answer.get_attribute("data-done") != "true":
        seen.add(len(answer.inner_text()))
        time.sleep(0.02)
    assert answer.get_attribute("data-done") == "true"
    assert len(seen) > 2, "the answer arrived in one piece, not streamed"
    assert_answer_is_safe_markdown(page.locator(".bubble.assistant").last)
    page.wait_for_url("**/chat/*")  # the conversation got its own address
    title = page.locator("[data-testid=chat-title]")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=chat-title]').textContent !== 'New chat'"
    )
    assert title.inner_text().startswith("Show **bold words**")
    sidebar = page.locator("[data-testid=conversation-list] a[aria-current=page]")
    sidebar.wait_for()
    conversation_url = sidebar.get_attribute("href")
    assert page.url.endswith(conversation_url)
    assert page.title().startswith("Show **bold words**")
    assert page.evaluate("window.__noReload") is True
    assert page.evaluate("window.__xss") is None
    shot(page, "chat")

    page.goto("/history")
    assert page.locator("[data-testid=history-item]").count() >= 4
    link = page.locator("[data-testid=history-conversation]").first
    assert link.get_attribute("href") == conversation_url
    shot(page, "history")
    page.goto("/profile")
    shot(page, "profile")
    page.goto("/")
    shot(page, "dashboard")

    page.click("nav form button[type=submit]")  # Log out
    page.wait_for_url("**/")
    assert page.get_by_text("You are logged out.").is_visible()
    page.goto("/history")
    assert "/login" in page.url
    problems(page).assert_none()
    page.context.close()


@pytest.mark.parametrize("width", [1280, 390])
def test_every_page_passes_axe_core(browser, site, stub, axe_core, width):  # type: ignore[no-untyped-def]
    page = new_page(browser, site, width)
    for path, name in (("/", "landing"), ("/login", "login"), ("/register", "register"),
                       ("/no/such/page", "not-found")):  # fmt: skip
        page.goto(path)
        assert_accessible(page, name)
    page.goto("/login")
    page.click("main button[type=submit]")  # empty: errors next to the fields
    page.wait_for_selector(".field.has-error")
    assert_accessible(page, "login-errors")

    register(page, f"axe-{uuid.uuid4().hex[:8]}@example.com")
    assert_accessible(page, "dashboard-new")
    page.goto("/generate/text")
    assert_accessible(page, "generate-text-form")
    page.fill("#id_prompt", MARKDOWN_PROMPT)
    page.click("#panel button[type=submit]")
    page.wait_for_selector("[data-testid=text-result]")
    assert_accessible(page, "generate-text-result")
    page.goto("/generate/image")
    page.fill("#id_prompt", "a lighthouse")
    page.click("#panel button[type=submit]")
    page.wait_for_selector("[data-testid=generated-image]")
    assert_accessible(page, "generate-image-result")
    page.goto("/generate/video?tab=image")
    assert_accessible(page, "generate-video-image")
    page.goto("/generate/video")
    assert_accessible(page, "generate-video-text")
    page.fill("#id_prompt", "rain on a window")
    page.click("main form button[type=submit]")
    page.wait_for_url("**/generate/video/*")
    assert_accessible(page, "video-job-running")
    page.wait_for_selector("[data-testid=video]", timeout=40_000)
    assert_accessible(page, "video-job-done")

    page.goto("/chat")
    assert_accessible(page, "chat-new")
    page.fill("#id_content", MARKDOWN_PROMPT)
    page.click("#chat-form button[type=submit]")
    page.wait_for_selector(".bubble.assistant[data-done=true]")
    page.reload()
    assert_accessible(page, "chat-conversation")
    page.goto("/profile")
    page.fill("#id_name", "laptop")
    page.click("#api-keys button[type=submit]")
    page.wait_for_selector("[data-testid=new-key]")
    assert_accessible(page, "profile-with-key")
    for path, name in (("/history", "history"), ("/", "dashboard")):
        page.goto(path)
        assert_accessible(page, name)
    page.click("nav form button[type=submit]")
    page.wait_for_url("**/")

    log_in(page, ADMIN_EMAIL, ADMIN_PASSWORD)
    for name in ("users", "stats", "health", "tokens", "audit", "limits"):
        page.goto(f"/admin/{name}")
        assert_accessible(page, f"admin-{name}")
    # A budget for admins: the limits form, then the dashboard's and a generate page's bar.
    page.fill("#id_role-admin-budget_usd", "5")
    page.click("[data-testid=role-limits-admin] button[type=submit]")
    page.wait_for_selector(".messages")
    page.locator("[data-testid=limits-row] summary").first.click()
    assert_accessible(page, "admin-limits-override-open")
    for path, name in (("/", "dashboard-budget"), ("/generate/text", "generate-text-budget")):
        page.goto(path)
        page.wait_for_selector("[data-testid=spend] svg.track")
        assert_accessible(page, name)
    problems(page).assert_none()
    page.context.close()


def test_the_video_page_survives_a_reload(browser, site, stub):  # type: ignore[no-untyped-def]
    with slower_stub(stub, video_seconds=6):
        page = new_page(browser, site)
        register(page, f"reload-{uuid.uuid4().hex[:8]}@example.com")
        page.goto("/generate/video")
        page.fill("#id_prompt", "slow clouds")
        page.click("main form button[type=submit]")
        page.wait_for_url("**/generate/video/*")
        assert page.locator("#job-status[hx-trigger]").count() == 1  # still running, polling
        page.wait_for_function(
            "() => document.querySelector('[data-testid=video-status]')?.textContent === 'in progress'"
            " || document.querySelector('[data-testid=video]')"
        )
        page.reload()
        video = page.wait_for_selector("[data-testid=video]", timeout=40_000)
        page.wait_for_function("v => v.readyState >= 2", arg=video)
        page.reload()
        assert page.locator("[data-testid=video]").count() == 1
        problems(page).assert_none()
        page.context.close()


def test_a_demoted_admin_loses_the_admin_menu_and_gets_403(browser, site):  # type: ignore[no-untyped-def]
    email = f"deputy-{uuid.uuid4().hex[:8]}@example.com"
    deputy = new_page(browser, site)
    register(deputy, email)

    boss = new_page(browser, site)
    log_in(boss, ADMIN_EMAIL, ADMIN_PASSWORD)
    boss.goto(f"/admin/users?q={email}")
    boss.click(f"tr[data-email='{email}'] [data-testid=promote]")
    boss.wait_for_selector(f"tr[data-email='{email}'] [data-testid=demote]")
    for name in ("users", "stats", "health", "tokens", "audit"):
        boss.goto(f"/admin/{name}")
        shot(boss, f"admin-{name}")

    deputy.goto("/")
    assert deputy.locator("[data-testid=admin-menu]").count() == 1

    boss.goto(f"/admin/users?q={email}")
    boss.click(f"tr[data-email='{email}'] [data-testid=demote]")
    boss.wait_for_selector(f"tr[data-email='{email}'] [data-testid=promote]")

    # The deputy's page still shows the old menu; the very next click is refused.
    deputy.click("[data-testid=admin-menu]")
    assert deputy.get_by_text("Not allowed").is_visible()
    assert deputy.locator("[data-testid=admin-menu]").count() == 0
    problems(boss).assert_none()
    boss.context.close()
    deputy.context.close()


FITS_ON_SCREEN = r"""() => {
  const width = window.innerWidth;
  const visible = (el) => el.checkVisibility();
  const cut = [...document.querySelectorAll("main button, main .button, main summary, main input, main select")]
    .filter(visible)
    .filter((el) => { const r = el.getBoundingClientRect(); return r.left < 0 || r.right > width + 0.5; })
    .map((el) => el.textContent.trim() || el.name);
  // An email on a line of its own never breaks inside a word.
  const emails = [...document.querySelectorAll("main .email")]
    .filter((el) => visible(el) && /^\S+@\S+$/.test(el.firstChild.textContent.trim()));
  const broken = emails.filter((el) => {
    const range = document.createRange();
    range.selectNodeContents(el.firstChild);
    const lineHeight = parseFloat(getComputedStyle(el).fontSize) * 1.5;
    return range.getBoundingClientRect().height > lineHeight * 1.5;
  }).map((el) => el.textContent.trim());
  return { overflow: document.documentElement.scrollWidth - width, cut, broken };
}"""


def test_tables_and_forms_fit_a_phone(browser, site):  # type: ignore[no-untyped-def]
    page = new_page(browser, site, 390)
    log_in(page, ADMIN_EMAIL, ADMIN_PASSWORD)
    page.goto("/profile")
    page.fill("#id_name", "a key with a rather long descriptive name")
    page.click("#api-keys button[type=submit]")
    page.wait_for_selector("[data-testid=new-key]")
    for path in ("/admin/users", "/admin/audit", "/admin/stats", "/admin/health", "/admin/tokens",
                 "/admin/limits", "/profile", "/history", "/"):  # fmt: skip
        page.goto(path)
        shot(page, "phone" + path.replace("/", "-").rstrip("-"))
        fit = page.evaluate(FITS_ON_SCREEN)
        assert fit["overflow"] <= 1, f"{path} scrolls sideways on a phone by {fit['overflow']}px"
        assert fit["cut"] == [], f"{path}: cut off on a phone: {fit['cut']}"
        assert fit["broken"] == [], f"{path}: emails broken mid-word: {fit['broken']}"
    # Stacked rows keep the key column on top and label every other cell.
    page.goto("/admin/users")
    row = page.locator("[data-testid=user-row]").first
    assert row.locator("td.key-cell").is_visible()
    assert page.locator("table.stacked thead").is_hidden()
    problems(page).assert_none()
    page.context.close()


def test_the_stop_button_ends_a_streaming_answer(browser, site, stub):  # type: ignore[no-untyped-def]
    with slower_stub(stub, token_delay=0.3):
        page = new_page(browser, site)
        register(page, f"stopper-{uuid.uuid4().hex[:8]}@example.com")
        page.goto("/chat")
        page.fill("#id_content", "one two three four five six seven eight nine ten eleven twelve")
        page.click("#chat-form button[type=submit]")
        page.wait_for_function(
            "() => (document.querySelector('.bubble.assistant .md')?.textContent || '').length > 0"
        )
        page.click("#stop")
        answer = page.locator(".bubble.assistant").last
        page.wait_for_function("() => !document.querySelector('.bubble.assistant[data-streaming]')")
        assert answer.get_attribute("data-stopped") == "true"
        assert answer.inner_text().endswith("Stopped before the end")
        assert page.locator("#chat-form button[type=submit]").is_enabled()
        # What was answered so far was kept, marked stopped. The server saves it once it
        # sees the connection close, a few milliseconds after the click (more on a busy
        # machine), so a reload at once may come first: reload until it shows, briefly.
        kept = page.locator(".bubble.assistant").last
        for _ in range(20):
            page.reload()
            if page.locator(".bubble.assistant").count():
                break
            page.wait_for_timeout(250)
        kept.wait_for(timeout=1000)
        assert kept.get_attribute("data-stopped") == "true"
        assert "[stopped]" not in kept.inner_text()
        problems(page).assert_none()
        page.context.close()


def test_code_blocks_get_a_copy_button_that_copies(browser, site):  # type: ignore[no-untyped-def]
    """The stand-in's echo is one line, so this stream is rendered by the server's own
    render_markdown here and handed to the page as the chat stream would."""
    from generation.markdown import render_markdown

    code = "def greet(name):\n    return f'<b>{name}</b>'"
    html = str(render_markdown(f"Here:\n\n```python\n{code}\n```\n\nDone."))
    events = "".join(
        f"event: {name}\ndata: {json.dumps({'html': html})}\n\n" for name in ("answer", "done")
    )
    page = new_page(browser, site)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    register(page, f"copier-{uuid.uuid4().hex[:8]}@example.com")
    page.goto("/chat")
    page.route(
        "**/chat/stream",
        lambda route: route.fulfill(
            status=200, headers={"Content-Type": "text/event-stream"}, body=events
        ),
    )
    page.fill("#id_content", "show me code")
    page.click("#chat-form button[type=submit]")
    button = page.locator(".bubble.assistant .codeblock button.copy-code")
    button.click()
    page.wait_for_function(  # the clipboard answers asynchronously
        "() => document.querySelector('.copy-code').textContent === 'Copied'"
    )
    assert page.evaluate("navigator.clipboard.readText()") == code
    problems(page).assert_none()
    page.context.close()


def test_forms_work_by_keyboard_with_a_visible_focus(browser, site):  # type: ignore[no-untyped-def]
    outline = (
        "() => { const s = getComputedStyle(document.activeElement);"
        " return [document.activeElement.textContent.trim() || document.activeElement.id,"
        " s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2]; }"
    )
    page = new_page(browser, site)
    page.goto("/")
    page.keyboard.press("Tab")
    assert page.evaluate(outline) == ["Skip to content", True]
    page.keyboard.press("Tab")
    assert page.evaluate(outline) == ["aigateway", True]

    page.goto("/login")  # the email field has the focus already
    assert page.evaluate(outline) == ["id_email", True]
    page.keyboard.type(ADMIN_EMAIL)
    page.keyboard.press("Tab")
    assert page.evaluate(outline) == ["id_password", True]
    page.keyboard.type(ADMIN_PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/")
    # The Generate menu opens and follows by keyboard too.
    page.focus(".nav summary")
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert page.evaluate(outline) == ["Text", True]
    page.keyboard.press("Enter")
    page.wait_for_url("**/generate/text")
    problems(page).assert_none()
    page.context.close()


def test_the_header_register_button_is_readable(browser, site):  # type: ignore[no-untyped-def]
    page = new_page(browser, site)
    page.goto("/")
    colours = page.evaluate(
        "() => { const s = getComputedStyle(document.querySelector('[data-testid=header-register]'));"
        " return [s.color, s.backgroundColor]; }"
    )
    assert colours == ["rgb(255, 255, 255)", "rgb(59, 91, 219)"]
    page.context.close()
