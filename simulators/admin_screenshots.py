"""Screenshots of the admin web UI, for docs/admin.md: ``make screenshots-admin``.

A small office is seeded into a fresh store (simulators/admin_site.py), the real admin app is
served over HTTP on a free port, and Debian's chromium (driven by Playwright) logs in and takes
each page in light and dark, English and Chinese. Times are the seed's, so the pictures change
only when the UI does.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import tempfile
from pathlib import Path
from zoneinfo import ZoneInfo

from gateway.admin.app import create_app
from gateway.admin.server import AdminServer
from gateway.config import load_settings
from gateway.store import open_database
from simulators.admin_site import PASSWORD, seed_site

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FRAME = Path(__file__).parents[1] / "tests/data/faces/jacques_chirac/Jacques_Chirac_0002.jpg"
# (file name, path, languages, themes)
PAGES = [
    ("dashboard", "/", ("en", "zh"), ("light", "dark")),
    ("devices", "/devices", ("en",), ("light", "dark")),
    ("device", "/devices/lobby-1", ("en",), ("light",)),
    ("records", "/records", ("en",), ("light",)),
    ("rooms", "/rooms", ("zh",), ("light",)),
    ("audit", "/audit", ("en",), ("dark",)),
]


async def shoot(out: Path) -> list[Path]:
    from playwright.async_api import async_playwright

    written: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(None, site="hq", data_dir=tmp, bridge={"enabled": False})
        zone = ZoneInfo(settings.attendance.timezone)
        now = int(dt.datetime.now(zone).replace(hour=11, minute=5).timestamp() * 1000)
        db = await open_database(settings.db_path)
        await seed_site(db, settings, now, frame_jpeg=FRAME.read_bytes())
        server = AdminServer(create_app(settings, db, clock=lambda: now), "127.0.0.1", 0)
        await server.start()
        try:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                ctx = await browser.new_context(
                    base_url=f"http://127.0.0.1:{server.port}",
                    viewport={"width": 1200, "height": 720},
                )
                page = await ctx.new_page()
                await page.goto("/login")
                path = out / "admin-login.png"
                await page.screenshot(path=str(path))
                written.append(path)
                await page.get_by_label("Username").fill("alice")
                await page.get_by_label("Password").fill(PASSWORD)
                await page.get_by_role("button", name="Log in").click()
                await page.wait_for_url("**/")
                for name, url, langs, themes in PAGES:
                    for lang in langs:
                        for theme in themes:
                            await page.goto(f"/prefs?lang={lang}&theme={theme}&next={url}")
                            suffix = "" if (lang, theme) == ("en", "light") else f"-{lang}-{theme}"
                            path = out / f"admin-{name}{suffix}.png"
                            await page.screenshot(path=str(path), full_page=True)
                            written.append(path)
                await browser.close()
        finally:
            await server.stop()
            await db.close()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for path in asyncio.run(shoot(args.out)):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
