"""A browser app on another origin uses the API: login, query and subscribe (CORS)."""

from __future__ import annotations

import json

from tests.browser import PageHost, chromium
from tests.world import PASSWORD, new_org

APP = """<!doctype html><html><body><script>
window.run = async (api, email, password) => {
  const gql = async (query, variables, token) => {
    const headers = {"Content-Type": "application/json"};
    if (token) headers["Authorization"] = "Bearer " + token;
    const answer = await fetch(api + "/graphql", {method: "POST", headers, body: JSON.stringify({query, variables})});
    return answer.json();
  };
  const login = await gql("mutation($i: LoginInput!) { login(input: $i) { token errors { code } } }",
                          {i: {email, password}});
  const token = login.data.login.token;
  const me = await gql("{ me { email } }", {}, token);
  const socket = new WebSocket(api.replace("http", "ws") + "/graphql", "graphql-transport-ws");
  const event = new Promise((resolve, reject) => {
    socket.onmessage = (m) => {
      const message = JSON.parse(m.data);
      if (message.type === "connection_ack") {
        socket.send(JSON.stringify({id: "1", type: "subscribe", payload: {
          query: "subscription { conversationEvents { kind conversation { customer { name } } } }"}}));
        window.subscribed = true;
      } else if (message.type === "next") {
        resolve(message.payload.data.conversationEvents);
      } else if (message.type === "error") { reject(message.payload); }
    };
    socket.onerror = () => reject("socket error");
  });
  socket.onopen = () => socket.send(JSON.stringify({type: "connection_init",
                                                    payload: {authorization: "Bearer " + token}}));
  return {token: !!token, me: me.data.me, event};
};
window.tryFetch = async (api) => {
  try {
    await fetch(api + "/graphql", {method: "POST", headers: {"Content-Type": "application/json"},
                                   body: JSON.stringify({query: "{ __typename }"})});
    return "read";
  } catch (error) { return "blocked"; }
};
</script></body></html>"""


async def test_a_frontend_on_an_allowed_origin_logs_in_queries_and_subscribes(make_server):
    async with PageHost({"/": APP}) as site, PageHost({"/": APP}) as stranger:
        server = await make_server(allowed_origins=(site.origin,))
        org = await new_org(server)
        team = await org.team("Support")
        channel = await org.channel(team, "LINE")
        async with chromium() as browser:
            page = await browser.new_page()
            await page.goto(site.origin + "/")
            await page.evaluate(
                """([api, email, password]) => { window.result = window.run(api, email, password)
                .then(r => { window.first = {token: r.token, me: r.me}; return r.event; })
                .then(e => window.event = e, e => window.failure = String(e)); }""",
                [server.url, org.owner.email, PASSWORD],
            )
            await page.wait_for_function("window.subscribed === true || window.failure !== undefined")
            assert await page.evaluate("window.failure") is None
            assert await page.evaluate("window.first") == {"token": True, "me": {"email": org.owner.email}}
            await org.customer_writes(channel, "c1", "hello from LINE", customer={"name": "Ann"})
            await page.wait_for_function("window.event !== undefined || window.failure !== undefined")
            assert await page.evaluate("window.event") == {
                "kind": "CREATED",
                "conversation": {"customer": {"name": "Ann"}},
            }

            other = await browser.new_page()
            await other.goto(stranger.origin + "/")
            assert await other.evaluate("api => window.tryFetch(api)", server.url) == "blocked"


async def test_preflight_is_answered_for_allowed_origins_only(make_server):
    server = await make_server(allowed_origins=("https://app.example.com",))
    asked = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"}
    allowed = await server.http.options("/graphql", headers={"Origin": "https://app.example.com", **asked})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    assert {"authorization", "content-type"} <= {
        h.strip().lower() for h in allowed.headers["access-control-allow-headers"].split(",")
    }
    refused = await server.http.options("/graphql", headers={"Origin": "https://evil.example", **asked})
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
    # simple requests: the header is sent to allowed origins only
    body = json.dumps({"query": "{ __typename }"})
    for origin, expected in (("https://app.example.com", "https://app.example.com"), ("https://evil.example", None)):
        answer = await server.http.post(
            "/graphql", content=body, headers={"Origin": origin, "Content-Type": "application/json"}
        )
        assert answer.headers.get("access-control-allow-origin") == expected
    files = await server.http.options(
        "/files/0123456789abcdef01234567",
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert files.status_code == 200 and files.headers["access-control-allow-origin"] == "https://app.example.com"
