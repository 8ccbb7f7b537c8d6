"""`/widget.js` and `/widget/demo` over plain HTTP, and what the script must never do.

The widget runs on other people's sites, under their Content-Security-Policy: no
code from strings, no inline styles or handlers, no HTML parsed from data. Those
are checked here on the source, cheaply; tests/test_widget_browser.py runs it.
"""

from __future__ import annotations

import re

from api.widget.assets import SCRIPT_PATH

SOURCE = SCRIPT_PATH.read_text(encoding="utf-8")


async def test_widget_js_is_javascript_cached_briefly_and_revalidated_by_etag(server):
    response = await server.http.get("/widget.js")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.content == SCRIPT_PATH.read_bytes()
    assert response.headers["cache-control"] == "public, max-age=300"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cross-origin-resource-policy"] == "cross-origin"
    etag = response.headers["etag"]
    for if_none_match in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = await server.http.get("/widget.js", headers={"If-None-Match": if_none_match})
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    changed = await server.http.get("/widget.js", headers={"If-None-Match": '"an-older-version"'})
    assert changed.status_code == 200 and changed.content == response.content


async def test_demo_page_embeds_the_key_escaped_under_a_strict_csp(server):
    response = await server.http.get("/widget/demo", params={"key": 'wk_abc"><script>alert(1)</script>'})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    assert '<script src="/widget.js" data-widget-key="wk_abc&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in page
    assert "<script>alert(1)" not in page
    assert page.count("<script") == 1  # nothing inline: the page obeys its own policy
    csp = response.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "style-src 'self';" in csp and "unsafe" not in csp
    assert f"connect-src 'self' ws://127.0.0.1:{server.port};" in csp
    without_key = await server.http.get("/widget/demo")
    assert without_key.status_code == 200 and "/widget/demo?key=wk_" in without_key.text
    assert "<script" not in without_key.text


def test_the_script_runs_under_a_strict_csp_and_builds_no_html_from_strings():
    # comments may name what's banned
    code = re.sub(r"^\s*//[^\n]*$", "", re.sub(r"/\*.*?\*/", "", SOURCE, flags=re.S), flags=re.M)
    for banned in (
        r"\beval\s*\(",
        r"\bnew\s+Function\b",
        r"\bsetTimeout\(\s*[\"'`]",
        r"\bsetInterval\(\s*[\"'`]",
        r"\.innerHTML\b",
        r"\.outerHTML\b",
        r"insertAdjacentHTML",
        r"document\.write",
        r"setAttribute\(\s*[\"']style[\"']",
        r"setAttribute\(\s*[\"']on",
        r"\bimport\s*\(",
    ):
        assert not re.search(banned, code), banned
    assert "adoptedStyleSheets" in code and "replaceSync" in code
