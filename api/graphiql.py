"""GraphiQL's page, with its files served by this server when they are installed.

strawberry's page loads React, GraphiQL and its explorer plugin from unpkg.com,
so a browser without internet access shows a blank "Loading..." page. When
``python -m api.graphiql_assets`` has put the same files in ``api/static/graphiql/``,
the page is strawberry's own with those URLs pointing to ``/graphiql/assets/``
(everything else, the fetcher and subscription URL included, unchanged). The
integrity hashes stay, so the browser still refuses any byte that differs.
When a file is missing or differs, the page keeps the CDN, as before.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from strawberry.http.ides import get_graphql_ide_html

from api.graphiql_assets import STATIC_DIR, cdn_files, matches_integrity

log = logging.getLogger("imbrace")

ASSETS_PATH = "/graphiql/assets"
ASSETS_DIR = STATIC_DIR  # where ``python -m api.graphiql_assets`` puts them


@dataclass(frozen=True)
class GraphiQLPage:
    html: str
    assets_dir: Path | None  # None: the page loads its files from the CDN

    def routes(self) -> list[Mount]:
        """The route serving the page's files, when it loads them from this server."""
        if self.assets_dir is None:
            return []
        return [Mount(ASSETS_PATH, app=PinnedFiles(directory=self.assets_dir), name="graphiql-assets")]


def graphiql_page(assets_dir: Path | None = None, html: str | None = None) -> GraphiQLPage:
    """strawberry's page, loading its files from ``assets_dir`` (by default ``ASSETS_DIR``) when
    every one is there and matches the page's integrity hash; logs (once per app) which source it uses."""
    assets_dir = ASSETS_DIR if assets_dir is None else assets_dir
    html = get_graphql_ide_html("graphiql") if html is None else html
    files = cdn_files(html)
    missing = [
        file.url for file in files if not file.package or not _is_intact(assets_dir / file.local_path, file.integrity)
    ]
    if missing or not files:
        what = (
            "none of them is installed here"
            if len(missing) == len(files) and files
            else f"not installed here, or altered: {', '.join(missing) or 'the page loads nothing known'}"
        )
        log.warning(
            "GraphiQL loads its files from the CDN (needs internet access): %s. "
            "Run `python -m api.graphiql_assets` to serve them from this server.",
            what,
        )
        return GraphiQLPage(html, None)
    for file in files:
        # relative to /graphql, so that the page also works behind a proxy's path prefix
        html = html.replace(f'"{file.url}"', f'"{ASSETS_PATH.lstrip("/")}/{file.local_path}"')
    log.info("GraphiQL serves its files from this server (%s/, from %s).", ASSETS_PATH, assets_dir)
    return GraphiQLPage(html, assets_dir)


def _is_intact(path: Path, integrity: str | None) -> bool:
    try:
        return path.is_file() and matches_integrity(path.read_bytes(), integrity)
    except OSError:
        return False


class PinnedFiles(StaticFiles):
    """Static files whose URLs carry their version: browsers may keep them for a year."""

    def file_response(self, *args, **kwargs):
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response
