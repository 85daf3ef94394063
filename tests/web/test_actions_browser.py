"""The action pages in Debian's chromium, driven by Playwright: an agent records call outcomes on
the tasks board and sees the tasks move to the closed column, a campaign's effect chart is drawn
(ended and interim), and the complaints and playbook pages draw, in English and Chinese, without
console errors.

Screenshots go to test-artifacts/web/ (not committed)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from tests.conftest import unavailable
from tests.web.conftest import AGENT, ARTIFACTS, Demo, LiveServer
from tests.web.test_actions_pages import ActionWorld, build_action_world
from tests.web.test_browser import CHROMIUM, Tab

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists():
        unavailable("browser", f"{CHROMIUM} is missing")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("browser", "playwright is not installed")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def world(demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> ActionWorld:
    return build_action_world(demo, tmp_path_factory.mktemp("action-browser"))


@pytest.fixture(scope="module")
def served(world: ActionWorld) -> Iterator[LiveServer]:
    with LiveServer(world.settings) as server:
        yield server


@pytest.fixture
def tab(chromium: Any, served: LiveServer) -> Iterator[Tab]:
    t = Tab(chromium, served.url)
    yield t
    t.close()


def to_chinese(tab: Tab) -> None:
    tab.page.click("header .langs a[lang='zh-CN']")
    tab.drawn()
    assert tab.page.locator("html").get_attribute("lang") == "zh-CN"


def record_outcome(tab: Tab, outcome: str, note: str) -> str:
    """Record `outcome` on the first open task of the board; the task's id."""
    page = tab.page
    card = page.locator("[data-column='open'] .task-card").first
    task_id = card.get_attribute("data-task")
    assert task_id
    card.locator("details.outcome-form summary").click()
    card.locator("select[name=outcome]").select_option(outcome)
    card.locator("textarea[name=note]").fill(note)
    card.locator("button[type=submit]").click()
    page.wait_for_load_state("load")
    return task_id


def test_an_agent_records_outcomes_and_sees_the_tasks_closed(tab: Tab, world: ActionWorld):
    tab.sign_in(AGENT, world.demo.passwords[AGENT])
    page = tab.open("/tasks")
    assert page.locator("header nav a[href='/tasks']").get_attribute("class") == "active"
    assert page.locator("header nav a[href='/campaigns']").count() == 0
    before = page.locator("[data-column='closed'] .task-card").count()
    overdue = page.locator(".task-card.overdue").first
    assert overdue.locator(".overdue-badge").inner_text() == "Overdue"
    assert overdue.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(254, 242, 242)"
    tab.shot("en-tasks-board")
    task_id = record_outcome(tab, "won_back", "Ordered again after the call")
    assert page.url.endswith("/tasks")
    closed = page.locator(f"[data-column='closed'] #task-{task_id}")
    assert closed.locator(".badge.outcome-won_back").inner_text() == "Won back"
    assert closed.locator("dd.note").inner_text() == "Ordered again after the call"
    assert page.locator(f"[data-column='open'] #task-{task_id}").count() == 0
    assert page.locator("[data-column='closed'] .task-card").count() == before + 1
    tab.shot("en-tasks-after-outcome")
    to_chinese(tab)
    assert page.locator("[data-column='open'] h2").inner_text().startswith("待处理")
    chinese_id = record_outcome(tab, "not_reached", "电话无人接听，明天再打")
    closed = page.locator(f"[data-column='closed'] #task-{chinese_id}")
    assert closed.locator(".badge.outcome-not_reached").inner_text() == "未联系上"
    assert closed.locator("dd.note").inner_text() == "电话无人接听，明天再打"
    tab.shot("zh_CN-tasks-after-outcome")
    closed.locator(".task-customer").click()  # each task leads to its customer's 360
    page.wait_for_url(f"{tab.base}/customers/*")
    tab.drawn()
    assert page.locator("h1 small").count() == 1


def test_a_campaign_draws_its_effect_chart_in_both_languages(tab: Tab, world: ActionWorld):
    tab.sign_in("analyst", world.demo.passwords["analyst"])
    page = tab.open("/campaigns")
    page.click(f"tr[data-campaign='{world.ended}'] a")
    page.wait_for_url(f"{tab.base}/campaigns/{world.ended}")
    tab.drawn()
    chart = page.locator("#chart-effect")
    assert chart.get_attribute("data-drawn") == "true"
    assert chart.locator(".main-svg").count() >= 1
    assert chart.locator("g.bars path").count() == 6  # treated and control, three outcomes
    assert chart.locator("g.errorbar").count() == 3  # each difference with its interval
    assert page.locator("#final").is_visible() and page.locator("#interim").count() == 0
    tab.shot("en-campaign-effect")
    page.goto(f"{tab.base}/campaigns/{world.running}")
    tab.drawn()
    assert page.locator("#interim .badge").inner_text() == "interim"
    assert page.locator("#chart-effect").get_attribute("data-drawn") == "true"
    to_chinese(tab)
    assert page.locator("#interim .badge").inner_text() == "中期"
    assert page.get_by_text("实验组与对照组对比", exact=True).is_visible()
    assert "留存率" in (page.locator("#chart-effect").text_content() or "")
    tab.shot("zh_CN-campaign-interim")
    tab.open(f"/campaigns/{world.ended}")
    tab.shot("zh_CN-campaign-effect")


def test_complaints_and_playbook_pages_draw_in_both_languages(tab: Tab, world: ActionWorld):
    tab.sign_in("boss", world.demo.passwords["boss"])
    page = tab.open("/complaints")
    for name in ("feedback-segments", "feedback-months"):
        assert page.locator(f"#chart-{name} .main-svg").count() >= 1
    assert page.locator("table.complaints tbody tr").count() > 0
    tab.shot("en-complaints")
    page = tab.open("/playbook")
    page.locator("tr[data-rule='vip_care'] a.rule-customers").click()
    page.wait_for_url(re.compile(r"/playbook\?rule=vip_care#customers$"))
    tab.drawn()
    assert page.locator("#customers table tbody tr td a").count() > 0
    tab.shot("en-playbook-rule")
    to_chinese(tab)
    assert page.get_by_text("规则 vip_care 的客户", exact=False).first.is_visible()
    page = tab.open("/complaints")
    assert page.get_by_text("各分群的 NPS 与 CSAT").is_visible()
    tab.shot("zh_CN-complaints")
