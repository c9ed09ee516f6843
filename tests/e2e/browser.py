"""What every Chromium test needs around a page: a fresh context at a given width, the
browser's complaints (CSP, script errors) collected, axe-core, screenshots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e.conftest import CHROMIUM
from tests.servers import REPO_ROOT, GatewayServer

SHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
AXE = REPO_ROOT / "node_modules" / "axe-core" / "axe.min.js"
AXE_SERIOUS = """async () => {
  const result = await axe.run(document, { resultTypes: ["violations"] });
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(" | ")}`);
}"""

needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (make test installs it)"
)


class Problems:
    """What the browser complained about: CSP violations and script errors."""

    def __init__(self, page) -> None:  # type: ignore[no-untyped-def]
        self.csp: list[str] = []
        self.errors: list[str] = []
        self.page = page
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _console(self, message) -> None:  # type: ignore[no-untyped-def]
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            where = message.location
            self.csp.append(f"on {self.page.url} from {where.get('url')}: {message.text}")

    def assert_none(self) -> None:
        assert self.csp == [], self.csp
        assert self.errors == [], self.errors


PROBLEMS: dict[int, Problems] = {}


def new_page(browser, site: GatewayServer, width: int = 1280):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": width, "height": 900}, base_url=site.base_url)
    context.set_default_timeout(20_000)
    if AXE.exists():
        # Injected by the DevTools protocol, not as a page script, so the CSP stays strict.
        context.add_init_script(path=str(AXE))
    page = context.new_page()
    PROBLEMS[id(page)] = Problems(page)
    return page


def problems(page) -> Problems:  # type: ignore[no-untyped-def]
    return PROBLEMS[id(page)]


def require_axe_core() -> None:
    """The accessibility checks need axe-core from npm: skipped without it, except in CI."""
    if not AXE.exists():
        message = "axe-core is not installed (scripts/install-axe.sh installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def assert_accessible(page, name: str) -> None:  # type: ignore[no-untyped-def]
    """No serious or critical axe-core violation; a screenshot either way."""
    shot(page, name)
    violations = page.evaluate(AXE_SERIOUS)
    assert violations == [], f"{name} at {page.viewport_size['width']}px: {violations}"


def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    width = page.viewport_size["width"]
    page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
