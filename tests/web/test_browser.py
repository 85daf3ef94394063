"""The dashboard in Debian's chromium, driven by Playwright: sign in, every page in both
languages without console errors, a heatmap cell through to a customer 360 page, a run started
and finished from the Runs page, an agent's scoped and masked view, and the report offline.

Screenshots of every page go to test-artifacts/web/ (not committed)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import unavailable
from tests.web.conftest import AGENT, ARTIFACTS, OTHER_AGENT, Demo, LiveServer

from tierwise.core.settings import Settings
from tierwise.services.access import Principal
from tierwise.services.dashboard import Dashboard, ListFilter
from tierwise.services.report import CLI_VIEWER, report_data
from tierwise.services.serving import opened_store
from tierwise.web.report import render_report

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
PAGES = {
    "overview": ("/", "Revenue concentration (Pareto)", "收入集中度（帕累托）"),
    "segments": ("/segments", "RFM grid: recency × frequency", "RFM 网格：最近购买 × 购买频次"),
    "lifecycle": ("/lifecycle", "Stage counts over runs", "各次运行的阶段人数"),
    "value": ("/value", "Most valuable customers at high churn risk", "高流失风险的高价值客户"),
    "customers": ("/customers", "Days since last order", "距上次下单天数"),
    "data": ("/data", "Rejected rows (latest)", "被拒收的行（最近）"),
    "runs": ("/runs", "Run history", "运行历史"),
}
ALL_DRAWN = """() => [...document.querySelectorAll('[data-figure]')]
    .every(e => e.getAttribute('data-drawn') === 'true')"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        unavailable("browser", f"{CHROMIUM} is missing")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("browser", "playwright is not installed")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        chromium.close()


class Tab:
    """A browser page that records console errors and uncaught exceptions."""

    def __init__(self, browser: Any, base: str) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.page = self.context.new_page()
        self.base = base
        self.errors: list[str] = []
        self.page.on(
            "console",
            lambda m: (
                self.errors.append(f"{self.page.url}: {m.text}") if m.type == "error" else None
            ),
        )
        self.page.on("pageerror", lambda e: self.errors.append(f"{self.page.url}: {e}"))

    def open(self, path: str) -> Any:
        self.page.goto(self.base + path)
        return self.drawn()

    def drawn(self) -> Any:
        self.page.wait_for_load_state("load")
        self.page.wait_for_function(ALL_DRAWN, timeout=30_000)
        return self.page

    def sign_in(self, username: str, password: str) -> None:
        self.page.goto(self.base + "/")
        assert "/login" in self.page.url
        self.page.fill("input[name=username]", username)
        self.page.fill("input[name=password]", password)
        self.page.click("form button[type=submit]")
        self.page.wait_for_url(self.base + "/")
        self.drawn()

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()
        assert not self.errors, self.errors


@pytest.fixture
def tab(browser: Any, live: LiveServer) -> Iterator[Tab]:
    t = Tab(browser, live.url)
    yield t
    t.close()


def test_every_page_in_both_languages(tab: Tab, demo: Demo):
    tab.sign_in("admin", demo.passwords["admin"])
    page = tab.page
    assert page.locator("header .role").inner_text() == "Administrator"
    for index, lang in enumerate(("en", "zh_CN")):
        if lang == "zh_CN":
            page.click("header .langs a[lang='zh-CN']")
            tab.drawn()
            assert page.locator("html").get_attribute("lang") == "zh-CN"
            assert page.locator("header .role").inner_text() == "管理员"
        for name, (path, *titles) in PAGES.items():
            tab.open(path)
            assert page.get_by_text(titles[index], exact=True).first.is_visible(), (lang, name)
            charts = page.locator("[data-figure]").count()
            assert page.locator(".chart .main-svg").count() >= charts
            tab.shot(f"{lang}-{name}")
    tab.open("/segments")
    assert page.get_by_text("冠军客户").first.is_visible()  # segment names, in the heatmap too


def test_heatmap_cell_leads_to_a_customer_360(tab: Tab, demo: Demo):
    tab.sign_in("admin", demo.passwords["admin"])
    page = tab.open("/segments")
    grid = page.locator("#chart-rf .nsewdrag").first.bounding_box()
    assert grid
    # y runs R1 (bottom) to R5 (top), x F1 to F5: click the middle of the R5 × F5 cell
    page.mouse.click(grid["x"] + grid["width"] * 0.9, grid["y"] + grid["height"] * 0.1)
    page.wait_for_url(re.compile(r"/customers\?r=5&f=5&segment=champions$"))
    tab.drawn()
    assert page.locator(".chip").inner_text().startswith("R×F cell: R5 F5")
    rows = page.locator("table.customers tbody tr")
    assert rows.count() > 5
    assert set(rows.locator("td:nth-child(4)").all_inner_texts()) == {"Champions"}
    tab.shot("en-segments-cell-list")
    first = rows.first.locator("td a").first
    customer_id = first.inner_text()
    first.click()
    page.wait_for_url(re.compile(rf"/customers/{customer_id}$"))
    tab.drawn()
    assert page.locator("h1 small").inner_text() == customer_id
    assert page.locator("#chart-orders .main-svg").count() >= 1
    reasons = page.locator("td.reason").all_inner_texts()
    assert any(r.startswith("R5 & F4-5") for r in reasons)
    tab.shot("en-customer-360")


def test_an_agent_sees_only_their_customers_masked(tab: Tab, demo: Demo, live: LiveServer):
    other_agent = Principal(0, OTHER_AGENT, OTHER_AGENT, "agent", None)
    with opened_store(demo.settings) as store:
        theirs = Dashboard(demo.settings, store).customers(other_agent, ListFilter()).items[0]
    tab.sign_in(AGENT, demo.passwords[AGENT])
    page = tab.page
    assert page.locator("header .role").inner_text() == "Agent"
    assert page.locator("header nav a[href='/data']").count() == 0
    tab.open("/customers?page_size=200")
    managers = set(page.locator("table.customers tbody td:nth-child(14)").all_inner_texts())
    assert managers == {AGENT}
    phones = [p for p in page.locator("table.customers tbody td:nth-child(3)").all_inner_texts()
              if p != "—"]  # fmt: skip
    # 138****0042 or +86****1629: never more than four digits in a row
    assert phones and all("****" in p and not re.search(r"\d{5}", p) for p in phones)
    tab.shot("agent-customers")
    page.goto(f"{live.url}/customers/{theirs['customer_id']}")
    assert page.locator("h1").inner_text() == "Not found"
    tab.errors.clear()  # the 404 status of that page is logged by the browser, as it should be
    page.goto(f"{live.url}/data")
    assert page.locator("h1").inner_text() == "Not allowed"
    tab.errors.clear()


@pytest.fixture
def own_live(demo: Demo, tmp_path: Path) -> Iterator[LiveServer]:
    """A copy of the demo served on its own: the run started here must not change the
    current run the other tests read."""
    root = tmp_path / "copy"
    shutil.copytree(demo.settings.root, root, ignore=shutil.ignore_patterns("*.lock"))
    with LiveServer(Settings.load(root / "tierwise.toml")) as server:
        yield server


def test_start_a_run_and_see_it_finish(browser: Any, demo: Demo, own_live: LiveServer):
    tab = Tab(browser, own_live.url)
    tab.sign_in("analyst", demo.passwords["analyst"])
    page = tab.open("/runs")
    before = page.locator("#published-runs tr.current td").first.inner_text()
    page.click("#start-run")
    status = page.locator("#run-status")
    status.filter(has_text="Running").wait_for(timeout=30_000)
    page.locator("#run-status.done").wait_for(timeout=240_000)
    run_id = re.search(r"Run (\S+) finished", status.inner_text())
    assert run_id, status.inner_text()
    tab.shot("en-runs-finished")
    page.locator("#run-status a").click()
    tab.drawn()
    current = page.locator("#published-runs tr.current td").first.inner_text()
    assert current.startswith(run_id.group(1)) and not before.startswith(run_id.group(1))
    tab.close()


def test_the_report_opens_offline_and_draws_its_charts(browser: Any, demo: Demo, tmp_path: Path):
    with opened_store(demo.settings) as store:
        data = report_data(Dashboard(demo.settings, store), CLI_VIEWER)
    report = tmp_path / "report.html"
    report.write_text(render_report(data, "en"), encoding="utf-8")
    tab = Tab(browser, "")
    requested: list[str] = []

    def offline(route: Any) -> None:
        if not route.request.url.startswith("file://"):
            requested.append(route.request.url)
        route.abort() if requested and requested[-1] == route.request.url else route.continue_()

    tab.context.route("**/*", offline)
    page = tab.page
    page.goto(report.as_uri())
    tab.drawn()
    charts = page.locator("[data-figure]").count()
    assert charts >= 10 and page.locator(".chart .main-svg").count() >= charts
    assert page.get_by_text("Customer tiering report").first.is_visible()
    assert not requested
    tab.shot("report-offline")
    tab.close()
