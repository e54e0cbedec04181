"""Full-page screenshots of the built site, to look at: every page (or those
named) at desktop and phone width, in the light and the dark scheme.

    python -m tools.screenshots                      # `make screenshots`: every page
    python -m tools.screenshots 04-layers/ explorer/ # `make screenshots PAGES="..."`

Writes build/screenshots/PAGE-DEVICE-SCHEME.png (the home page is "index")
and prints where they went. The browser tests (tests/conftest.py,
tests/test_browser.py) drive the same Chromium with the same settings, which
live here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tools.site_server import SITE, SiteServer, site_pages

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "screenshots"
# Debian's Chromium, driven by Playwright: never `playwright install`.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
DEVICES = {
    "desktop": {"width": 1280, "height": 900},
    "phone": {"width": 375, "height": 800},
}
SCHEMES = ("light", "dark")
# The one-page book is too long for a full-page screenshot (Chromium gives
# up): it gets its first screen.
PRINT_PAGE = "print_page/"


def file_stem(path: str) -> str:
    """A page's path as a file name: "04-layers", "index" for the home page."""
    return path.strip("/").replace("/", "_").removesuffix(".html") or "index"


def lay_out_everything(page) -> None:
    """Lay out the code blocks that book.css leaves to be laid out when the
    reader scrolls near them (content-visibility: auto): a full-page screenshot
    would show them blank, and axe could not check their colours."""
    page.add_style_tag(content="* { content-visibility: visible !important; }")


def shoot(browser, base_url: str, pages: list[str], out: Path = OUT) -> list[Path]:
    """Screenshot each page at each device width in each scheme, each in a
    fresh context (as a reader who prefers that scheme first opens it)."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in pages:
        for device, viewport in DEVICES.items():
            for scheme in SCHEMES:
                context = browser.new_context(viewport=viewport, color_scheme=scheme)
                page = context.new_page()
                page.goto(base_url + path, wait_until="load")
                page.evaluate(
                    """() => Promise.all(Array.from(document.images, (img) => {
                         img.loading = "eager";  // the figures further down too
                         return img.decode().catch(() => {});
                       }))"""
                )
                lay_out_everything(page)
                target = out / f"{file_stem(path)}-{device}-{scheme}.png"
                page.screenshot(path=target, full_page=path != PRINT_PAGE)
                context.close()
                written.append(target)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "pages", nargs="*", help='pages as the site names them, e.g. "04-layers/"'
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    try:
        known = site_pages()
    except FileNotFoundError as error:
        raise SystemExit(str(error)) from None
    unknown = [page for page in args.pages if page not in known]
    if unknown:
        raise SystemExit(
            f"no such page in {SITE}: {', '.join(map(repr, unknown))}; "
            f"pages are named like {known[0]!r} (the home page is '')"
        )
    if not CHROMIUM.exists():
        raise SystemExit(
            f"Chromium not found at {CHROMIUM}: install Debian's package "
            "(`sudo apt-get install chromium`)"
        )
    from playwright.sync_api import sync_playwright

    pages = args.pages or known
    with SiteServer() as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        written = shoot(browser, server.url, pages, args.out)
        browser.close()
    where = args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out
    pages_taken = f"{len(pages)} page" + ("s" if len(pages) != 1 else "")
    print(
        f"{len(written)} screenshots of {pages_taken} (desktop and phone, "
        f"light and dark) in {where}/"
    )


if __name__ == "__main__":
    sys.exit(main())
