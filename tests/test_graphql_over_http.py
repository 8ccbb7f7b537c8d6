"""GraphQL over HTTP as the specification describes it, checked by its official audit suite.

``graphql-http``'s ``serverAudits`` (pinned in ``tools/graphql-http-audit``)
run against a live server, with a member's token so that operations execute:
no MUST may fail and no SHOULD may warn. The tests below pin what a client
notices most: the media type it asked for, 4xx for request errors, 405 for a
mutation over GET, and JSON for every refusal.
"""

from __future__ import annotations

import json
import subprocess

from tests.npm_tools import installed_tool
from tests.world import new_org

GRAPHQL_RESPONSE = "application/graphql-response+json"


async def test_the_official_audit_suite_passes_without_warnings(server):
    org = await new_org(server)
    node, tool = installed_tool("graphql-http-audit")
    done = await _run([node, str(tool / "audit.mjs"), server.url + "/graphql", org.owner.token], tool)
    results = json.loads(done.stdout)
    assert len(results) > 50
    not_ok = [f"{r['status']}: {r['name']}: {r['reason']}" for r in results if r["status"] != "ok"]
    assert not_ok == [], "\n".join(not_ok)


async def _run(command: list[str], cwd) -> subprocess.CompletedProcess:
    import asyncio

    process = await asyncio.create_subprocess_exec(*command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, stderr.decode()[-3000:]
    return subprocess.CompletedProcess(command, process.returncode, stdout.decode(), stderr.decode())


async def test_request_errors_are_4xx_without_data_for_clients_that_ask_for_the_new_media_type(server):
    org = await new_org(server)
    auth = {"Authorization": f"Bearer {org.owner.token}"}
    for query in ("{ me { id ", "{ me { nosuchfield } }"):
        modern = await server.http.post("/graphql", json={"query": query}, headers={**auth, "Accept": GRAPHQL_RESPONSE})
        assert modern.status_code == 400
        assert modern.headers["content-type"].startswith(GRAPHQL_RESPONSE)
        assert "data" not in modern.json() and modern.json()["errors"]
        legacy = await server.http.post(
            "/graphql", json={"query": query}, headers={**auth, "Accept": "application/json"}
        )
        assert legacy.status_code == 200 and legacy.headers["content-type"].startswith("application/json")
        assert legacy.json()["data"] is None and legacy.json()["errors"]
    ok = await server.http.post(
        "/graphql",
        json={"query": "{ me { email } }"},
        headers={**auth, "Accept": f"{GRAPHQL_RESPONSE}, application/json;q=0.9"},
    )
    assert ok.status_code == 200 and ok.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert ok.json() == {"data": {"me": {"email": org.owner.email}}}


async def test_a_mutation_over_get_is_405_with_allow_post(server):
    org = await new_org(server)
    answer = await server.http.get(
        "/graphql",
        params={"query": "mutation { markNotificationsRead(input: {ids: []}) { updated } }"},
        headers={"Authorization": f"Bearer {org.owner.token}", "Accept": "application/json"},
    )
    assert answer.status_code == 405 and answer.headers["allow"] == "POST"
    assert answer.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"


async def test_every_refusal_is_json(server):
    refusals = [
        await server.http.post("/graphql", content=b"{not json", headers={"Content-Type": "application/json"}),
        await server.http.post("/graphql", content=b"query", headers={"Content-Type": "text/plain"}),
        await server.http.put("/graphql", json={"query": "{ __typename }"}),
        await server.http.post("/graphql", json={"variables": {}}),
    ]
    for answer in refusals:
        assert 400 <= answer.status_code < 500, answer.text
        assert answer.json()["errors"][0]["message"], answer.text
