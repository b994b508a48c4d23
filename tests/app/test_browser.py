"""Real-browser test of the explorer: Chromium (Playwright) clicks a cell on the deck.gl map.

Starts ``earthvec explore DB`` on a free localhost port, opens it in Debian's
Chromium (``/usr/bin/chromium``; install with ``.ci/install-browser``), clicks the pixel of
a known cell (the map's view state is computed the same way the app computes it), checks
that the similar-places table fills, and saves a screenshot to
``tests/artifacts/explorer_map.png``. Every request that does not go to localhost is
blocked and recorded: the explorer must work offline.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = os.environ.get("EARTHVEC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 1000}  # CSS pixels of the page

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(eurosat_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The explorer serving a copy of the EuroSAT database on localhost."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found; install it with .ci/install-browser (apt chromium)")
    pytest.importorskip("playwright.sync_api", reason="pip install playwright (no browser download)")
    db = tmp_path_factory.mktemp("browser") / "db"
    shutil.copytree(eurosat_db, db)
    port = _free_port()
    log = (tmp_path_factory.mktemp("browser-log") / "streamlit.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli.main", "explore", str(db), "--port", str(port)],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://localhost:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"the explorer did not start (see {log.name})")
            time.sleep(0.5)
        yield url, db
    finally:
        # the server's own process group: nothing may outlive the test
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def _world_px(lat: float, lon: float, zoom: float) -> tuple[float, float]:
    """Web Mercator pixel position at ``zoom`` (deck.gl: 512 px world at zoom 0)."""
    size = 512.0 * 2.0**zoom
    x = (lon + 180.0) / 360.0 * size
    y = (1.0 - math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)) / math.pi) / 2.0 * size
    return x, y


def test_click_a_cell_on_the_map_fills_the_similar_places_table(server: tuple[str, Path]) -> None:
    from playwright.sync_api import sync_playwright

    from app.logic.mapview import fit_view
    from app.logic.rows import load_rows

    url, db = server
    rows = load_rows(db)
    lat, lon = rows.lat[rows.latest], rows.lon[rows.latest]
    view = fit_view(lat, lon)  # the app's initial view of all cells
    px = np.array([_world_px(a, b, view.zoom) for a, b in zip(lat, lon, strict=True)])
    gap = np.sqrt(((px[:, None] - px[None]) ** 2).sum(-1))
    np.fill_diagonal(gap, np.inf)
    target = int(np.argmax(gap.min(axis=1)))  # the cell farthest from any other on screen
    assert gap[target].min() > 12, "no isolated cell to click at this zoom"
    cell_hex = format(int(rows.h3[rows.latest[target]]), "x")
    cx, cy = _world_px(view.latitude, view.longitude, view.zoom)

    external: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": VIEWPORT["width"], "height": VIEWPORT["height"]})

            def route(r: Any) -> None:
                u = r.request.url
                if u.startswith(("http://localhost", "ws://localhost", "data:", "blob:")):
                    r.continue_()
                else:
                    external.append(u)
                    r.abort()

            page.route("**/*", route)
            # a deep link as the server's very first request still gets the app's navigation
            page.goto(f"{url}/label", wait_until="domcontentloaded")
            page.get_by_text("upload seeds) of at least two classes").wait_for(timeout=90_000)
            nav = page.locator('[data-testid="stSidebarNav"]')
            assert "Map & search" in nav.inner_text() and "streamlit app" not in nav.inner_text()

            page.goto(url, wait_until="domcontentloaded")
            page.get_by_text("Click a cell on the map").wait_for(timeout=90_000)
            canvas = page.locator('[data-testid="stDeckGlJsonChart"] canvas').first
            canvas.wait_for(timeout=60_000)
            page.wait_for_timeout(3000)  # basemap image decode and first frames
            box = canvas.bounding_box()
            assert box is not None and box["width"] > 400
            x = box["x"] + box["width"] / 2 + (px[target][0] - cx)
            y = box["y"] + box["height"] / 2 + (px[target][1] - cy)
            assert box["x"] < x < box["x"] + box["width"] and box["y"] < y < box["y"] + box["height"]

            # hover shows the cell's tooltip
            page.mouse.move(x, y)
            tip = page.locator(".deck-tooltip")
            tip.wait_for(state="visible", timeout=10_000)
            assert cell_hex in tip.inner_text() and "valid" in tip.inner_text()

            page.mouse.click(x, y)
            page.get_by_text("Most similar places").wait_for(timeout=60_000)
            page.get_by_text(f"Positives: {cell_hex}").wait_for(timeout=30_000)
            grid = page.locator('[data-testid="stDataFrame"] [role="grid"]').first
            grid.wait_for(state="attached", timeout=30_000)  # glide-grid: a hidden a11y table
            assert grid.get_attribute("aria-rowcount") == "11"  # header + 10 similar places
            page.wait_for_timeout(1500)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shot = ARTIFACTS / "explorer_map.png"
            page.screenshot(path=str(shot))
            map_png = canvas.screenshot()
        finally:
            browser.close()

    assert shot.stat().st_size > 50_000
    # the map is drawn (Blue Marble + cells), not a blank canvas
    from PIL import Image

    img = np.asarray(Image.open(__import__("io").BytesIO(map_png)).convert("RGB"), dtype=float)
    assert img.std() > 20
    assert external == [], f"the explorer tried to reach the internet: {external[:3]}"
