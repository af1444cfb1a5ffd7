"""The web UI in a real headless browser (Debian's chromium driven by Playwright) over real
HTTP: log in, find a device, revoke it, see the audit entry; then Chinese and the dark theme."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator

import pytest

from simulators.admin_screenshots import CHROMIUM, CHROMIUM_ARGS
from simulators.admin_site import PASSWORD
from tests.admin.conftest import Admin


@pytest.fixture
async def page(admin: Admin) -> AsyncIterator[object]:
    # Not a skip: `make test` installs chromium (scripts/ensure-system-deps), and a browser test
    # that quietly does not run would be counted as one that passed.
    assert shutil.which(CHROMIUM), f"no {CHROMIUM}: install it with apt-get install chromium"
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = await browser.new_context(base_url=admin.url, locale="en-US")
        try:
            yield await context.new_page()
        finally:
            await context.close()
            await browser.close()


async def test_log_in_find_a_device_revoke_it_and_see_the_audit_entry(
    admin: Admin, page: object
) -> None:
    from playwright.async_api import Page, expect

    assert isinstance(page, Page)
    answer = await page.goto("/devices")
    assert answer is not None
    assert answer.status == 401  # not logged in: the login form, which comes back here
    await page.get_by_label("Username").fill("alice")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_url(f"{admin.url}/devices")

    cookie = next(c for c in await page.context.cookies() if c["name"] == "tack_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"

    await page.get_by_label("Search id, name or room").fill("side door")
    await page.get_by_role("button", name="Filter").click()
    rows = page.locator("tbody tr")
    await expect(rows).to_have_count(1)
    await rows.get_by_role("link", name="lobby-2").click()
    await expect(page.get_by_test_id("device-state")).to_have_text("online")

    await page.get_by_role("link", name="Revoke this device").click()
    await expect(page.get_by_role("heading")).to_have_text("Revoke lobby-2?")
    await page.get_by_role("button", name="Yes, revoke lobby-2").click()
    await expect(page.get_by_role("status")).to_contain_text("Device revoked")
    await expect(page.get_by_test_id("device-state")).to_have_text("revoked")

    await page.get_by_role("link", name="Audit log").click()
    entry = page.locator("tbody tr", has_text="device.revoke")
    await expect(entry).to_have_count(1)
    await expect(entry).to_contain_text("web:alice")
    await expect(entry).to_contain_text("lobby-2")
    await expect(page.get_by_role("status")).to_contain_text("Chain intact")

    await page.get_by_role("link", name="中文").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("审计日志")
    assert await page.locator("html").get_attribute("lang") == "zh-Hans"
    await page.get_by_role("link", name="深色").click()
    assert await page.locator("html").get_attribute("data-theme") == "dark"
    background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(18, 20, 23)"
    await page.get_by_role("link", name="设备").first.click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("设备")  # remembered


async def test_a_viewer_sees_no_revoke_button_and_no_photo_links(
    admin: Admin, page: object
) -> None:
    from playwright.async_api import Page, expect

    assert isinstance(page, Page)
    await page.goto("/login")
    await page.get_by_label("Username").fill("vera")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_test_id("devices-online")).to_have_text("3")
    await page.goto("/devices/lobby-1")
    await expect(page.get_by_test_id("device-state")).to_have_text("online")
    await expect(page.get_by_role("link", name="Revoke this device")).to_have_count(0)
    await expect(page.get_by_role("link", name="Photo")).to_have_count(0)
    answer = await page.goto("/devices/lobby-1/revoke")
    assert answer is not None
    assert answer.status == 403
