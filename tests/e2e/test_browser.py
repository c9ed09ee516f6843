"""The browser product in real headless Chromium against the real server and stand-in.

Screenshots of the main pages at 1280 px and 390 px land in test-artifacts/screenshots/.
"""

from __future__ import annotations

import contextlib
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD
from tests.openrouter_stub import StubServer
from tests.servers import REPO_ROOT, GatewayServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STUB_KEY = "sk-or-v1-browser-test-key-" + "b" * 30

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (make test installs it)"
)


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
    made = server.manage("createadmin", "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD)
    assert made.returncode == 0, made.stderr
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


@contextlib.contextmanager
def slower_stub(stub: StubServer, **settings: float) -> Iterator[None]:
    """Change the stand-in's timings for one test, then put the module's back."""
    stub.configure(**settings)
    try:
        yield
    finally:
        stub.configure(video_seconds=2, token_delay=0.03)


def new_page(browser, site: GatewayServer, width: int = 1280):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": width, "height": 900}, base_url=site.base_url)
    context.set_default_timeout(20_000)
    return context.new_page()


def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    width = page.viewport_size["width"]
    page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)


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


@pytest.mark.parametrize("width", [1280, 390])
def test_a_user_generates_text_image_video_and_chats_then_logs_out(browser, site, stub, width):  # type: ignore[no-untyped-def]
    page = new_page(browser, site, width)
    page.goto("/")
    shot(page, "landing")
    register(page, f"browser-{uuid.uuid4().hex[:8]}@example.com")
    assert page.get_by_text("Welcome! Your account is ready.").is_visible()

    # Text: the answer appears in place (htmx), the page does not reload.
    page.goto("/generate/text")
    page.evaluate("window.__noReload = true")
    page.fill("#id_prompt", "Write a haiku about gateways")
    page.click("#panel button[type=submit]")
    result = page.wait_for_selector("[data-testid=text-result]")
    assert "haiku about gateways" in result.inner_text()
    assert page.evaluate("window.__noReload") is True
    shot(page, "generate-text")

    # Image: visible inline.
    page.goto("/generate/image")
    page.fill("#id_prompt", "a red fox in snow")
    page.click("#panel button[type=submit]")
    image = page.wait_for_selector("[data-testid=generated-image]")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image)
    shot(page, "generate-image")

    # Video: submit, then watch it play without touching the page.
    page.goto("/generate/video")
    shot(page, "generate-video-form")
    page.fill("#id_prompt", "waves on a beach")
    page.fill("#id_duration", "4")
    page.click("main form button[type=submit]")
    page.wait_for_url("**/generate/video/*")
    video = page.wait_for_selector("[data-testid=video]", timeout=40_000)
    page.wait_for_function("v => v.readyState >= 2 && v.currentTime > 0", arg=video, timeout=20_000)
    shot(page, "video-playing")

    # Chat: the answer streams in piece by piece.
    page.goto("/chat")
    page.fill("#id_content", "Tell me something streamed please, in many small words")
    page.click("#chat-form button[type=submit]")
    answer = page.wait_for_selector(".bubble.assistant[data-streaming=true]")
    seen = set()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and answer.get_attribute("data-done") != "true":
        seen.add(len(answer.inner_text()))
        time.sleep(0.02)
    assert answer.get_attribute("data-done") == "true"
    assert len(seen) > 2, "the answer arrived in one piece, not streamed"
    page.wait_for_url("**/chat/*")  # the conversation got its own address
    shot(page, "chat")

    page.goto("/history")
    assert page.locator("[data-testid=history-item]").count() >= 4
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
        page.reload()
        video = page.wait_for_selector("[data-testid=video]", timeout=40_000)
        page.wait_for_function("v => v.readyState >= 2", arg=video)
        page.reload()
        assert page.locator("[data-testid=video]").count() == 1
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
    boss.context.close()
    deputy.context.close()


def test_staff_pages_look_finished_on_a_phone(browser, site):  # type: ignore[no-untyped-def]
    page = new_page(browser, site, 390)
    log_in(page, ADMIN_EMAIL, ADMIN_PASSWORD)
    for name in ("users", "stats"):
        page.goto(f"/admin/{name}")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"/admin/{name} scrolls sideways on a phone by {overflow}px"
        shot(page, f"admin-{name}")
    page.context.close()


def test_the_stop_button_ends_a_streaming_answer(browser, site, stub):  # type: ignore[no-untyped-def]
    with slower_stub(stub, token_delay=0.3):
        page = new_page(browser, site)
        register(page, f"stopper-{uuid.uuid4().hex[:8]}@example.com")
        page.goto("/chat")
        page.fill("#id_content", "one two three four five six seven eight nine ten eleven twelve")
        page.click("#chat-form button[type=submit]")
        page.wait_for_function(
            "() => (document.querySelector('.bubble.assistant')?.textContent || '').length > 0"
        )
        page.click("#stop")
        answer = page.locator(".bubble.assistant").last
        page.wait_for_function("() => !document.querySelector('.bubble.assistant[data-streaming]')")
        assert answer.get_attribute("data-stopped") == "true"
        assert answer.inner_text().endswith("Stopped before the end")
        assert page.locator("#chat-form button[type=submit]").is_enabled()
        page.reload()  # what was answered so far was kept, marked stopped
        kept = page.locator(".bubble.assistant").last
        kept.wait_for()
        assert kept.get_attribute("data-stopped") == "true"
        assert "[stopped]" not in kept.inner_text()
        page.context.close()
