"""Serve the built site on 127.0.0.1 the way a static host would.

    python -m tools.site_server        # prints the address; Ctrl-C stops it

The browser tests and `make lighthouse` use it. Like GitHub Pages, it serves
site/ under the path of `site_url` (so that 404.html, whose links are absolute,
works), and compresses text files with gzip when the browser accepts it.
"""

from __future__ import annotations

import gzip
import http.server
import io
import threading
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "site"
COMPRESSED = {".html", ".css", ".js", ".json", ".svg", ".xml", ".ipynb", ".map"}


def base_path() -> str:
    """The path part of site_url in mkdocs.yml, e.g. "/learned-kernels/"."""
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    config = yaml.safe_load(text.replace("!!python", ""))
    path = urlsplit(config.get("site_url") or "/").path
    return "/" + path.strip("/") + "/" if path.strip("/") else "/"


def site_pages(site: Path = SITE) -> list[str]:
    """Every page of the built site, as a path relative to the site's root:
    "" for the home page, "01-why-cnns/", ..., "404.html"."""
    if not (site / "index.html").exists():
        raise FileNotFoundError(f"{site} has no index.html: run `make site` first")
    pages = []
    for path in sorted(site.rglob("*.html")):
        relative = path.relative_to(site).as_posix()
        if path.name == "index.html":
            pages.append(relative.removesuffix("index.html"))
        else:
            pages.append(relative)
    return pages


class _Handler(http.server.SimpleHTTPRequestHandler):
    prefix = "/"

    def log_message(self, *args):
        pass

    def translate_path(self, path):
        path = urlsplit(path).path
        if not path.startswith(self.prefix):
            return str(Path(self.directory) / "no-such-file")
        return super().translate_path("/" + path[len(self.prefix) :])

    def send_head(self):
        path = Path(self.translate_path(self.path))
        if path.is_dir():
            path = path / "index.html"
        accepts = "gzip" in self.headers.get("Accept-Encoding", "")
        if not (accepts and path.suffix in COMPRESSED and path.is_file()):
            return super().send_head()
        if not urlsplit(self.path).path.endswith("/") and path.name == "index.html":
            return super().send_head()  # let the base class redirect to the slash
        body = gzip.compress(path.read_bytes(), compresslevel=6, mtime=0)
        self.send_response(200)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=600")
        self.end_headers()
        return io.BytesIO(body)


class SiteServer:
    """A threaded static server for site/ on a free port of 127.0.0.1."""

    def __init__(self, site: Path = SITE, prefix: str | None = None):
        handler = type("Handler", (_Handler,), {"prefix": prefix or base_path()})
        self._server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), partial(handler, directory=str(site))
        )
        self._server.daemon_threads = True
        port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{port}{handler.prefix}"

    def __enter__(self):
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()


if __name__ == "__main__":
    with SiteServer() as server:
        print(f"serving {SITE} at {server.url} (Ctrl-C stops)")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
