"""Per-athlete links and cross-site pages, in Debian's Chromium (Playwright) against the demo service:
the coach page offers each athlete's own link (never the coach's token), and a page of another site open
in the coach's browser can neither change a set nor open the live stream. Screenshots are kept under
test-artifacts/web/."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from sensorhub.config import load_config
from sensorhub.demo import background_demo
from sensorhub.runtime.service import ServiceHandle
from tests.helpers import ARTIFACTS, ROOT

ATHLETES = ("athlete1", "athlete2")


@pytest.fixture(scope="module")
def lan_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceHandle]:
    """Two simulated athletes on a non-loopback bind: a generated coach token is required."""
    config = load_config(ROOT / "configs" / "demo.toml", env={})
    store = tmp_path_factory.mktemp("links") / "history.sqlite3"
    with background_demo(config, athletes=2, host="0.0.0.0", store_path=store) as handle:
        yield handle


@pytest.fixture(scope="module")
def local_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceHandle]:
    """One simulated athlete on loopback: open to this machine, no token."""
    config = load_config(ROOT / "configs" / "demo.toml", env={})
    store = tmp_path_factory.mktemp("csrf") / "history.sqlite3"
    with background_demo(config, athletes=1, store_path=store) as handle:
        yield handle


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    ctx.on("weberror", lambda err: errors.append(str(err.error)))
    yield ctx
    ctx.close()
    assert not errors, f"JavaScript errors: {errors}"


def test_coach_page_offers_each_athletes_own_link(lan_demo: ServiceHandle, context: Any) -> None:
    coach = lan_demo.policy.token
    assert coach
    page = context.new_page()
    page.goto(f"http://127.0.0.1:{lan_demo.port}/?token={coach}")
    for athlete in ATHLETES:
        page.locator(f'section.card[data-athlete="{athlete}"] a.athlete-view').wait_for(timeout=15_000)
    page.wait_for_function("() => document.getElementById('status').textContent === 'connected'")
    page.screenshot(path=str(ARTIFACTS / "coach_athlete_links.png"), full_page=True)
    page.locator(f'section.card[data-athlete="{ATHLETES[0]}"] h2').screenshot(
        path=str(ARTIFACTS / "coach_athlete_link_header.png")
    )
    for athlete in ATHLETES:
        href = page.locator(f'section.card[data-athlete="{athlete}"] a.athlete-view').get_attribute("href")
        q = parse_qs(urlsplit(href).query)
        assert q["athlete"] == [athlete] and q["token"] == [lan_demo.policy.athlete_token(athlete)], href
        assert coach not in href
    # The link opens the athlete's page, which streams that athlete and nothing of the coach's.
    with context.expect_page() as opened:
        page.locator(f'section.card[data-athlete="{ATHLETES[0]}"] a.athlete-view').click()
    phone = opened.value
    phone.wait_for_function(
        "() => document.getElementById('status').textContent === 'connected'", timeout=15_000
    )
    phone.screenshot(path=str(ARTIFACTS / "athlete_page_from_link.png"), full_page=True)
    token = lan_demo.policy.athlete_token(ATHLETES[0])
    statuses = phone.evaluate(
        """async (token) => {
          const headers = { Authorization: "Bearer " + token };
          const get = (path) => fetch(path, { headers }).then((r) => r.status);
          return [await get("/api/athletes"), await get("/athlete?athlete=athlete2"), await get("/health")];
        }""",
        token,
    )
    assert statuses == [401, 401, 401]


ATTACKER_PAGE = """<!doctype html><title>a page of another site</title><script>
window.result = (async () => {
  const target = "http://127.0.0.1:%(port)d";
  // No-cors "simple" requests go out without a preflight: text/plain, and no body at all.
  await fetch(target + "/api/athletes/athlete1/set/start", { method: "POST", mode: "no-cors",
    headers: { "Content-Type": "text/plain" }, body: JSON.stringify({ drill: "squat" }) }).catch(() => null);
  await fetch(target + "/api/athletes/athlete1/pain", { method: "POST", mode: "no-cors",
    body: JSON.stringify({ pain: 9 }) }).catch(() => null);
  const frames = await new Promise((resolve) => {
    const seen = [];
    const ws = new WebSocket("ws://127.0.0.1:%(port)d/ws/v1");
    ws.onmessage = (m) => seen.push(JSON.parse(m.data).type);
    ws.onclose = () => resolve(seen);
    ws.onerror = () => resolve(seen);
    setTimeout(() => resolve(seen), 3000);
  });
  return frames;
})();
</script>"""


@pytest.fixture
def attacker_site(tmp_path: Path, local_demo: ServiceHandle) -> Iterator[str]:
    """Another origin on this machine (another port) serving a page that targets the dashboard."""
    (tmp_path / "index.html").write_text(ATTACKER_PAGE % {"port": local_demo.port})
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    finally:
        server.shutdown()
        server.server_close()


def test_a_page_of_another_site_cannot_change_sets_or_watch(
    local_demo: ServiceHandle, attacker_site: str, context: Any
) -> None:
    page = context.new_page()
    page.goto(attacker_site)
    frames = page.evaluate("() => window.result")
    assert frames == [], frames  # the stream never opened: not even its hello
    s = local_demo.sessions.get(ATHLETES[0])
    assert s.set_id is None and s.last_pain is None
