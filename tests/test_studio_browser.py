"""The studio in a real browser: `ganforge serve` started as a command on a free loopback
port, Debian's Chromium driven headless by Playwright. The page is opened, a mask is painted
with the mouse (and a box dragged) on the canvas, an edit is run and its result checked pixel
by pixel against what was painted; a grid is sampled; nothing is fetched from another host.
"""
from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from test_serve_api import build_studio_runs

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update"]
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed "
                                 "(apt-get install chromium); the browser tests drive it")]


@pytest.fixture(scope="session")
def run_dirs(tmp_path_factory) -> dict[str, Path]:
    return build_studio_runs(tmp_path_factory.getbasetemp() / "studio-runs")


@pytest.fixture(scope="module")
def server(run_dirs):
    """`ganforge serve` on 127.0.0.1, port 0 (a free one): its URL from the line it prints."""
    command = [sys.executable, "-m", "ganforge", "serve", *(str(run_dirs[n]) for n in ("digits", "inpaint")),
               "--port", "0", "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    try:
        line = lines.get(timeout=90)
    except queue.Empty:
        process.kill()
        pytest.fail(f"ganforge serve printed nothing: {process.stderr.read()}")
    found = re.search(r"http://127\.0\.0\.1:\d+/", line)
    assert found, line
    yield found.group(0)
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    """A fresh page that records every request and every script error."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    opened = context.new_page()
    opened.requests, opened.errors = [], []
    opened.on("request", lambda request: opened.requests.append(request.url))
    opened.on("pageerror", lambda error: opened.errors.append(str(error)))
    opened.on("console", lambda message: message.type == "error" and opened.errors.append(message.text))
    opened.goto(server)
    yield opened
    foreign = [url for url in opened.requests if not url.startswith((server, "blob:", "data:"))]
    assert not foreign, foreign
    context.close()


def wait_until(page, expression: str, timeout: float = 15.0):
    """Poll a JavaScript expression (the page's Content-Security-Policy forbids the string
    evaluation that Playwright's wait_for_function uses)."""
    end = time.monotonic() + timeout
    while not (value := page.evaluate(expression)):
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {expression}; status: {page.inner_text('#status')!r}")
        time.sleep(0.05)
    return value


def shown_image(page, element: str) -> np.ndarray:
    """The gray pixels an <img> shows (drawn on a canvas and read back)."""
    width, height, data = page.evaluate(f"""() => {{
        const img = document.getElementById('{element}');
        const canvas = document.createElement('canvas');
        canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
        const context = canvas.getContext('2d');
        context.drawImage(img, 0, 0);
        const rgba = context.getImageData(0, 0, canvas.width, canvas.height).data;
        return [canvas.width, canvas.height, Array.from(rgba)];
    }}""")
    return np.asarray(data, np.uint8).reshape(height, width, 4)[..., 0]


def drag(page, points: list[tuple[float, float]]):
    """Press at the first point of the overlay canvas (fractions of its size), move through
    the others, release."""
    box = page.locator("#overlay").bounding_box()
    at = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*at[0])
    page.mouse.down()
    for x, y in at[1:]:
        page.mouse.move(x, y, steps=6)
    page.mouse.up()


def run_edit(page) -> np.ndarray:
    """Click Run and wait for a new result image; its pixels."""
    before = page.evaluate("document.getElementById('result').src")
    page.click("#edit-button")
    wait_until(page, f"(() => {{ const img = document.getElementById('result');"
                     f" return img.src !== {before!r} && img.complete && img.naturalWidth > 0; }})()")
    assert page.inner_text("#status").startswith("Done"), page.inner_text("#status")
    return shown_image(page, "result")


def test_paint_a_mask_and_inpaint(page, tmp_path):
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (24, 40), dtype=np.uint8)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    page.select_option("#run-select", "inpaint")
    wait_until(page, "!document.getElementById('edit-panel').hidden")

    # Running before painting says what is missing.
    page.set_input_files("#image-input", str(tmp_path / "photo.png"))
    wait_until(page, "!document.getElementById('edit-button').disabled")
    page.click("#edit-button")
    wait_until(page, "document.getElementById('status').textContent.includes('Paint the hole')")

    # A brush stroke across the middle of the left half.
    drag(page, [(0.1, 0.5), (0.25, 0.5), (0.4, 0.5)])
    result = run_edit(page)
    assert result.shape == photo.shape
    changed = result != photo
    rows, cols = np.nonzero(changed)
    assert changed.any(), "the painted hole was not filled"
    assert cols.max() < 0.5 * 40 and rows.min() > 0.2 * 24 and rows.max() < 0.8 * 24  # only where painted

    # A box in the bottom-right corner, after clearing the stroke.
    page.click("#clear-mask")
    page.check("input[value=box]")
    drag(page, [(0.6, 0.6), (0.95, 0.95)])
    rows, cols = np.nonzero(run_edit(page) != photo)
    assert len(rows) and cols.min() >= 0.55 * 40 and rows.min() >= 0.55 * 24
    assert not page.errors, page.errors


def test_sample_a_grid_and_see_the_evaluation(page):
    page.select_option("#run-select", "digits")
    wait_until(page, "!document.getElementById('generate-panel').hidden")
    page.fill("#sample-n", "4")
    page.fill("#sample-seed", "7")
    page.click("#sample-button")
    width = wait_until(page, "document.getElementById('grid').naturalWidth")
    assert width == 2 * 16 + 3 * 2
    assert shown_image(page, "grid").std() > 0
    page.select_option("#sample-keep-best", "0.8")        # the best 4 of 5 by the run's D
    with page.expect_response(lambda response: "keep_best=0.8" in response.url) as answer:
        page.click("#sample-button")
    assert answer.value.status == 200
    page.click("#interpolate-button")
    assert wait_until(page, "document.getElementById('strip').naturalWidth") == 8 * 16 + 9 * 2
    # eval.json as a table: a column per group (model, floor), a row per metric; setup folded.
    table = page.evaluate("[...document.querySelectorAll('#eval-table tr')].map(r => [...r.cells].map(c => c.textContent))")
    assert table == [["", "model", "floor"], ["fid", "12.5", "0.5"], ["recall", "0.25", "0.75"]]
    assert page.evaluate("document.querySelector('#setup-table').textContent") == "images100"
    assert not page.errors, page.errors
