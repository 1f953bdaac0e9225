"""The dashboard as people use it: sign in, charts with data, filters, a contact's Temporal link.

Over HTTP on both stores (sign-in rules, what aggregate pages leave out), then in a real
headless browser: Debian's chromium driven by Selenium through the system chromedriver (the
Makefile's install step installs both; nothing is downloaded at run time).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from pydantic import SecretStr
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from gateway.dashboard_auth import COOKIE, hash_password
from revops.settings import Settings
from store.repo import Store
from tests.gateway_support import serve_gateway
from tests.report_history import build_history

PASSWORD = "correct horse battery"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1800",
)
CHARTS = ("funnel", "stage_time", "attribution", "sla", "journeys", "lists")


@asynccontextmanager
async def dashboard(settings: Settings, store: Store) -> AsyncIterator[str]:
    """The gateway with one dashboard user ("ana") over a store holding the fixed history."""
    build_history(store)
    users = {"ana": SecretStr(hash_password(PASSWORD))}
    configured = settings.model_copy(update={"dashboard_users": users})
    async with serve_gateway(configured, store) as url:
        yield url


async def test_the_dashboard_needs_a_sign_in_and_keeps_people_out_of_aggregates(
    settings: Settings, any_store: Store
) -> None:
    async with (
        dashboard(settings, any_store) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        page = "/dashboard?since=2026-01-01&until=2026-03-31"
        anonymous = await http.get(page)
        assert anonymous.status_code == 303
        assert anonymous.headers["location"].startswith("/dashboard/login?next=")
        wrong = await http.post(
            "/dashboard/login", data={"user": "ana", "password": "nope", "next": page}
        )
        assert wrong.status_code == 401 and "Wrong user name or password" in wrong.text
        stranger = await http.post("/dashboard/login", data={"user": "bob", "password": PASSWORD})
        assert stranger.status_code == 401 and COOKIE not in stranger.cookies
        elsewhere = await http.post(
            "/dashboard/login",
            data={"user": "ana", "password": PASSWORD, "next": "//evil.example/x"},
        )
        assert (elsewhere.status_code, elsewhere.headers["location"]) == (303, "/dashboard")
        shown = await http.get(page)
        assert shown.status_code == 200
        for chart in CHARTS:
            assert f'data-chart="{chart}"' in shown.text
        assert "rp-a" not in shown.text and "@" not in shown.text  # no person on aggregates
        contact = await http.get("/dashboard/contact", params={"q": "rp-b"})
        contact_id = any_store.contact_id_for("rp-b")
        assert contact.status_code == 200
        assert f"/workflows/contact-{contact_id}" in contact.text
        assert (await http.get("/dashboard/contact", params={"q": "nobody"})).status_code == 404
        forged = httpx.Cookies({COOKIE: shown.request.headers["cookie"].split("=", 1)[1] + "0"})
        async with httpx.AsyncClient(base_url=url, cookies=forged) as other:
            assert (await other.get(page)).status_code == 303
        await http.post("/dashboard/logout")
        assert (await http.get(page)).status_code == 303


def _browser() -> webdriver.Chrome:
    assert os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER), (
        "Debian's chromium and chromium-driver are missing: run `make install` as root"
    )
    options = Options()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


def _submit(driver: webdriver.Chrome, selector: str) -> None:
    """Click a form's button and wait for the page it loads."""
    page = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.CSS_SELECTOR, selector).click()
    _loaded(driver, page)


def _loaded(driver: webdriver.Chrome, page: WebElement) -> None:
    """Wait until the old document is gone and the new one has finished loading.

    Chromedriver reports an old node as "Node ... does not belong to the document" (a plain
    WebDriverException) as often as stale, so either counts as gone.
    """
    WebDriverWait(driver, 20).until(lambda _: _gone(page))
    WebDriverWait(driver, 20).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


def _gone(page: WebElement) -> bool:
    try:
        page.is_enabled()
    except WebDriverException:  # StaleElementReferenceException is one
        return True
    return False


def _chart_points(driver: webdriver.Chrome) -> dict[str, int]:
    found = {}
    for chart in CHARTS:
        svg = driver.find_element(By.CSS_SELECTOR, f'#chart-{chart} svg[data-chart="{chart}"]')
        marks = svg.find_elements(By.CSS_SELECTOR, "rect.bar, polyline.line")
        assert svg.is_displayed() and marks, chart
        found[chart] = int(svg.get_attribute("data-points") or 0)
    return found


def _walk(url: str, screenshot: str | None) -> dict[str, Any]:
    driver = _browser()
    try:
        driver.get(f"{url}/dashboard")
        assert "/dashboard/login" in driver.current_url
        driver.find_element(By.NAME, "user").send_keys("ana")
        driver.find_element(By.NAME, "password").send_keys(PASSWORD)
        _submit(driver, "form[action='/dashboard/login'] button")
        assert driver.current_url.endswith("/dashboard")
        # The default period (the last 90 days) is empty: filter to the history's months.
        driver.execute_script(
            "document.querySelector('[name=since]').value = '2026-01-01';"
            "document.querySelector('[name=until]').value = '2026-03-31';"
        )
        Select(driver.find_element(By.NAME, "model")).select_by_value("first_touch")
        _submit(driver, "#filters button")
        everyone = {
            "points": _chart_points(driver),
            "mqls": driver.find_element(By.ID, "kpi-mqls").text,
            "pipeline": driver.find_element(By.ID, "kpi-pipeline").text,
            "caption": driver.find_element(By.CSS_SELECTOR, "#chart-attribution small").text,
        }
        if screenshot:
            height = driver.execute_script("return document.body.scrollHeight")
            driver.set_window_size(1400, height + 40)
            driver.save_screenshot(screenshot)
        Select(driver.find_element(By.NAME, "segment")).select_by_value("Enterprise")
        _submit(driver, "#filters button")
        enterprise = driver.find_element(By.ID, "kpi-mqls").text
        page = driver.find_element(By.TAG_NAME, "html")
        driver.find_element(By.NAME, "q").send_keys("rp-b\n")
        _loaded(driver, page)
        link = driver.find_element(By.ID, "temporal-link").get_attribute("href")
        logs: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
        errors = [e for e in logs if e["level"] == "SEVERE"]
        return {**everyone, "enterprise": enterprise, "link": link, "errors": errors}
    finally:
        driver.quit()


async def test_the_dashboard_in_a_real_browser(settings: Settings, store: Store) -> None:
    shot = os.environ.get("REVOPS_DASHBOARD_SCREENSHOT")
    async with dashboard(settings, store) as url:
        seen = await asyncio.to_thread(_walk, url, shot)
    assert seen["errors"] == []
    assert all(points > 0 for points in seen["points"].values()), seen["points"]
    assert seen["points"]["funnel"] == 6  # Lead .. Customer
    # January to March: 6 passes reached MQL, pipeline 25,000; Enterprise (a, b): 4 MQLs.
    assert (seen["mqls"], seen["pipeline"], seen["enterprise"]) == ("6", "25k", "4")
    assert seen["caption"] == "first_touch"
    contact = store.contact_id_for("rp-b")
    assert seen["link"] == f"http://127.0.0.1:8233/namespaces/default/workflows/contact-{contact}"
