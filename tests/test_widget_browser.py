"""The web widget in a real browser: Debian's Chromium, driven by Playwright, runs the
real ``/widget.js`` on a shop's page served from another origin, against a real server.

The shop's page sets a strict Content-Security-Policy (scripts and connections to the
inbox only, no inline styles), as a careful site would: the widget must work under it.
The agent's side is the agent GraphQL API (and its WebSocket); replies to a visitor
who left go out by email to an in-process SMTP server. The server's clock is a
:class:`tests.clock.FakeClock`, so the presence timeout passes without waiting.

``IMBRACE_SCREENSHOT=1`` writes the screenshot of the open widget to ``docs/widget.png``
(the README shows it); otherwise it goes to the test's temporary directory, so the
suite never writes into the repository unasked.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from domain.widget import identity_hash
from tests.browser import PageHost, chromium
from tests.clock import FakeClock
from tests.network import Link
from tests.smtp_server import SmtpServer
from tests.world import Org, Person, new_org
from tests.ws import Subscriber

CONNECT = """mutation($i: ConnectChannelInput!) { connectChannel(input: $i) {
    channel { id } widgetKey identitySecret errors { code message } } }"""
AGENT_EVENTS = "subscription { conversationEvents { id kind conversationId } }"
JOIN = "mutation($id: ID!) { joinConversation(id: $id) { errors { code } } }"
REPLY = """mutation($i: SendMessageInput!) { sendMessage(input: $i) {
    message { id deliveries { via status } } errors { code message } } }"""
AGENT_TYPING = """mutation($id: ID!, $typing: Boolean!) { setTyping(conversationId: $id, typing: $typing) {
    errors { code } } }"""
CONVERSATION = """query($id: ID!) { conversation(id: $id) {
    customer { id email online timeZone language pageUrl }
    messages(last: 50) { edges { node { id text sender { kind } attachments { name mimeType }
    deliveries { via status } } } } } }"""
CONVERSATIONS = "{ conversations(first: 10) { edges { node { id } } } }"

VISITOR_EMAIL = "carol@example.org"
ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT = ROOT / "docs" / "widget.png"

SHOP = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Nordic Knits</title></head>
<body>
<h1>Nordic Knits</h1>
<p>Hand-made wool sweaters, shipped from Bergen.</p>
<script src="{server}/widget.js" data-widget-key="{key}"{attributes} async></script>
</body>
</html>
"""

# Records what the page's policy refuses; init scripts run before the page's own and are not subject to it.
WATCH_CSP = """
window.__violations = [];
document.addEventListener("securitypolicyviolation",
    (e) => window.__violations.push(e.violatedDirective + " " + (e.blockedURI || "inline")), true);
"""


def strict_csp(inbox: str) -> str:
    """What a careful shop allows: scripts and connections to the inbox (``inbox``: its URL), no inline styles."""
    socket = inbox.replace("http://", "ws://", 1)
    return (
        f"default-src 'self'; script-src {inbox}; connect-src {inbox} {socket}; "
        f"img-src 'self' {inbox}; style-src 'self'"
    )


def shop_page(inbox: str, key: str, **attributes: str) -> str:
    """The shop's page embedding the widget from ``inbox`` (the server's URL, as the browser reaches it)."""
    extra = "".join(f' data-{name.replace("_", "-")}="{html.escape(value)}"' for name, value in attributes.items())
    return SHOP.format(server=inbox, key=html.escape(key), attributes=extra)


def striped_png(width: int = 200, height: int = 130) -> bytes:
    """A small PNG (a striped sweater swatch), for the file upload."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    colours = ((47, 84, 235), (245, 245, 250), (214, 51, 108))
    rows = b"".join(b"\x00" + bytes(colours[(y // 13) % 3]) * width for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


@dataclass
class Desk:
    org: Org
    agent: Person
    channel_id: str
    key: str
    secret: str | None

    @property
    def server(self):
        return self.org.server

    async def reply(self, conversation_id: str, text: str) -> dict:
        data = await self.org.gql(
            REPLY, {"i": {"conversationId": conversation_id, "kind": "TEXT", "text": text}}, as_=self.agent
        )
        assert data["sendMessage"]["errors"] == [], data
        return data["sendMessage"]["message"]

    async def conversation(self, conversation_id: str) -> dict:
        data = await self.org.gql(CONVERSATION, {"id": conversation_id}, as_=self.agent)
        return data["conversation"]


async def widget_desk(server, origins: list[str], identity: bool = False) -> Desk:
    org = await new_org(server)
    team = await org.team("Web")
    agent = await org.member("Alice")
    await org.add(team, agent)
    data = await org.gql(
        CONNECT,
        {
            "i": {
                "type": "WEB_WIDGET",
                "name": "Shop",
                "teamId": team,
                "allowedOrigins": origins,
                "identityVerification": identity,
            }
        },
    )
    payload = data["connectChannel"]
    assert payload["errors"] == [], payload
    return Desk(org, agent, payload["channel"]["id"], payload["widgetKey"], payload["identitySecret"])


def widget(page: Page, name: str, **attributes: str):
    selector = f'[data-imbrace="{name}"]' + "".join(f'[data-{k}="{v}"]' for k, v in attributes.items())
    return page.locator(selector)


async def focused(page: Page) -> str | None:
    """The data-imbrace name of the widget's focused element (inside its shadow root)."""
    return await page.evaluate(
        "() => { const a = document.querySelector('imbrace-widget').shadowRoot.activeElement;"
        " return a ? a.dataset.imbrace || a.tagName : null; }"
    )


async def wait_until(check, timeout_s: float = 5.0, what: str = "condition"):
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def next_conversation(events: Subscriber) -> str:
    while True:
        data = await events.next_data(timeout=10)
        event = data["conversationEvents"]
        if event["kind"] in ("CREATED", "MESSAGE"):
            return event["conversationId"]


@pytest.fixture
async def smtp():
    server = await SmtpServer().start()
    yield server
    await server.stop()


async def test_a_visitor_chats_with_an_agent_from_another_origin_under_a_strict_csp(
    make_server, smtp, tmp_path, capsys
):
    clock = FakeClock()
    server = await make_server(
        clock=clock,
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_timeout_s=2,
        smtp_from="support@knits.example",
        public_url="https://inbox.example.com",
    )
    timeout_s = server.settings.thresholds.presence_timeout_s
    # the browser reaches the server through a link the test can cut (a network drop)
    async with (
        Link(server.port) as network,
        PageHost(headers={"Content-Security-Policy": strict_csp(network.url)}) as shop,
        chromium() as browser,
    ):
        desk = await widget_desk(server, [shop.origin])
        shop.pages["/"] = shop_page(network.url, desk.key)
        context = await browser.new_context(viewport={"width": 1000, "height": 720}, locale="de-DE")
        await context.add_init_script(WATCH_CSP)
        page = await context.new_page()
        sockets, sent = [], []

        def opened(socket):
            sockets.append(socket)
            socket.on("framesent", lambda payload: sent.append((len(sockets), json.loads(payload))))

        page.on("websocket", opened)
        async with Subscriber(server.ws_url, desk.agent.token) as agent_events:
            await agent_events.subscribe(AGENT_EVENTS)
            await server.subscribed(1)
            await page.goto(shop.origin + "/")

            # The launcher, styled (a constructed stylesheet: the page's style-src allows no inline <style>)
            launcher = widget(page, "launcher")
            await expect(launcher).to_have_attribute("aria-expanded", "false")
            assert await launcher.evaluate("e => getComputedStyle(e).position") == "fixed"
            assert await launcher.get_attribute("aria-label") == "Open chat"
            # nothing happens before the visitor opens it: no session, no socket
            assert sockets == []

            # Keyboard only: Tab reaches the launcher, Enter opens the panel with the input focused
            await page.keyboard.press("Tab")
            assert await focused(page) == "launcher"
            await page.keyboard.press("Enter")
            panel = widget(page, "panel")
            await expect(panel).to_be_visible()
            assert await panel.get_attribute("role") == "dialog" and await panel.get_attribute("aria-label")
            await expect(launcher).to_have_attribute("aria-expanded", "true")
            assert await focused(page) == "input"
            assert await widget(page, "log").get_attribute("role") == "log"
            await expect(widget(page, "status")).to_have_attribute("data-state", "online")

            await page.keyboard.type("Hi! Do you ship to Norway?")
            await page.keyboard.press("Enter")
            mine = widget(page, "message", sender="customer")
            await expect(mine).to_have_count(1)
            await expect(mine.first).to_contain_text("Do you ship to Norway?")
            await expect(mine.first).to_have_attribute("data-status", "sent")
            assert await widget(page, "input").input_value() == ""

            # The agent sees the new conversation through GraphQL, and where the visitor is
            conversation_id = await next_conversation(agent_events)
            found = await desk.conversation(conversation_id)
            assert found["customer"]["online"] is True
            assert found["customer"]["language"] == "de-DE" and found["customer"]["pageUrl"] == shop.origin + "/"
            assert [m["node"]["text"] for m in found["messages"]["edges"]] == ["Hi! Do you ship to Norway?"]

            # Escape closes the panel and gives the focus back to the launcher
            await page.keyboard.press("Escape")
            await expect(panel).to_be_hidden()
            await expect(launcher).to_have_attribute("aria-expanded", "false")
            assert await focused(page) == "launcher"
            await launcher.click()
            await expect(panel).to_be_visible()

            # Nobody answered and the visitor heads for the address bar: "we'll reply by email"
            await page.mouse.move(500, 300)
            await page.mouse.move(500, -5)
            email_input = widget(page, "email-input")
            await expect(email_input).to_be_visible()
            await email_input.fill("not an email")
            await widget(page, "email-save").click()
            await expect(widget(page, "email-error")).to_be_visible()
            await email_input.fill(VISITOR_EMAIL)
            await widget(page, "email-save").click()
            await expect(widget(page, "email")).to_contain_text(f"We'll reply to {VISITOR_EMAIL} by email")
            assert (await desk.conversation(conversation_id))["customer"]["email"] == VISITOR_EMAIL

            # The agent joins, types (the visitor sees it) and replies: on the page within 1 s
            joined = await desk.org.gql(JOIN, {"id": conversation_id}, as_=desk.agent)
            assert joined["joinConversation"]["errors"] == [], joined
            typing = await desk.org.gql(AGENT_TYPING, {"id": conversation_id, "typing": True}, as_=desk.agent)
            assert typing["setTyping"]["errors"] == [], typing
            await expect(widget(page, "typing")).to_have_text("Alice is typing…")
            reply_text = "Hi Carol! Yes, we ship to Norway in 3 to 5 days."
            started = time.perf_counter()
            reply = await desk.reply(conversation_id, reply_text)
            theirs = widget(page, "message", sender="agent")
            await theirs.filter(has_text=reply_text).wait_for(timeout=1000)
            reply_seconds = time.perf_counter() - started
            assert reply_seconds < 1.0
            await expect(widget(page, "typing")).to_have_text("")
            await expect(theirs.first).to_contain_text("Alice")

            # The panel is open and the tab visible: the widget marks it read, and both sides see READ
            await expect(theirs.first).to_have_attribute("data-status", "read")

            async def agent_sees_read():
                found = await desk.conversation(conversation_id)
                by_id = {m["node"]["id"]: m["node"] for m in found["messages"]["edges"]}
                return by_id[reply["id"]]["deliveries"] == [{"via": "CHANNEL", "status": "READ"}]

            await wait_until(agent_sees_read, what="the agent to see READ")

            # A file: the visitor attaches one; it shows inline, the agent has it
            await widget(page, "file-input").set_input_files(
                files=[{"name": "sweater.png", "mimeType": "image/png", "buffer": striped_png()}]
            )
            await expect(mine).to_have_count(2)
            image = mine.nth(1).locator("img")
            await expect(image).to_have_attribute("alt", "sweater.png")
            await expect(mine.nth(1)).to_have_attribute("data-status", "sent")
            await page.wait_for_function(
                "img => img.complete && img.naturalWidth === 200", arg=await image.element_handle()
            )
            found = await desk.conversation(conversation_id)
            assert found["messages"]["edges"][-1]["node"]["attachments"] == [
                {"name": "sweater.png", "mimeType": "image/png"}
            ]
            await widget(page, "input").fill("This one, in blue?")
            await widget(page, "send").click()
            await expect(mine).to_have_count(3)
            await expect(mine.nth(2)).to_have_attribute("data-status", "sent")
            await page.mouse.move(10, 10)

            screenshot = SCREENSHOT if os.environ.get("IMBRACE_SCREENSHOT") == "1" else tmp_path / "widget.png"
            await page.screenshot(path=str(screenshot))

            # A reload keeps the conversation, once each, and the open panel
            before = await widget(page, "message").evaluate_all("nodes => nodes.map(n => n.dataset.id)")
            await page.reload()
            await expect(widget(page, "message")).to_have_count(len(before))
            assert await widget(page, "message").evaluate_all("nodes => nodes.map(n => n.dataset.id)") == before
            await expect(panel).to_be_visible()
            await expect(widget(page, "status")).to_have_attribute("data-state", "online")

            # The network drops: what the agent writes meanwhile arrives once it is back, on a new
            # socket that resumes the stream after the last event the page had
            sockets_before = len(sockets)
            cursor = await page.evaluate(f"sessionStorage.getItem('imbrace:{desk.key}:cursor')")
            assert cursor
            await network.cut()
            await expect(widget(page, "status")).to_have_attribute("data-state", "offline")
            await desk.reply(conversation_id, "Blue is in stock.")
            await asyncio.sleep(1)
            await network.restore()
            await theirs.filter(has_text="Blue is in stock.").wait_for(timeout=15_000)
            await expect(theirs.filter(has_text="Blue is in stock.")).to_have_attribute("data-status", "read")
            await expect(widget(page, "status")).to_have_attribute("data-state", "online")
            await expect(theirs).to_have_count(2)
            resumed = [f for n, f in sent if n > sockets_before and f.get("type") == "subscribe"]
            assert resumed and resumed[0]["payload"]["variables"] == {"after": cursor}

            # Nothing the page did was refused by its policy, and the policy was on all along
            assert await page.evaluate("window.__violations") == []
            assert (
                await page.evaluate(
                    """() => { const s = document.createElement("style"); s.textContent = "h1 { color: rgb(1, 2, 3) }";
                document.head.append(s); return getComputedStyle(document.querySelector("h1")).color; }"""
                )
                != "rgb(1, 2, 3)"
            )
            assert any(v.startswith("style-src") for v in await page.evaluate("window.__violations"))

            # The visitor closes the page; after the presence timeout they count as offline
            await page.close()
            customer_id = (await desk.conversation(conversation_id))["customer"]["id"]
            presence = server.services.presence
            await wait_until(
                lambda: asyncio.sleep(0, not presence.online_here(customer_id)), what="the socket to close"
            )
            assert (await desk.conversation(conversation_id))["customer"]["online"] is True  # not yet
            clock.advance(timeout_s + 1)
            await server.services.presence.tick(clock())
            await wait_until(lambda: _offline(desk, conversation_id), what="the visitor to be offline")

            # The next reply goes out by email, and is in the history when the visitor returns
            await desk.reply(conversation_id, "PS: the blue one ships tomorrow.")
            (letter,) = await smtp.wait_for(1)
            assert letter.rcpt_tos == [VISITOR_EMAIL]
            assert "the blue one ships tomorrow" in letter.message.get_body(preferencelist=("plain",)).get_content()

            back = await context.new_page()
            await back.goto(shop.origin + "/")
            await expect(widget(back, "badge")).to_have_text("1")
            await widget(back, "launcher").click()
            await widget(back, "message", sender="agent").filter(has_text="the blue one ships tomorrow").wait_for()
            await expect(widget(back, "message")).to_have_count(len(before) + 2)
            await context.close()
    with capsys.disabled():
        print(f"\nwidget: the agent's reply was on the page {reply_seconds * 1000:.0f} ms after sendMessage")


async def _offline(desk: Desk, conversation_id: str) -> bool:
    return (await desk.conversation(conversation_id))["customer"]["online"] is False


async def test_a_page_from_an_origin_not_allowed_cannot_start_a_session(server):
    async with PageHost() as allowed, PageHost() as stranger, chromium() as browser:
        desk = await widget_desk(server, [allowed.origin])
        stranger.pages["/"] = shop_page(server.url, desk.key)
        page = await browser.new_page()
        answered, failed, sockets = [], [], []
        page.on("response", lambda r: answered.append(r.url) if "/widget/v1/sessions" in r.url else None)
        page.on("requestfailed", lambda r: failed.append(r.method) if "/widget/v1/sessions" in r.url else None)
        page.on("websocket", lambda socket: sockets.append(socket))
        await page.goto(stranger.origin + "/")
        await widget(page, "launcher").click()
        status = widget(page, "status")
        await expect(status).to_have_attribute("data-state", "error")
        await expect(status).to_have_text("This chat isn't available on this site.")
        # the browser refused the session request (its preflight got no CORS answer): no token, no socket
        assert failed == ["POST"] and answered == [] and sockets == []
        assert await server.db.customers.count_documents({}) == 0
        assert (await desk.org.gql(CONVERSATIONS, as_=desk.agent))["conversations"]["edges"] == []


async def test_a_forged_identifier_hash_is_refused_and_the_real_one_signs_the_visitor_in(server):
    async with PageHost() as shop, chromium() as browser:
        desk = await widget_desk(server, [shop.origin], identity=True)
        assert desk.secret
        forged = "0" * 64
        real = identity_hash(desk.secret, "customer-42")
        shop.pages["/forged"] = shop_page(server.url, desk.key, identifier="customer-42", identifier_hash=forged)
        shop.pages["/signed"] = shop_page(
            server.url, desk.key, identifier="customer-42", identifier_hash=real, name="Carol", email=VISITOR_EMAIL
        )
        context = await browser.new_context()
        page = await context.new_page()
        refused = []
        page.on("response", lambda r: refused.append(r.status) if r.url.endswith("/widget/v1/sessions") else None)
        await page.goto(shop.origin + "/forged")
        # a signed-in visitor connects at once (replies reach them without opening the panel)
        status = widget(page, "status")
        await expect(status).to_have_attribute("data-state", "error")
        await expect(status).to_have_text("We couldn't verify who you are, so the chat is off.")
        assert 401 in refused
        await widget(page, "launcher").click()
        await expect(widget(page, "input")).to_be_disabled()
        assert (await desk.org.gql(CONVERSATIONS, as_=desk.agent))["conversations"]["edges"] == []

        signed = await context.new_page()
        await signed.goto(shop.origin + "/signed")
        await widget(signed, "launcher").click()
        await expect(widget(signed, "status")).to_have_attribute("data-state", "online")
        await widget(signed, "input").fill("Where is my order?")
        await widget(signed, "send").click()
        await expect(widget(signed, "message", sender="customer")).to_have_attribute("data-status", "sent")
        # the site vouched for the email: no need to ask for it
        await expect(widget(signed, "email")).to_be_hidden()


async def test_on_a_phone_the_panel_fills_the_screen(server):
    async with PageHost() as shop, chromium() as browser:
        desk = await widget_desk(server, [shop.origin])
        shop.pages["/"] = shop_page(server.url, desk.key)
        context = await browser.new_context(viewport={"width": 375, "height": 667}, is_mobile=True, has_touch=True)
        page = await context.new_page()
        await page.goto(shop.origin + "/")
        await widget(page, "launcher").tap()
        panel = widget(page, "panel")
        await expect(panel).to_be_visible()
        await panel.evaluate("panel => Promise.all(panel.getAnimations().map(a => a.finished))")  # it slides in
        assert await panel.bounding_box() == {"x": 0, "y": 0, "width": 375, "height": 667}
        await expect(widget(page, "launcher")).to_be_hidden()  # the panel's own close button takes over
        await widget(page, "input").fill("Hello from my phone")
        await widget(page, "send").tap()
        await expect(widget(page, "message", sender="customer")).to_have_attribute("data-status", "sent")
        await widget(page, "close").tap()
        await expect(panel).to_be_hidden()
        await expect(widget(page, "launcher")).to_be_visible()


async def test_the_demo_page_chats_under_its_own_strict_csp(server):
    desk = await widget_desk(server, [server.url])  # the demo page is on the server's own origin
    async with chromium() as browser:
        page = await browser.new_page()
        await page.add_init_script(WATCH_CSP)
        await page.goto(f"{server.url}/widget/demo?key={desk.key}")
        await widget(page, "launcher").click()
        await expect(widget(page, "status")).to_have_attribute("data-state", "online")
        await widget(page, "input").fill("Trying the demo")
        await page.keyboard.press("Enter")
        await expect(widget(page, "message", sender="customer")).to_have_attribute("data-status", "sent")
        assert await page.evaluate("window.__violations") == []


async def test_an_expired_session_is_renewed_and_the_stream_resumes(make_server):
    server = await make_server(widget_session_ttl_s=2)
    async with PageHost() as shop, chromium() as browser:
        desk = await widget_desk(server, [shop.origin])
        shop.pages["/"] = shop_page(server.url, desk.key)
        page = await browser.new_page()
        sessions, sockets = [], []
        page.on("response", lambda r: sessions.append(r.status) if r.url.endswith("/widget/v1/sessions") else None)
        page.on("websocket", lambda socket: sockets.append(socket))
        await page.goto(shop.origin + "/")
        await widget(page, "launcher").click()
        await widget(page, "input").fill("Is anyone there?")
        await page.keyboard.press("Enter")
        await expect(widget(page, "message", sender="customer")).to_have_attribute("data-status", "sent")
        conversation_id = (await desk.org.gql(CONVERSATIONS, as_=desk.agent))["conversations"]["edges"][0]["node"]["id"]
        joined = await desk.org.gql(JOIN, {"id": conversation_id}, as_=desk.agent)
        assert joined["joinConversation"]["errors"] == [], joined
        # the server closes the socket when the token expires (4401): a new session, a new socket
        await wait_until(lambda: asyncio.sleep(0, len(sessions) >= 2 and len(sockets) >= 2), 10, "a new session")
        await desk.reply(conversation_id, "Yes, I'm here.")
        await widget(page, "message", sender="agent").filter(has_text="Yes, I'm here.").wait_for()
        # and HTTP requests with an expired token get a new one too
        await asyncio.sleep(2.5)
        await widget(page, "input").fill("Great!")
        await page.keyboard.press("Enter")
        await expect(widget(page, "message", sender="customer")).to_have_count(2)
        await expect(widget(page, "message", sender="customer").nth(1)).to_have_attribute("data-status", "sent")
        assert set(sessions) == {201}
        await expect(widget(page, "message")).to_have_count(3)
