"""The ops console in headless Debian chromium against the real API: sign-in, acknowledging and
silencing alerts, recording a pick and approving a requisition at a desktop and a phone width,
the 403 message of a viewer, the Chinese switch, live alert changes, and /docs and /redoc with
no internet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Request, Route, expect

from core import db
from core.alerts import AlertStores
from rules.lifecycle import AlertLifecycle
from tests.alertutil import condition
from tests.authutil import bearer
from tests.browser.conftest import SEED_MS, Console

WIDTHS = {"desktop": (1280, 800), "phone": (390, 844)}

# Every laid-out element's box, against the viewport: at a phone width nothing may stick out
# (that is what makes a page scroll sideways).
LAYOUT = """() => {
  const width = document.documentElement.clientWidth;
  const outside = [];
  for (const el of document.querySelectorAll("body *")) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) continue;
    if (box.right > width + 0.5 || box.left < -0.5) {
      outside.push(`${el.tagName}#${el.id}.${el.className} ${box.left}..${box.right}`);
    }
  }
  const buttons = [...document.querySelectorAll("button")].filter((b) => b.offsetParent !== null)
    .map((b) => { const box = b.getBoundingClientRect();
      return {text: b.textContent.trim(), left: box.left, right: box.right, height: box.height}; });
  return {width, scrollWidth: document.documentElement.scrollWidth, outside, buttons};
}"""


def check_layout(page: Page, shots: Path, name: str) -> None:
    """Nothing wider than the viewport, every shown button inside it and tall enough to tap;
    a full-page screenshot under the test's tmp dir."""
    layout: dict[str, Any] = page.evaluate(LAYOUT)
    width = page.viewport_size["width"] if page.viewport_size else 0
    assert layout["width"] == width
    assert layout["scrollWidth"] <= width, f"{name}: the page scrolls sideways"
    assert layout["outside"] == [], f"{name}: wider than {width} px"
    for button in layout["buttons"]:
        assert button["left"] >= 0, f"{name}: {button} off-screen"
        assert button["right"] <= width, f"{name}: {button} off-screen"
        assert button["height"] >= 32, f"{name}: {button} too small to tap"
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


def sign_in(page: Page, console: Console, role: str, name: str) -> None:
    page.goto(console.url + "/console")
    page.fill("#username", name)
    page.fill("#password", console.passwords[role])
    page.click("#login button[type=submit]")
    expect(page.locator("#me")).to_contain_text(name)
    expect(page.locator("#login")).to_be_hidden()


@pytest.fixture(params=list(WIDTHS))
def width(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def page(browser: Browser, width: str, console: Console) -> Iterator[Page]:
    # Made after the console's server and closed before it stops: a page left open would
    # reconnect its event stream to a server shutting down, leaving an accepted socket behind.
    del console
    w, h = WIDTHS[width]
    context = browser.new_context(viewport={"width": w, "height": h}, locale="en-GB")
    try:
        yield context.new_page()
    finally:
        context.close()


def test_an_operator_acks_silences_and_records_a_pick(
    page: Page, console: Console, width: str, tmp_path: Path
) -> None:
    sign_in(page, console, "operator", "li.wei")
    expect(page.locator("#sum-alerts")).to_have_text("2")
    expect(page.locator('[data-severity="critical"]')).to_have_text("1")
    expect(page.locator("#sum-stockouts")).to_have_text("1")  # milk: a lot, nothing on hand
    expect(page.locator("#sum-below-min")).to_have_text("1")  # tea: 8 of at least 20
    expect(page.locator("#sum-awaiting")).to_have_text("1")
    check_layout(page, tmp_path, f"summary-{width}")

    page.click('#tabs [data-tab="alerts"]')
    cold = page.locator('tr[data-alert="1"]')
    expect(cold).to_contain_text("Cold room 1 above 8 °C")
    expect(cold).to_contain_text("unassigned")
    check_layout(page, tmp_path, f"alerts-{width}")
    cold.locator("[data-ack]").click()
    expect(page.locator("#notice")).to_have_text("Alert #1 acknowledged.")
    expect(cold).to_contain_text("acknowledged by li.wei")
    expect(cold.locator("[data-ack]")).to_have_count(0)
    acked = console.get("/alerts/1")
    assert isinstance(acked, dict)
    assert acked["acked_by"] == "li.wei"

    page.locator('tr[data-alert="2"] [data-silence]').click()
    sheet = page.locator("#sheet")
    expect(sheet).to_be_visible()
    expect(sheet).to_contain_text("Silence sensor_offline at wh1/dry")
    expect(page.locator("#alert-timeline")).to_contain_text("raised")
    check_layout(page, tmp_path, f"silence-{width}")
    page.select_option("#silence-duration", "14400")
    page.fill("#silence-reason", "shelf 7 rewired")
    page.click("#silence-form button[type=submit]")
    expect(sheet).to_be_hidden()
    expect(page.locator("#notice")).to_contain_text("Silenced until")
    silences = console.get("/alerts/silences")
    assert isinstance(silences, list)
    made = [s for s in silences if s["reason"] == "shelf 7 rewired"]
    assert len(made) == 1
    assert (made[0]["site"], made[0]["zone"], made[0]["type"]) == ("wh1", "dry", "sensor_offline")
    assert made[0]["ends_at"] - made[0]["starts_at"] == 4 * 3_600_000
    assert made[0]["created_by"] == "li.wei"
    listed = page.locator(f'#silences-list tr[data-silence-row="{made[0]["id"]}"]')
    expect(listed).to_contain_text("shelf 7 rewired")
    expect(listed).to_contain_text("wh1 / dry / sensor_offline")
    listed.locator("[data-unsilence]").click()
    expect(page.locator("#notice")).to_have_text(f"Silence #{made[0]['id']} ended.")
    expect(listed).to_have_count(0)

    page.click('#tabs [data-tab="stock"]')
    tea = page.locator("#stock tbody tr", has_text="TEA-GREEN")
    expect(tea).to_contain_text("below min")
    expect(page.locator("#stock tbody tr", has_text="MILK-1L")).to_contain_text("out of stock")
    check_layout(page, tmp_path, f"stock-{width}")
    tea.locator("[data-pick]").click()
    expect(page.locator("#pick-sku")).to_have_value("TEA-GREEN")
    expect(page.locator("#pick-site")).to_have_value("wh1")
    page.fill("#pick-qty", "3")
    page.click("#pick-form button[type=submit]")
    expect(page.locator("#notice")).to_have_text("Pick recorded: 3 × TEA-GREEN at wh1.")
    expect(page.locator("#picks tbody")).to_contain_text("TEA-GREEN")
    check_layout(page, tmp_path, f"picks-{width}")
    picks = console.get("/inventory/picks")
    assert isinstance(picks, list)
    assert [(p["site"], p["sku"], p["qty"], p["recorded_by"]) for p in picks] == [
        ("wh1", "TEA-GREEN", 3.0, "li.wei")
    ]

    page.click('#tabs [data-tab="lots"]')
    tea_lot = page.locator("#lots tbody tr", has_text="T-2510")
    expect(tea_lot).to_contain_text("B-03-01")
    expect(tea_lot).to_contain_text("06/12/2025")  # best before: the seed's day + 5
    check_layout(page, tmp_path, f"lots-{width}")


def test_an_approver_approves_a_requisition(
    page: Page, console: Console, width: str, tmp_path: Path
) -> None:
    sign_in(page, console, "approver", "chen.jie")
    page.click('#tabs [data-tab="requisitions"]')
    row = page.locator('tr[data-requisition="1"]')
    expect(row).to_contain_text("awaiting approval")
    expect(row).to_contain_text("7,200 CNY")
    expect(row).to_contain_text("zhao.min")
    check_layout(page, tmp_path, f"requisitions-{width}")
    row.locator("[data-approve]").click()
    expect(page.locator("#notice")).to_have_text("Requisition #1 is approved now.")
    expect(row).to_have_count(0)  # no longer awaiting approval
    approved = console.get("/requisitions/1")
    assert isinstance(approved, dict)
    assert approved["state"] == "approved"
    assert [a["approver"] for a in approved["approvals"]] == ["chen.jie"]

    suggestion = page.locator('#suggestions-list tr[data-suggestion="1"]')
    expect(suggestion).to_contain_text("suggested")
    suggestion.locator('[data-step="ordered"]').click()
    expect(page.locator("#notice")).to_have_text("Suggestion #1 is ordered now.")
    expect(suggestion.locator('[data-step="received"]')).to_be_visible()
    ordered = console.get("/inventory/suggestions/1")
    assert isinstance(ordered, dict)
    assert ordered["state"] == "ordered"


@pytest.mark.parametrize("width", ["phone"])
def test_a_viewer_is_told_acknowledging_is_not_theirs(
    page: Page, console: Console, tmp_path: Path
) -> None:
    sign_in(page, console, "viewer", "wang.fang")
    page.click('#tabs [data-tab="alerts"]')
    page.locator('tr[data-alert="1"] [data-ack]').click()
    notice = page.locator("#notice")
    expect(notice).to_contain_text("Not allowed: your role (viewer) may not do this.")
    expect(notice).to_have_class("error")
    page.screenshot(path=str(tmp_path / "viewer-403.png"))
    alert = console.get("/alerts/1")
    assert isinstance(alert, dict)
    assert alert["acked_by"] is None

    page.click("#lang")
    page.locator('tr[data-alert="1"] [data-ack]').click()
    expect(notice).to_contain_text("无权操作：您的角色（查看者）不能执行此操作。")


@pytest.mark.parametrize("width", ["phone"])
def test_the_language_switch_shows_chinese_and_is_remembered(
    page: Page, console: Console, tmp_path: Path
) -> None:
    sign_in(page, console, "operator", "li.wei")
    expect(page.locator('#tabs [data-tab="alerts"]')).to_have_text("Alerts")
    page.click("#lang")
    expect(page.locator('#tabs [data-tab="alerts"]')).to_have_text("告警")
    expect(page.locator("#lang")).to_have_text("English")
    expect(page.locator("#summary h3").first).to_have_text("未关闭告警")
    assert page.title() == "StockSense 运维控制台"
    page.click('#tabs [data-tab="alerts"]')
    expect(page.locator('tr[data-alert="1"] [data-ack]')).to_have_text("确认")
    expect(page.locator('tr[data-alert="1"]')).to_contain_text("严重")
    check_layout(page, tmp_path, "alerts-zh")

    page.reload()
    expect(page.locator('#tabs [data-tab="summary"]')).to_have_text("概览")
    page.click("#lang")
    expect(page.locator('#tabs [data-tab="summary"]')).to_have_text("Summary")


def test_a_chinese_browser_opens_the_console_in_chinese(browser: Browser, console: Console) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN")
    try:
        page = context.new_page()
        page.goto(console.url + "/console")
        expect(page.locator("#login h2")).to_have_text("登录")
        assert page.evaluate("document.documentElement.dataset.lang") == "zh"  # Accept-Language
        page.fill("#username", "li.wei")
        page.fill("#password", "wrong")
        page.click("#login button[type=submit]")
        expect(page.locator("#login-error")).to_have_text("用户名或密码错误。")
    finally:
        context.close()


@pytest.mark.parametrize("width", ["desktop"])
def test_alert_changes_arrive_without_a_reload(page: Page, console: Console) -> None:
    sign_in(page, console, "operator", "li.wei")
    expect(page.locator("#live")).to_have_text("Live")
    page.click('#tabs [data-tab="alerts"]')
    expect(page.locator('tr[data-alert="2"]')).to_contain_text("active")

    # Someone else acknowledges alert 2, and a rule raises a new alert: both show up.
    other = bearer(console.settings, "operator", "zhou.lan")
    console.post("/alerts/2/ack", {}, other)
    expect(page.locator('tr[data-alert="2"]')).to_contain_text("acknowledged by zhou.lan")
    conn = db.connect(console.settings.database)
    try:
        AlertLifecycle(AlertStores.over(conn, []).state).report(
            condition("wh1/door-3", at_ms=SEED_MS + 120_000, type="door_open", severity="minor",
                      title="Dock door 3 open", message="Open for 15 min")
        )  # fmt: skip
    finally:
        conn.close()
    expect(page.locator('tr[data-alert="3"]')).to_contain_text("Dock door 3 open")

    page.click('#tabs [data-tab="summary"]')
    expect(page.locator("#sum-alerts")).to_have_text("3")


def test_docs_and_redoc_render_with_no_internet(browser: Browser, console: Console) -> None:
    host = urlsplit(console.url).netloc
    elsewhere: list[str] = []

    def only_local(route: Route, request: Request) -> None:
        if urlsplit(request.url).netloc == host:
            route.continue_()
        else:
            elsewhere.append(request.url)
            route.abort("internetdisconnected")

    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        page.route("**/*", only_local)
        page.goto(console.url + "/docs")
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("StockSense API")
        expect(page.locator(".swagger-ui .opblock-tag").first).to_be_visible()
        page.goto(console.url + "/redoc")
        expect(page.locator("h1", has_text="StockSense API")).to_be_visible(timeout=20_000)
        expect(page.get_by_text("/alerts/{alert_id}/ack").first).to_be_attached()
    finally:
        context.close()
    assert elsewhere == []
