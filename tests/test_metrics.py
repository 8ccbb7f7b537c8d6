"""/metrics: an operator scrapes a running server and sees what users just did."""

from __future__ import annotations

import asyncio
import time

from prometheus_client.parser import text_string_to_metric_families

import api.metrics
from api.settings import Settings
from tests.clock import FakeClock
from tests.smtp_server import SmtpServer
from tests.test_email_fallback import open_chat, start
from tests.world import new_org, support_desk
from tests.ws import Subscriber

EVENTS = "subscription Inbox { conversationEvents { kind conversation { id } } }"


async def scrape(server, token: str | None = None) -> dict[tuple[str, tuple], float]:
    """Every sample as {(name, sorted labels): value}."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await server.http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def moved(before, after, name: str, **labels) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def until(server, check, timeout_s: float = 5.0):
    """Scrapes until ``check(samples)`` holds; the samples that satisfied it."""
    deadline = time.monotonic() + timeout_s
    while True:
        samples = await scrape(server)
        if check(samples):
            return samples
        assert time.monotonic() < deadline, "metrics did not move as expected"
        await asyncio.sleep(0.05)


async def test_scrape_shows_what_users_just_did(server):
    org, team, (alice,), channel = await support_desk(server, "alice")
    before = await scrape(server)
    assert value(before, "imbrace_websocket_connections") == 0
    assert value(before, "imbrace_active_subscriptions") == 0

    async with Subscriber(server.ws_url, alice.token) as subscriber:
        await subscriber.subscribe(EVENTS)
        opened = await until(server, lambda s: value(s, "imbrace_active_subscriptions") == 1)
        assert value(opened, "imbrace_websocket_connections") == 1
        await server.subscribed(1)

        receipt = await org.customer_writes(channel, "cust-1", "Hello?")
        event = (await subscriber.next_data())["conversationEvents"]
        assert event["conversation"]["id"] == receipt["conversationId"]

        await org.gql("query Inbox { conversations(first: 5) { totalCount } }", as_=alice)
        refused = await org.gql("""mutation NewTeam { createTeam(input: {name: "", mode: COLLABORATION}) {
            team { id } errors { code } } }""")
        assert refused["createTeam"]["errors"], refused
        wrong = await server.gql("""mutation SignIn { login(input: {email: "nobody@example.com", password: "x"}) {
            token errors { code } } }""")
        assert wrong["login"]["errors"] == [{"code": "INVALID_CREDENTIALS"}]
        during = await scrape(server)

    assert moved(before, during, "imbrace_graphql_requests_total", operation="Inbox", outcome="ok") == 1
    assert moved(before, during, "imbrace_graphql_requests_total", operation="NewTeam", outcome="user_errors") == 1
    # Anyone can send a login, so its name is not trusted as a label.
    assert (
        moved(before, during, "imbrace_graphql_requests_total", operation="unauthenticated", outcome="user_errors") == 1
    )
    assert value(during, "imbrace_graphql_requests_total", operation="SignIn", outcome="user_errors") == 0
    assert moved(before, during, "imbrace_graphql_request_duration_seconds_count", operation="Inbox") == 1
    assert value(during, "imbrace_graphql_request_duration_seconds_sum", operation="Inbox") > 0

    assert moved(before, during, "imbrace_login_refusals_total", reason="invalid_credentials") == 1
    assert value(during, "imbrace_login_refusals_total", reason="too_many_attempts") == 0

    assert (
        moved(
            before,
            during,
            "imbrace_http_request_duration_seconds_count",
            route="/channels/{channel_id}/inbound",
            status="202",
        )
        == 1
    )
    assert moved(before, during, "imbrace_events_published_total", kind="CREATED") == 1
    assert moved(before, during, "imbrace_events_delivered_total") >= 1

    closed = await until(server, lambda s: value(s, "imbrace_websocket_connections") == 0)
    assert value(closed, "imbrace_active_subscriptions") == 0


async def test_operation_labels_stay_bounded_whatever_clients_send(server, monkeypatch):
    monkeypatch.setattr(api.metrics, "MAX_OPERATION_NAMES", 3)
    org = await new_org(server)
    for n in range(6):
        await org.gql(f"query Named{n} {{ me {{ id }} }}")
    await org.gql("{ me { id } }")
    invalid = await org.gql("query Probe { noSuchField }", expect_errors=True)
    assert invalid["errors"]
    for n in range(3):
        await server.gql(f"query Stranger{n} {{ __typename }}")
    samples = await scrape(server)

    operations = {dict(labels)["operation"] for (name, labels) in samples if name == "imbrace_graphql_requests_total"}
    assert operations == {"Named0", "Named1", "Named2", "other", "anonymous", "invalid", "unauthenticated"}
    assert value(samples, "imbrace_graphql_requests_total", operation="other", outcome="ok") == 3
    assert value(samples, "imbrace_graphql_requests_total", operation="invalid", outcome="error") == 1


async def test_failed_email_delivery_and_outbox_depth(make_server):
    smtp = await SmtpServer().start()
    try:
        server = await start(make_server, smtp, email_max_attempts=2)
        smtp.handler.fail_all = "451 4.7.1 Mailbox temporarily unavailable"
        org = await new_org(server)
        chat = await open_chat(org)
        message = await chat.reply("Are you there?")
        await chat.wait_delivery(message["id"], "FAILED")
        samples = await scrape(server)
        assert value(samples, "imbrace_delivery_failures_total", transport="email") == 1
        assert value(samples, "imbrace_outbox_queue_depth", transport="email") == 0
    finally:
        await smtp.stop()


async def test_queued_email_counts_in_the_outbox_depth(make_server):
    server = await make_server()
    await server.app.state.runtime.delivery.stop()  # nothing sends: the reply stays queued
    org = await new_org(server)
    chat = await open_chat(org)
    await chat.reply("Are you there?")
    samples = await scrape(server)
    assert value(samples, "imbrace_outbox_queue_depth", transport="email") == 1


async def test_sweeper_reports_when_it_last_swept_and_how_late_it_is(make_server):
    clock = FakeClock()
    server = await make_server(clock=clock)
    samples = await until(server, lambda s: value(s, "imbrace_sweeper_last_success_timestamp_seconds") > 0)
    assert abs(value(samples, "imbrace_sweeper_last_success_timestamp_seconds") - time.time()) < 5
    assert value(samples, "imbrace_sweeper_lag_seconds") == 0

    await server.app.state.runtime.sweeper.stop()  # a stuck sweeper: a waiting customer's transition goes late
    org, team, _, channel = await support_desk(server, "alice")
    await org.customer_writes(channel, "cust-1", "Hello?")
    clock.advance(server.settings.thresholds.soon_after_s + 2)  # SOON_TO_BE has been due for 2 s
    late = await until(server, lambda s: value(s, "imbrace_sweeper_lag_seconds") > 0.5)
    assert value(late, "imbrace_sweeper_lag_seconds") < 8


async def test_production_needs_the_metrics_token(make_server):
    hidden = await make_server(env="production")
    assert (await hidden.http.get("/metrics")).status_code == 404
    assert (await hidden.http.get("/metrics", headers={"Authorization": "Bearer guess"})).status_code == 404

    guarded = await make_server(env="production", metrics_token="s3cret-token")
    assert (await guarded.http.get("/metrics")).status_code == 401
    wrong = await guarded.http.get("/metrics", headers={"Authorization": "Bearer s3cret-tokeN"})
    assert wrong.status_code == 401 and "imbrace_" not in wrong.text
    samples = await scrape(guarded, token="s3cret-token")
    assert ("imbrace_websocket_connections", ()) in samples


async def test_metrics_can_be_turned_off(make_server):
    server = await make_server(metrics=False)
    assert (await server.http.get("/metrics")).status_code == 404
    assert (await server.http.get("/healthz")).status_code == 200


def test_settings_read_from_the_environment(monkeypatch):
    monkeypatch.delenv("IMBRACE_METRICS", raising=False)
    monkeypatch.delenv("IMBRACE_METRICS_TOKEN", raising=False)
    defaults = Settings.from_env()
    assert defaults.metrics is True and defaults.metrics_token is None
    monkeypatch.setenv("IMBRACE_METRICS", "false")
    monkeypatch.setenv("IMBRACE_METRICS_TOKEN", "abc")
    configured = Settings.from_env()
    assert configured.metrics is False and configured.metrics_token == "abc"


async def test_each_server_counts_only_its_own_requests(make_server):
    first, second = await make_server(), await make_server()
    await first.gql("query Ping { __typename }")
    assert value(await scrape(first), "imbrace_graphql_requests_total", operation="unauthenticated", outcome="ok") == 1
    assert value(await scrape(second), "imbrace_graphql_requests_total", operation="unauthenticated", outcome="ok") == 0
