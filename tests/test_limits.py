"""Abuse limits: each one on by default, configurable, and refusing with a clear error."""

import json

from tests.clock import FakeClock
from tests.world import PASSWORD, new_org
from tests.ws import Subscriber

LOGIN = "mutation($i: LoginInput!) { login(input: $i) { token errors { code } } }"


async def _errors(server, query, token=None, variables=None):
    body = await server.gql(query, variables, token, expect_errors=True)
    return body.get("errors") or []


async def test_query_depth_token_and_alias_limits(make_server):
    server = await make_server(max_query_depth=4, max_query_tokens=200, max_aliases=3)
    org = await new_org(server)
    deep = "{ conversations { edges { node { lastMessage { sender { member { name } } } } } } }"
    assert "exceeds maximum operation depth" in (await _errors(server, deep, org.owner.token))[0]["message"]
    many_tokens = "{ " + " ".join(f"a{i}: me {{ id }}" for i in range(60)) + " }"
    assert "token" in (await _errors(server, many_tokens, org.owner.token))[0]["message"].lower()
    aliases = "{ a: me { id } b: me { id } c: me { id } d: me { id } }"
    assert "alias" in (await _errors(server, aliases, org.owner.token))[0]["message"].lower()
    assert (await server.gql("{ a: me { id } b: me { id } }", token=org.owner.token))["a"]["id"] == org.owner.id


async def test_batching_is_off(server):
    org = await new_org(server)
    response = await server.http.post(
        "/graphql",
        json=[{"query": "{ me { id } }"}, {"query": "{ me { id } }"}],
        headers={"Authorization": f"Bearer {org.owner.token}"},
    )
    assert response.status_code == 400


async def test_first_is_capped(server):
    org = await new_org(server)
    errors = await _errors(server, "{ conversations(first: 101) { totalCount } }", org.owner.token)
    assert errors[0]["extensions"]["code"] == "INVALID_INPUT"


async def test_field_suggestions_only_outside_production(make_server):
    dev = await make_server()
    prod = await make_server(env="production")
    query = "{ mee { id } }"
    assert "Did you mean" in (await _errors(dev, query, "x"))[0]["message"]
    assert "Did you mean" not in (await _errors(prod, query, "x"))[0]["message"]


async def test_introspection_can_be_turned_off(make_server):
    on, off = await make_server(), await make_server(introspection=False)
    query = "{ __schema { queryType { name } } }"
    assert (await on.gql(query))["__schema"]["queryType"]["name"] == "Query"
    assert "introspection" in (await _errors(off, query))[0]["message"].lower()


async def test_request_body_size_limit(server):
    huge = {"query": "{ me { id } }", "variables": {"pad": "x" * (1024 * 1024 + 1)}}
    response = await server.http.post("/graphql", json=huge)
    assert response.status_code == 413


async def test_per_connection_subscription_limit(make_server):
    server = await make_server(max_subscriptions_per_connection=3)
    org = await new_org(server)
    async with Subscriber(server.ws_url, org.owner.token) as sub:
        for _ in range(4):
            await sub.subscribe("subscription { notificationReceived { id } }")
        message = await sub.receive()
        assert message["type"] == "error" and "limit" in json.dumps(message).lower()


async def test_login_throttle_locks_an_email_without_revealing_it_exists(make_server):
    clock = FakeClock()
    server = await make_server(clock=clock)
    org = await new_org(server)
    for email in (org.owner.email, "ghost@example.com"):
        codes = []
        for _ in range(6):
            data = await server.gql(LOGIN, {"i": {"email": email, "password": "wrong password"}})
            codes.append(data["login"]["errors"][0]["code"])
        assert codes == ["INVALID_CREDENTIALS"] * 5 + ["TOO_MANY_ATTEMPTS"]
    right = await server.gql(LOGIN, {"i": {"email": org.owner.email, "password": PASSWORD}})
    assert right["login"] == {"token": None, "errors": [{"code": "TOO_MANY_ATTEMPTS"}]}
    clock.advance(15 * 60 + 1)  # the 15-minute window passes
    right = await server.gql(LOGIN, {"i": {"email": org.owner.email, "password": PASSWORD}})
    assert right["login"]["errors"] == [] and right["login"]["token"]


async def test_mutations_refused_over_get_and_form_posts_refused(server):
    org = await new_org(server)
    headers = {"Authorization": f"Bearer {org.owner.token}"}
    response = await server.http.get(
        "/graphql",
        params={"query": 'mutation { createTeam(input: {name: "x", mode: GRAB}) { errors { code } } }'},
        headers=headers,
    )
    assert response.status_code in (400, 405) and "mutation" in response.text.lower()
    response = await server.http.get("/graphql", params={"query": "{ me { id } }"}, headers=headers)
    assert response.json()["data"]["me"]["id"] == org.owner.id
    for content_type in ("application/x-www-form-urlencoded", "text/plain"):
        response = await server.http.post(
            "/graphql", content=b'{"query": "{ me { id } }"}', headers={**headers, "Content-Type": content_type}
        )
        assert response.status_code == 415
    assert (await org.gql("{ teams { name } }"))["teams"] == []


async def test_parser_and_validation_caches_stay_bounded_under_distinct_queries(server):
    """A client sending ever-new query texts can't grow the server's caches without limit."""
    from strawberry.extensions.parser_cache import _get_parse_cache

    from api.graphql.extensions import DocumentValidationCache, QueryCostLimit

    org = await new_org(server)
    for i in range(300):
        assert (await server.gql(f"query Distinct{i} {{ me {{ id }} }}", token=org.owner.token))["me"]["id"]
    assert _get_parse_cache(256).cache_info().currsize <= 256
    assert len(DocumentValidationCache._entries) <= DocumentValidationCache.maxsize == 256
    assert len(QueryCostLimit._costs) <= QueryCostLimit.maxsize == 256
    # and a repeated query is still answered from the caches
    hits = _get_parse_cache(256).cache_info().hits
    await server.gql("query Distinct299 { me { id } }", token=org.owner.token)
    assert _get_parse_cache(256).cache_info().hits == hits + 1
