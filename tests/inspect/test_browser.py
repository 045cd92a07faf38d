"""The HTML viewer, end to end in Debian's headless Chromium driven by Playwright.

Served: load the list, filter it, open an episode, check that hostile recorded text shows as
text and runs nothing, open its group and the training curves, take a screenshot. Exported:
the same single file opened from disk. Chromium must be installed (``scripts/setup.sh --dev``
does it); without it these tests fail, they are not skipped.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest
from playwright.sync_api import expect

from agentropy.inspect.html import export_html
from agentropy.inspect.run import RunIndex
from agentropy.inspect.server import ViewerServer
from tests.inspect.runs import HOSTILE_ID, IMG, SCRIPT, TEXTAREA

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("AGENTROPY_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def browser():
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: the browser tests need it. "
                    "Run scripts/setup.sh --dev (as root it runs apt-get install chromium), or set "
                    "AGENTROPY_CHROMIUM to a Chromium executable.")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover
        pytest.fail("the playwright package is missing: pip install -e '.[dev]'")
    profile = tempfile.mkdtemp(prefix="agentropy-chromium-")
    with sync_playwright() as p:
        # A fresh profile per run: launch_persistent_context is how Playwright takes one.
        context = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1400, "height": 900})
        context.set_default_timeout(15_000)
        yield context
        context.close()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture()
def page(browser):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}")
            if m.type == "error" else None)
    yield page, errors
    page.close()


def _rows(page) -> list[str]:
    return page.locator("#episode-table tbody tr").evaluate_all(
        "rows => rows.map(r => r.getAttribute('data-id'))")


def _assert_hostile_text_is_inert(page, scripts: int):
    """No recorded script ran, no recorded tag became an element; ``scripts``: the app's own."""
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#app img, #app script, #app iframe, #app textarea").count() == 0
    assert page.locator("script").count() == scripts


def test_served_viewer_end_to_end(page, hostile_run, tmp_path):
    page, errors = page
    with ViewerServer(hostile_run) as server:
        page.goto(server.url)
        page.wait_for_selector("body[data-ready='1']")
        assert len(_rows(page)) == 20
        assert page.inner_text("#count") == "1\u201320 of 20 episodes"

        # Filter: failed episodes of task type cookingworld, then a search in the texts.
        page.select_option("#f-won", "false")
        expect(page.locator("#count")).to_contain_text("of 11 episodes")
        page.select_option("#f-task_type", "cookingworld")
        expect(page.locator("#count")).to_contain_text("of 4 episodes")
        assert _rows(page) == ["it0-g1-m1", "it0-g1-m3", "it1-g1-m1", "it1-g1-m3"]
        assert "won=false" in page.url and "task_type=cookingworld" in page.url
        page.click("#f-reset")
        page.fill("#f-text", "say <script>")
        expect(page.locator("#count")).to_contain_text("of 1 episodes")
        assert _rows(page) == [HOSTILE_ID]

        # Open the hostile episode: its texts show as text, and nothing in them runs.
        page.click("#episode-table tbody tr")
        page.wait_for_selector("#turns .turn")
        assert page.inner_text("#episode-title") == HOSTILE_ID
        turn = page.locator("#turn-0")
        assert f"say {SCRIPT}" in turn.locator(".action").inner_text()
        assert TEXTAREA in turn.inner_text() and IMG in turn.inner_text()
        assert "café — 漢字 🙂" in turn.inner_text()
        # A bidirectional override shows as an escape; it cannot reorder the page's text.
        assert "\\u202eevil\\u202c" in turn.inner_text() and "\u202e" not in turn.inner_text()
        assert "backend died" in page.inner_text(".ep-head")
        _assert_hostile_text_is_inert(page, scripts=1)

        # A training episode: tokens coloured by entropy, then by advantage; its group.
        page.goto(server.url + "#/episode/it1-g0-m1?turn=2")
        page.wait_for_selector("#turn-2.focus")
        spans = page.locator("#turn-2 pre.tokens span")
        assert spans.count() > 10
        coloured = spans.evaluate_all("s => s.filter(x => x.style.backgroundColor).length")
        assert coloured > 0
        page.click("#colour-mode button[data-mode='advantage']")
        assert "rgba(220, 50, 20" in spans.first.evaluate("s => s.style.backgroundColor")
        assert page.locator("#turn-strip a").count() == 4
        page.screenshot(path=str(tmp_path / "episode.png"))
        page.click("#group-link")
        page.wait_for_selector("#group-grid .col")
        assert page.locator("#group-grid .col").count() == 4
        assert "Same actions for turns 0\u20131" in page.inner_text("#divergence")

        # Training curves next to the episodes of the chosen iteration.
        page.click("#tab-training")
        page.wait_for_selector("#charts .chart svg")
        keys = page.locator("#charts .chart").evaluate_all("c => c.map(x => x.dataset.key)")
        assert keys == ["actor/entropy", "eval/dev/success", "eval/dev/success_greedy",
                        "train/success"]
        page.wait_for_selector("#iteration-episodes tr")
        assert page.locator("#iteration-episodes tr").count() == 11  # iteration 1, the last
        box = page.locator("#charts .chart svg").first.bounding_box()
        page.mouse.click(box["x"] + 50, box["y"] + box["height"] / 2)  # the left end: iteration 0
        expect(page.locator("#iteration-panel h2").first).to_have_text("Iteration 0")
        expect(page.locator("#iteration-episodes tr")).to_have_count(8)

        # SPEAR's replay buffer, linked to episode turns.
        page.click("#tab-replay")
        page.wait_for_selector("#replay-table tbody tr")
        assert page.locator("#replay-table tbody tr").count() == 3
        page.click("#replay-table tbody tr >> nth=0 >> td >> nth=1 >> a")
        page.wait_for_selector("#turn-2.focus")
        assert page.inner_text("#episode-title") == "it1-g0-m0"

        page.goto(server.url)
        page.wait_for_selector("#episode-table tbody tr")
        shot = tmp_path / "viewer.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        if os.environ.get("AGENTROPY_SCREENSHOTS"):
            shutil.copy(shot, os.environ["AGENTROPY_SCREENSHOTS"])
        _assert_hostile_text_is_inert(page, scripts=1)
    assert errors == []


def test_exported_file_end_to_end(page, hostile_run, tmp_path):
    page, errors = page
    # Capped: units are 4 groups of 4, 3 eval episodes, 1 play episode (20 episodes in 8 units,
    # 2.5 on average), so 4 evenly spaced units (0, 2, 4, 6) fit in 10: two groups + 2 evals.
    small = tmp_path / "small.html"
    stats = export_html(RunIndex(hostile_run), small, max_episodes=10)
    assert stats == {"episodes": 10, "matching": 20, "bytes": small.stat().st_size}
    page.goto(small.as_uri())
    page.wait_for_selector("body[data-ready='1']")
    assert "holds 10 of the 20 episodes" in page.inner_text("#export-note")
    assert _rows(page) == ["it0-g0-m0", "it0-g0-m1", "it0-g0-m2", "it0-g0-m3", "it1-g0-m0",
                           "it1-g0-m1", "it1-g0-m2", "it1-g0-m3", "eval-0", "eval-2"]

    out = tmp_path / "run.html"
    export_html(RunIndex(hostile_run), out)
    text = out.read_text()
    # Only the app's script elements; the recorded ones are escaped inside the JSON.
    assert text.count("<script") == 2 and "window.__pwned" in text and "<img" not in text
    page.goto(out.as_uri())
    page.wait_for_selector("body[data-ready='1']")
    assert len(_rows(page)) == 20 and page.locator("#export-note").count() == 0
    page.fill("#f-q", "onerror")
    expect(page.locator("#count")).to_contain_text("of 1 episodes")
    page.click("#episode-table tbody tr")
    page.wait_for_selector("#turns .turn")
    assert page.inner_text("#episode-title") == HOSTILE_ID
    assert TEXTAREA in page.inner_text("#turn-0") and f"say {SCRIPT}" in page.inner_text("#turn-0")
    _assert_hostile_text_is_inert(page, scripts=2)  # the data block and the app
    page.goto(out.as_uri() + "#/group/1/1")
    page.wait_for_selector("#group-grid .col")
    page.click("#tab-training")
    page.wait_for_selector("#charts .chart svg")
    page.click("#tab-replay")
    page.wait_for_selector("#replay-table tbody tr")
    assert errors == []  # the CSP let the app's own script and style run, and nothing else
