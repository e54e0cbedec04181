"""`make screenshots` (tools/screenshots.py): full-page PNGs to look at."""

import struct
import subprocess
import sys

from tools import screenshots
from tools.site_server import SITE


def png_size(path):
    png = path.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n"), path
    return struct.unpack(">II", png[16:24])  # the IHDR chunk: width, height


def test_the_landing_page_is_shot_whole_in_each_width_and_scheme(
    browser, site_server, tmp_path
):
    written = screenshots.shoot(browser, site_server.url, [""], tmp_path)
    assert sorted(path.name for path in written) == sorted(
        f"index-{device}-{scheme}.png"
        for device in ("desktop", "phone")
        for scheme in ("light", "dark")
    )
    assert sorted(tmp_path.iterdir()) == sorted(written)
    for path in written:
        width, height = png_size(path)
        viewport = screenshots.DEVICES[path.stem.split("-")[-2]]
        # The whole landing page, not its first screen.
        assert width == viewport["width"] and height > 2 * viewport["height"], path
    for device in screenshots.DEVICES:
        light, dark = (tmp_path / f"index-{device}-{s}.png" for s in ("light", "dark"))
        assert light.read_bytes() != dark.read_bytes(), device


def test_a_page_not_in_the_site_is_named_in_the_error(site_server):
    result = subprocess.run(
        [sys.executable, "-m", "tools.screenshots", "04-layer/"],
        capture_output=True,
        text=True,
        cwd=SITE.parent,
    )
    assert result.returncode != 0
    assert "no such page" in result.stderr and "'04-layer/'" in result.stderr
