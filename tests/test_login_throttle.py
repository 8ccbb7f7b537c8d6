"""Login throttling: atomic under parallel guesses, per client address across emails,
and a stranger's failures can't lock the real user out."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from tests.world import PASSWORD, new_org

LOGIN = "mutation($i: LoginInput!) { login(input: $i) { token errors { code } } }"


async def attempt(server, email: str, password: str = "wrong password", address: str | None = None) -> str:
    """The login's error code, or "OK"; ``address`` is sent as X-Forwarded-For."""
    headers = {"X-Forwarded-For": address} if address else {}
    response = await server.http.post(
        "/graphql", json={"query": LOGIN, "variables": {"i": {"email": email, "password": password}}}, headers=headers
    )
    payload = response.json()["data"]["login"]
    return payload["errors"][0]["code"] if payload["errors"] else ("OK" if payload["token"] else "?")


async def test_parallel_guesses_cannot_pass_the_limit(server):
    org = await new_org(server)
    codes = await asyncio.gather(*(attempt(server, org.owner.email) for _ in range(30)))
    assert codes.count("INVALID_CREDENTIALS") == 5, codes
    assert codes.count("TOO_MANY_ATTEMPTS") == 25, codes


async def test_one_client_spraying_many_emails_is_throttled(server):
    codes = [await attempt(server, f"victim{n}@example.com") for n in range(40)]
    assert codes[:20] == ["INVALID_CREDENTIALS"] * 20
    assert codes[20:] == ["TOO_MANY_ATTEMPTS"] * 20
    # rotating X-Forwarded-For doesn't help when the server is not behind a trusted proxy
    assert await attempt(server, "another@example.com", address="203.0.113.99") == "TOO_MANY_ATTEMPTS"


async def test_a_stranger_cannot_lock_the_owner_out(make_server):
    server = await make_server(trusted_proxies=("127.0.0.1",))
    org = await new_org(server)
    stranger, owner = "198.51.100.7", "203.0.113.20"
    codes = [await attempt(server, org.owner.email, address=stranger) for _ in range(8)]
    assert codes == ["INVALID_CREDENTIALS"] * 5 + ["TOO_MANY_ATTEMPTS"] * 3
    # even with the right password the stranger's address stays refused ...
    assert await attempt(server, org.owner.email, PASSWORD, address=stranger) == "TOO_MANY_ATTEMPTS"
    # ... while the owner, from their own address, logs in (and can keep doing so)
    for _ in range(3):
        assert await attempt(server, org.owner.email, PASSWORD, address=owner) == "OK"
    # a proxy-given address is only believed when the proxy is trusted: the stranger's
    # budget is per (email, address), the owner's own mistakes are counted separately
    assert await attempt(server, org.owner.email, address=owner) == "INVALID_CREDENTIALS"
    assert await attempt(server, org.owner.email, PASSWORD, address=owner) == "OK"


async def test_many_addresses_slow_an_email_down_without_locking_it(make_server):
    server = await make_server(trusted_proxies=("127.0.0.1",), login_email_delay_after=6, login_email_max_delay_s=8)
    org = await new_org(server)
    shift = {"s": 0.0}
    frozen = server.services.clock()  # the server's time stands still but for the shifts, however slow the machine
    server.services.clock = lambda: frozen + timedelta(seconds=shift["s"])
    botnet = [f"198.51.100.{n}" for n in range(1, 20)]
    codes = [await attempt(server, org.owner.email, address=a) for a in botnet[:6]]
    assert codes == ["INVALID_CREDENTIALS"] * 6
    # 6 failures over all addresses: every address now waits 1 s, the owner's too
    assert await attempt(server, org.owner.email, PASSWORD, address="203.0.113.20") == "TOO_MANY_ATTEMPTS"
    shift["s"] += 1.1
    assert await attempt(server, org.owner.email, address=botnet[6]) == "INVALID_CREDENTIALS"
    shift["s"] += 1.1  # the delay has doubled to 2 s
    assert await attempt(server, org.owner.email, address=botnet[7]) == "TOO_MANY_ATTEMPTS"
    shift["s"] += 1.0
    assert await attempt(server, org.owner.email, address=botnet[8]) == "INVALID_CREDENTIALS"
    for _ in range(3):  # 4 s, 8 s, then capped at 8 s
        shift["s"] += 8.1
        assert await attempt(server, org.owner.email, address=botnet[9]) == "INVALID_CREDENTIALS"
    shift["s"] += 7.5
    assert await attempt(server, org.owner.email, PASSWORD, address="203.0.113.20") == "TOO_MANY_ATTEMPTS"
    shift["s"] += 0.7  # never a lock: once the capped delay has passed the owner gets in
    assert await attempt(server, org.owner.email, PASSWORD, address="203.0.113.20") == "OK"


async def test_login_records_are_forgotten_by_retention(server):
    from api.retention import Retention

    await attempt(server, "someone@example.com")
    assert await server.db.login_attempts.count_documents({}) >= 1
    retention = Retention(server.services.store, 86400, server.settings.login_window_s, server.services.clock)
    later = server.services.clock() + timedelta(seconds=server.settings.login_window_s + 1)
    assert (await retention.purge(later))[1] >= 1
    assert await server.db.login_attempts.count_documents({}) == 0
