"""Recommendations and behaviour on the dashboard: the customer 360's lists and the segment view
show what their /api/v1 twins return, for the viewer's customers, in both languages; the
playbook's recommended products on the 360 page; and, in chromium, both pages drawn with no
console error (screenshots in test-artifacts/web/)."""

from __future__ import annotations

import html
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.web.conftest import AGENT, Demo, LiveServer
from tests.web.test_browser import Tab, browser  # noqa: F401 - the chromium fixture
from tests.web.test_pages import sign_in

from tierwise.api.app import create_app
from tierwise.core.settings import Settings
from tierwise.services import behaviour
from tierwise.services import playbook as playbook_service
from tierwise.services.access import Principal
from tierwise.services.dashboard import Dashboard, ListFilter
from tierwise.services.serving import customer_detail, opened_store

ADMIN = Principal(0, "admin", "admin", "admin", None)
API = "/api/v1"
SEGMENT = "/segments/rfm_segment/champions"


@pytest.fixture(scope="module")
def app(demo: Demo) -> Iterator[TestClient]:
    with TestClient(create_app(demo.settings)) as client:
        yield client


def showcase(settings: Settings) -> str:
    """A customer with repeat and new items, one of them "often bought with" another."""
    with opened_store(settings) as store:
        items = Dashboard(settings, store).customers(ADMIN, ListFilter(), page_size=200).items
        for item in items:
            recs = behaviour.customer_recommendations(store, ADMIN, item["customer_id"])
            reasons = {r["reason"] for r in recs.repeat + recs.new}
            if recs.repeat and recs.new and "bought_with" in reasons:
                return str(item["customer_id"])
    raise AssertionError("no customer with every kind of recommendation")


def section(page: str, element_id: str) -> str:
    start = page.index(f'id="{element_id}"')
    return page[start : page.index("</section>", start)]


def products_in(page: str, list_id: str) -> list[str]:
    """Product ids of a recommendation list, in order ([] when the list is not there)."""
    found = re.search(rf'<ol class="recs[^"]*" id="{list_id}">(.*?)</ol>', page, re.S)
    return re.findall(r'<li data-product="([^"]+)"', found.group(1)) if found else []


def figure(page: str, name: str) -> dict[str, Any]:
    found = re.search(rf'<script type="application/json" id="fig-{name}">(.*?)</script>', page)
    assert found, name
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def test_the_360_page_lists_the_customers_recommendations_in_both_languages(
    app: TestClient, demo: Demo
):
    customer = showcase(demo.settings)
    client = sign_in(app, demo, "admin")
    twin = client.get(f"{API}/customers/{customer}/recommendations").json()
    clusters = client.get(f"{API}/behaviour/clusters").json()["clusters"]
    cluster = next(c for c in clusters if c["cluster"] == twin["behaviour_cluster"])
    words = {
        "en": ("Buy again", "You may also like", "Bought together", "often bought with %s",
               (": high", ": low")),
        "zh_CN": ("再次购买", "猜你喜欢", "常一起买", "常与 %s 一起购买", ("偏高", "偏低")),
    }  # fmt: skip
    for lang, (again, also, together, bought_with, high_low) in words.items():
        client.cookies.set("tierwise_lang", lang)
        page = client.get(f"/customers/{customer}").text
        recs = section(page, "recommendations")
        assert again in recs and also in recs
        assert products_in(recs, "buy-again") == [r["product_id"] for r in twin["repeat"]]
        assert products_in(recs, "also-like") == [r["product_id"] for r in twin["new"]]
        for r in twin["repeat"] + twin["new"]:
            if r["reason"] == "bought_with":
                assert f'reason-bought_with">{together}</span>' in recs
                assert html.escape(bought_with % r["related_title"]) in recs
        said = section(page, "recommendations").split("</p>")[0]
        assert f'href="/segments/behaviour_cluster/{cluster["cluster"]}"' in said
        assert sum(said.count(w) for w in high_low) == len(cluster["distinctions"]) > 0
    client.cookies.delete("tierwise_lang")


def test_the_segment_view_shows_what_its_api_twins_return(app: TestClient, demo: Demo):
    client = sign_in(app, demo, "admin")
    page = client.get(SEGMENT)
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    text = page.text
    products = client.get(f"{API}{SEGMENT}/products").json()
    habits = client.get(f"{API}{SEGMENT}/behaviour").json()
    assert products["customers"] > 0 and habits["funnel"]["viewers"] > 0
    assert f"{products['customers']:,} of your customers" in text

    top = section(text, "top-products")
    listed = re.findall(r'<tr data-product="([^"]+)"', top)
    assert listed == [p["product_id"] for p in products["products"]] and len(listed) == 10

    heat = figure(text, "habits")["data"][0]
    assert len(heat["z"]) == 7 and all(len(row) == 24 for row in heat["z"])
    for cell in habits["heatmap"]:
        assert heat["z"][cell["weekday"]][cell["hour"]] == cell["orders"]
    assert sum(map(sum, heat["z"])) == sum(c["orders"] for c in habits["heatmap"]) > 0
    categories = figure(text, "categories")["data"][0]
    assert categories["y"] == [c["value"] for c in habits["categories"]]
    assert categories["x"] == pytest.approx([100 * c["order_share"] for c in habits["categories"]])
    channels = figure(text, "channels")["data"][0]["y"]
    assert len(channels) == len(habits["channels"]) and "Mini program" in channels
    funnel = figure(text, "funnel")["data"][0]["x"]
    flow = habits["funnel"]
    assert funnel == [flow["viewers"], flow["carters"], flow["buyers"]]

    rules = section(text, "association-rules")
    shown = re.findall(r'rec-meta">([^<]+)</span></td><td>[^<]*<span class="rec-meta">([^<]+)<',
                       rules)  # fmt: skip
    expected = [
        (r["antecedent"], r["consequent"])
        for p in products["products"]
        for r in client.get(
            f"{API}/association-rules", params={"product_id": p["product_id"], "limit": 3}
        ).json()["rules"]
    ]
    assert shown == expected and expected

    clusters = client.get(f"{API}/behaviour/clusters").json()["clusters"]
    cards = re.findall(r'data-cluster="([^"]+)"', section(text, "behaviour-clusters"))
    assert cards == [c["cluster"] for c in clusters] and len(cards) >= 2

    evaluation = client.get(f"{API}/recommendations/evaluation").json()
    table = section(text, "rec-evaluation")
    rows = re.findall(r'<tr class="([^"]*)" data-model="(\w+)" data-kind="(\w+)">', table)
    assert {(m, k) for _, m, k in rows} == {(s["model"], s["kind"]) for s in evaluation["scores"]}
    chosen = {k: m for c, m, k in rows if "chosen" in c}
    assert chosen == evaluation["chosen"] and set(chosen) == {"repeat", "new"}
    assert table.count(">baseline</span>") == 6  # buy-again and both popularities, both kinds

    client.cookies.set("tierwise_lang", "zh_CN")
    chinese = client.get(SEGMENT).text
    assert "冠军客户" in chinese and "下单时间" in chinese and "推荐效果评估" in chinese
    assert "小程序" in figure(chinese, "channels")["data"][0]["y"]
    client.cookies.delete("tierwise_lang")


def test_a_segment_view_counts_only_the_viewers_customers(app: TestClient, demo: Demo):
    admin = sign_in(app, demo, "admin")
    everyone = admin.get(f"{API}{SEGMENT}/products").json()["customers"]
    for username in ("boss", AGENT):
        client = sign_in(app, demo, username)
        twin = client.get(f"{API}{SEGMENT}/products").json()
        habits = client.get(f"{API}{SEGMENT}/behaviour").json()
        assert 0 < twin["customers"] < everyone, username
        text = client.get(SEGMENT).text
        assert f"{twin['customers']:,} of your customers" in text
        listed = re.findall(r'<tr data-product="([^"]+)"', section(text, "top-products"))
        assert listed == [p["product_id"] for p in twin["products"]]
        heat = figure(text, "habits")["data"][0]["z"]
        assert sum(map(sum, heat)) == sum(c["orders"] for c in habits["heatmap"])


def test_the_segments_page_links_each_segment_view_and_bad_ones_are_refused(
    app: TestClient, demo: Demo
):
    assert app.get(SEGMENT, follow_redirects=False).status_code == 303
    client = sign_in(app, demo, "admin")
    links = section(client.get("/segments").text, "segment-views")
    segments = client.get(f"{API}/dashboard/segments").json()["dimensions"]["rfm_segment"]
    for bucket in segments:
        if bucket["key"] and bucket["customers"]:
            assert f'href="/segments/rfm_segment/{bucket["key"]}"' in links
    for cluster in client.get(f"{API}/behaviour/clusters").json()["clusters"]:
        assert f'href="/segments/behaviour_cluster/{cluster["cluster"]}"' in links
        view = client.get(f"/segments/behaviour_cluster/{cluster['cluster']}")
        assert view.status_code == 200
        assert f'data-cluster="{cluster["cluster"]}"' in section(view.text, "behaviour-clusters")
        assert re.search(rf'cluster-card current" data-cluster="{cluster["cluster"]}"', view.text)
        assert f"{cluster['customers']:,} of your customers" in view.text
    assert client.get("/segments/customer_id/x").status_code == 404
    assert client.get("/segments/rfm_segment/%01x").status_code == 400
    nobody = client.get("/segments/rfm_segment/no_such_segment")
    assert nobody.status_code == 200 and "None of your customers is in this segment." in nobody.text


def test_the_playbooks_recommended_products_show_on_the_360_page(demo: Demo, tmp_path: Path):
    """On a copy of the demo: applying the playbook changes the published profiles."""
    root = tmp_path / "copy"
    shutil.copytree(demo.settings.root, root, ignore=shutil.ignore_patterns("*.lock"))
    settings = Settings.load(root / "tierwise.toml")
    with opened_store(settings) as store:
        pb, _ = playbook_service.apply_configured(settings, store, ADMIN)
        items = Dashboard(settings, store).customers(ADMIN, ListFilter(), page_size=200).items
        profiles = [customer_detail(store, ADMIN, i["customer_id"]).profile for i in items]
    asked = [p for p in profiles if p["playbook"]["recommend_products"]]
    not_asked = [p for p in profiles if not p["playbook"]["recommend_products"]]
    assert asked and not_asked
    with TestClient(create_app(settings)) as served:
        client = sign_in(served, demo, "admin")
        for profile in (asked[0], not_asked[0]):
            page = client.get(f"/customers/{profile['customer_id']}").text
            kept = profile["playbook"]
            assert f"<dd>{kept['rule']}</dd>" in section(page, "playbook")
            expected = (profile["recommended_product_ids"] or "").split(";")
            assert products_in(page, "playbook-products") == (
                expected if kept["recommend_products"] else []
            )
    assert len(products_in(page, "buy-again")) > 0  # the lists stay, with or without the rule
    assert pb.rule(asked[0]["playbook"]["rule"]).recommend_products


@pytest.mark.browser
def test_recommendations_and_a_segment_view_in_chromium(
    browser: Any,  # noqa: F811 - the fixture imported above
    live: LiveServer,
    demo: Demo,
):
    customer = showcase(demo.settings)
    tab = Tab(browser, live.url)
    tab.sign_in("admin", demo.passwords["admin"])
    page = tab.open(f"/customers/{customer}")
    assert page.locator("#buy-again li").count() > 0
    assert page.locator("#also-like li").count() > 0
    assert page.locator("#recommendations .related").first.is_visible()
    assert page.locator("#behaviour-cluster a.cluster").is_visible()
    tab.shot("en-customer-recommendations")

    tab.open("/segments")
    page.click("#segment-views a[href='/segments/rfm_segment/champions']")
    page.wait_for_url(re.compile(r"/segments/rfm_segment/champions$"))
    tab.drawn()
    for name in ("habits", "categories", "channels", "funnel"):
        assert page.locator(f"#chart-{name} .main-svg").count() >= 1, name
    drawn = page.evaluate("document.getElementById('chart-habits').data[0].z")
    with opened_store(demo.settings) as store:
        habits = behaviour.segment_behaviour(
            demo.settings, store, ADMIN, "rfm_segment", "champions"
        )
    assert sum(map(sum, drawn)) == sum(c["orders"] for c in habits.heatmap) > 0
    assert page.locator("#chart-habits .heatmaplayer image, #chart-habits .hm").count() >= 1
    assert page.locator("#rec-evaluation tr.chosen").count() == 2
    tab.shot("en-segment-view")

    page.click("header .langs a[lang='zh-CN']")
    tab.drawn()
    assert page.get_by_text("下单时间", exact=True).is_visible()
    tab.shot("zh_CN-segment-view")
    tab.open(f"/customers/{customer}")
    assert page.get_by_text("猜你喜欢", exact=True).is_visible()
    tab.shot("zh_CN-customer-recommendations")
    tab.close()
