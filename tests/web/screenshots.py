"""The README's dashboard screenshots, made by the project itself:

    .venv/bin/python -m tests.web.screenshots            # writes docs/screenshots/*.png

Generates the browser tests' demo data (the real pipeline on 1,500 generated customers, two
runs), serves the dashboard on a free loopback port and photographs a few pages in chromium.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright
from tests.web.conftest import LiveServer, build_demo

ROOT = Path(__file__).resolve().parents[2]
ALL_DRAWN = """() => [...document.querySelectorAll('[data-figure]')]
    .every(e => e.getAttribute('data-drawn') === 'true')"""
SHOTS = (
    ("overview", "/", 1500),
    ("segments", "/segments", 1000),
    ("lifecycle", "/lifecycle", 1100),
)
"""(file name, page, height in pixels of the part photographed)."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    ap.add_argument("--lang", default="en", choices=("en", "zh_CN"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tierwise-shots-") as tmp:
        demo = build_demo(Path(tmp))
        with LiveServer(demo.settings) as live, sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.add_cookies([{"name": "tierwise_lang", "value": args.lang, "url": live.url}])
            page = context.new_page()
            page.goto(live.url + "/login")
            page.fill("input[name=username]", "analyst")  # contact data shows masked
            page.fill("input[name=password]", demo.passwords["analyst"])
            page.click("form button[type=submit]")
            page.wait_for_url(live.url + "/")
            for name, path, height in SHOTS:
                page.goto(live.url + path)
                page.wait_for_function(ALL_DRAWN)
                target = args.out / f"{name}{'' if args.lang == 'en' else '-' + args.lang}.png"
                page.screenshot(
                    path=str(target), full_page=True,
                    clip={"x": 0, "y": 0, "width": 1280, "height": height},
                )  # fmt: skip
                print("wrote", target.relative_to(ROOT))
            browser.close()


if __name__ == "__main__":
    main()
