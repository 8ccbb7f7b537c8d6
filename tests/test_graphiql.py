"""GraphiQL works without internet access: the server serves the files its page loads.

The browser test blocks every host but the server's, installs the pinned
files first when they are missing (``tools/graphiql``, then the copy of
``python -m api.graphiql_assets``), and fails, rather than skips, without
Node.js, npm or Chromium.
"""

from __future__ import annotations

import logging
import shutil
from urllib.parse import quote, urlsplit

import pytest

import api.graphiql
from api.graphiql_assets import FILES, copy_files
from tests.browser import chromium
from tests.npm_tools import installed_tool
from tests.world import new_org

HTML = {"Accept": "text/html"}


@pytest.fixture(scope="module")
def graphiql_installed():
    """GraphiQL's files in api/static/graphiql, as `python -m api.graphiql_assets` puts them."""
    installed_tool("graphiql")
    copy_files()


async def test_graphiql_runs_a_query_with_every_other_host_unreachable(graphiql_installed, make_server, caplog):
    with caplog.at_level(logging.INFO, logger="imbrace"):
        server = await make_server()
    assert any("GraphiQL serves its files from this server" in r.getMessage() for r in caplog.records)
    org = await new_org(server)
    query = "{ me { email } }"
    headers = f'{{"Authorization": "Bearer {org.owner.token}"}}'
    async with chromium() as browser:
        page = await browser.new_page()
        requested, refused, console = [], [], []
        page.on("request", lambda request: requested.append(request.url))
        page.on("console", lambda message: console.append(message.text))

        async def this_server_only(route):
            if urlsplit(route.request.url).hostname != "127.0.0.1":
                refused.append(route.request.url)
                await route.abort("internetdisconnected")
            else:
                await route.continue_()

        await page.route("**/*", this_server_only)

        await page.goto(f"{server.url}/graphql?q={quote(query)}&headers={quote(headers)}")
        editor = page.locator(".graphiql-query-editor .CodeMirror")
        await editor.wait_for(state="visible", timeout=20_000)
        assert "me { email }" in await editor.inner_text()
        await page.locator(".graphiql-execute-button").click()
        response = page.locator(".graphiql-response")
        await response.get_by_text(org.owner.email).wait_for(timeout=20_000)
        assert '"me"' in await response.inner_text(), console

    assert refused == []
    assert {urlsplit(url).hostname for url in requested if not url.startswith("data:")} == {"127.0.0.1"}
    assert any("/graphiql/assets/graphiql@" in url for url in requested)


async def test_each_served_package_comes_with_its_licence(graphiql_installed, make_server):
    server = await make_server()
    page = (await server.http.get("/graphql", headers=HTML)).text
    for package in FILES:
        version = page.split(f"graphiql/assets/{package}@", 1)[1].split("/", 1)[0]
        licence = await server.http.get(f"/graphiql/assets/{package}@{version}/LICENSE")
        assert licence.status_code == 200 and "Permission is hereby granted" in licence.text, package


async def test_without_the_installed_files_graphiql_loads_them_from_the_cdn(
    make_server, tmp_path, monkeypatch, caplog, graphiql_installed
):
    """A developer who skipped `python -m api.graphiql_assets`, or whose copy was altered, gets
    today's page, which works with internet access, and a log line saying how to get the local one."""
    partial = tmp_path / "assets"
    shutil.copytree(api.graphiql.ASSETS_DIR, partial)
    react = next(partial.glob("react@*/umd/react.production.min.js"))
    react.write_bytes(react.read_bytes() + b"\n")  # no longer what the page's integrity hash expects
    for assets_dir in (tmp_path / "nothing", partial):
        monkeypatch.setattr(api.graphiql, "ASSETS_DIR", assets_dir)
        caplog.clear()
        server = await make_server()
        page = (await server.http.get("/graphql", headers=HTML)).text
        assert "https://unpkg.com/graphiql@" in page and "graphiql/assets/" not in page
        assert "Loading..." in page and "subscriptionUrl" in page
        local = f"/graphiql/assets/{react.relative_to(partial)}"
        assert (await server.http.get(local)).status_code == 404
        warnings = [r.getMessage() for r in caplog.records if "loads its files from the CDN" in r.getMessage()]
        assert len(warnings) == 1 and "python -m api.graphiql_assets" in warnings[0]


async def test_graphiql_and_its_files_are_off_where_settings_turn_graphiql_off(graphiql_installed, make_server):
    on = await make_server()
    page = (await on.http.get("/graphql", headers=HTML)).text
    asset = "/" + page.split('src="', 1)[1].split('"', 1)[0]
    assert asset.startswith("/graphiql/assets/react@")
    answer = await on.http.get(asset)
    assert answer.status_code == 200 and "immutable" in answer.headers["cache-control"]
    for off in (await make_server(graphiql=False), await make_server(env="production")):
        assert (await off.http.get("/graphql", headers=HTML)).status_code == 404
        assert (await off.http.get(asset)).status_code == 404
