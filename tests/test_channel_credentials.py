"""Provider credentials: connected and replaced through the API, encrypted at rest, never readable.

Against a real server: what the API answers, what the database holds and what the
logs say are all searched for every secret given.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import stat

import bson
import pytest
from graphql import GraphQLList, GraphQLNonNull, GraphQLObjectType

from api.channels.credentials import ChannelCredentials, associated
from api.graphql.schema import build_schema
from api.secrets import KEY_FILE, SecretBox, SecretError, load_secret_key, parse_key
from api.settings import Settings, SettingsError
from domain.credentials import WhatsAppCredentials, hints
from tests.conftest import TEST_SECRET_KEY, Server, drop_databases, make_settings
from tests.world import Org, new_org

PUBLIC_URL = "https://inbox.example.com/"

WHATSAPP = {
    "phoneNumberId": "106540352242922",
    "accessToken": "EAAGwaAccessTokenSECRET0123456789abcdefWA1x",
    "appSecret": "waAppSecretSECRET0123456789abcdef9a8b",
    "verifyToken": "waVerifyTokenSECRET-handshake-7c6d",
}
MESSENGER = {
    "pageId": "112233445566778",
    "pageAccessToken": "EAAGfbPageTokenSECRET0123456789abcdefFB2y",
    "appSecret": "fbAppSecretSECRET0123456789abcdef5e4f",
    "verifyToken": "fbVerifyTokenSECRET-handshake-3a2b",
}
NEW_WHATSAPP = {
    "phoneNumberId": "106540352242999",
    "accessToken": "EAAGrotatedAccessTokenSECRET98765432zz9Q",
    "appSecret": "rotatedAppSecretSECRET98765432abcdef7Rr7",
    "verifyToken": "rotatedVerifyTokenSECRET-handshake-0k0K",
}
SECRET_FIELDS = ("accessToken", "pageAccessToken", "appSecret", "verifyToken")


def secrets_of(*credentials: dict) -> list[str]:
    return [value for given in credentials for name, value in given.items() if name in SECRET_FIELDS]


def selection(type_: GraphQLObjectType, depth: int = 0) -> str:
    """Every field of ``type_`` (and of the object types under it), as a GraphQL selection."""
    fields = []
    for name, field in type_.fields.items():
        inner = field.type
        while isinstance(inner, (GraphQLNonNull, GraphQLList)):
            inner = inner.of_type
        if isinstance(inner, GraphQLObjectType):
            if depth < 2:
                fields.append(f"{name} {selection(inner, depth + 1)}")
        elif not field.args:
            fields.append(name)
    return "{ " + " ".join(fields) + " }"


SCHEMA = build_schema(Settings())._schema
CHANNEL = selection(SCHEMA.get_type("Channel"))
CONNECT = f"""mutation($i: ConnectChannelInput!) {{ connectChannel(input: $i) {{
    channel {CHANNEL} ingestKey webhookUrl errors {{ code message field }} }} }}"""
UPDATE = f"""mutation($i: UpdateChannelCredentialsInput!) {{ updateChannelCredentials(input: $i) {{
    channel {CHANNEL} webhookUrl errors {{ code message field }} }} }}"""
CHANNELS = f"{{ channels {CHANNEL} }}"


async def connect(org: Org, team: str, type_: str, credentials: dict | None, as_=None, name: str = "Meta") -> dict:
    value = {"type": type_, "name": name, "teamId": team}
    if credentials is not None:
        value["credentials"] = credentials
    return (await org.gql(CONNECT, {"i": value}, as_=as_))["connectChannel"]


async def update(org: Org, channel_id: str, credentials: dict, as_=None) -> dict:
    data = await org.gql(UPDATE, {"i": {"channelId": channel_id, "credentials": credentials}}, as_=as_)
    return data["updateChannelCredentials"]


async def stored_channels(server) -> list[dict]:
    return [doc async for doc in server.db.channels.find({}).sort("_id", 1)]


def clear_text(doc: dict) -> str:
    """Everything a document holds, as BSON bytes (decoded leniently) and as JSON."""
    return bson.encode(doc).decode("latin-1") + json.dumps(doc, default=str)


def open_token(doc: dict, key: str = TEST_SECRET_KEY) -> dict:
    return json.loads(SecretBox(parse_key(key)).decrypt(doc["credentials"], associated(doc["_id"])))


@pytest.fixture
async def meta(make_server):
    server = await make_server(public_url=PUBLIC_URL)
    org = await new_org(server)
    return server, org, await org.team("Support")


# -- connecting -------------------------------------------------------------------------------------------------


async def test_connecting_returns_the_webhook_url_and_only_hints(meta, caplog):
    caplog.set_level(logging.DEBUG)
    server, org, team = meta
    whatsapp = await connect(org, team, "WHATSAPP", {"whatsapp": WHATSAPP})
    messenger = await connect(org, team, "FACEBOOK", {"messenger": MESSENGER})
    assert whatsapp["errors"] == messenger["errors"] == []
    wa, fb = whatsapp["channel"], messenger["channel"]
    assert whatsapp["webhookUrl"] == wa["webhookUrl"] == f"https://inbox.example.com/webhooks/whatsapp/{wa['id']}"
    assert messenger["webhookUrl"] == fb["webhookUrl"] == f"https://inbox.example.com/webhooks/messenger/{fb['id']}"
    assert wa["credentials"] == {
        "phoneNumberId": WHATSAPP["phoneNumberId"],
        "accessToken": "…" + WHATSAPP["accessToken"][-4:],
        "appSecret": "…" + WHATSAPP["appSecret"][-4:],
        "verifyToken": "…" + WHATSAPP["verifyToken"][-4:],
        "pageId": None,
        "pageAccessToken": None,
        "channelSecret": None,
        "channelAccessToken": None,
        "appId": None,
        "token": None,
    }
    assert fb["credentials"] == {
        "pageId": MESSENGER["pageId"],
        "pageAccessToken": "…" + MESSENGER["pageAccessToken"][-4:],
        "appSecret": "…" + MESSENGER["appSecret"][-4:],
        "verifyToken": "…" + MESSENGER["verifyToken"][-4:],
        "phoneNumberId": None,
        "accessToken": None,
        "channelSecret": None,
        "channelAccessToken": None,
        "appId": None,
        "token": None,
    }
    # every field of every channel, read back by the owner: not one secret
    answered = json.dumps([whatsapp, messenger, await org.gql(CHANNELS)])
    for secret in secrets_of(WHATSAPP, MESSENGER):
        assert secret not in answered and secret[:-4] not in answered
    assert not [s for s in secrets_of(WHATSAPP, MESSENGER) if s in caplog.text]


async def test_a_channel_without_credentials_keeps_the_generic_webhook(meta):
    server, org, team = meta
    payload = await connect(org, team, "WEB_WIDGET", None, name="Site")
    assert payload["errors"] == [] and payload["webhookUrl"] is None
    assert payload["channel"]["credentials"] is None and payload["channel"]["webhookUrl"] is None
    # a WhatsApp channel may start without them too: its URL is known, its hints are not
    bare = await connect(org, team, "WHATSAPP", None)
    assert bare["webhookUrl"].endswith(f"/webhooks/whatsapp/{bare['channel']['id']}")
    assert bare["channel"]["credentials"] is None
    for channel in (payload, bare):
        response = await server.inbound(
            channel["channel"]["id"], channel["ingestKey"], {"customer": {"externalId": "c1"}, "text": "Hi"}
        )
        assert response.status_code == 202, response.text
    docs = await stored_channels(server)
    assert all("credentials" not in doc and "credential_hints" not in doc for doc in docs)
    assert await server.services.credentials.load(bare["channel"]["id"]) is not None
    channel, credentials = await server.services.credentials.load(bare["channel"]["id"])
    assert channel.id == bare["channel"]["id"] and credentials is None
    assert await server.services.credentials.load("0" * 24) is None


async def test_only_owners_and_admins_see_the_hints(meta):
    server, org, team = meta
    wa = (await connect(org, team, "WHATSAPP", {"whatsapp": WHATSAPP}))["channel"]
    admin, agent = await org.member("admin", "ADMIN"), await org.member("agent")
    by_admin = await org.gql(CHANNELS, as_=admin)
    by_agent = await org.gql(CHANNELS, as_=agent)
    assert by_admin["channels"][0]["credentials"]["accessToken"] == "…" + WHATSAPP["accessToken"][-4:]
    assert by_agent["channels"] == [{**by_admin["channels"][0], "credentials": None}]
    assert by_agent["channels"][0]["webhookUrl"] == wa["webhookUrl"]


# -- at rest ----------------------------------------------------------------------------------------------------


async def test_the_database_holds_no_secret_in_clear_and_the_key_opens_it(meta):
    server, org, team = meta
    wa = (await connect(org, team, "WHATSAPP", {"whatsapp": WHATSAPP}))["channel"]
    fb = (await connect(org, team, "FACEBOOK", {"messenger": MESSENGER}))["channel"]
    docs = {doc["_id"]: doc for doc in await stored_channels(server)}
    for doc in docs.values():
        text = clear_text(doc)
        for secret in secrets_of(WHATSAPP, MESSENGER):
            assert secret not in text and secret[:-4] not in text
        assert doc["credentials"].startswith("v1.")
    assert open_token(docs[wa["id"]]) == {
        "phone_number_id": WHATSAPP["phoneNumberId"],
        "access_token": WHATSAPP["accessToken"],
        "app_secret": WHATSAPP["appSecret"],
        "verify_token": WHATSAPP["verifyToken"],
    }
    assert open_token(docs[fb["id"]])["page_access_token"] == MESSENGER["pageAccessToken"]
    assert docs[wa["id"]]["credential_hints"]["access_token"] == "…" + WHATSAPP["accessToken"][-4:]
    channel, credentials = await server.services.credentials.load(wa["id"])
    assert channel.credential_hints == docs[wa["id"]]["credential_hints"]
    assert credentials == WhatsAppCredentials(
        WHATSAPP["phoneNumberId"], WHATSAPP["accessToken"], WHATSAPP["appSecret"], WHATSAPP["verifyToken"]
    )


async def test_another_key_cannot_open_them(meta):
    server, org, team = meta
    wa = (await connect(org, team, "WHATSAPP", {"whatsapp": WHATSAPP}))["channel"]
    other_key = base64.b64encode(os.urandom(32)).decode()
    (doc,) = await stored_channels(server)
    with pytest.raises(SecretError, match="IMBRACE_SECRET_KEY is not the key"):
        open_token(doc, other_key)
    elsewhere = ChannelCredentials(server.services.store, SecretBox(parse_key(other_key)))
    with pytest.raises(SecretError, match=f"channel {wa['id']}'s credentials") as refused:
        await elsewhere.load(wa["id"])
    assert not [s for s in secrets_of(WHATSAPP) if s in str(refused.value)]


async def test_a_token_moved_onto_another_channel_does_not_open(meta):
    server, org, team = meta
    wa = (await connect(org, team, "WHATSAPP", {"whatsapp": WHATSAPP}))["channel"]
    other = (await connect(org, team, "WHATSAPP", {"whatsapp": NEW_WHATSAPP}, name="Other"))["channel"]
    token = (await server.db.channels.find_one({"_id": wa["id"]}))["credentials"]
    await server.db.channels.update_one({"_id": other["id"]}, {"$set": {"credentials": token}})
    with pytest.raises(SecretError, match=f"channel {other['id']}'s credentials"):
        await server.services.credentials.load(other["id"])
    tampered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    with pytest.raises(SecretError):
        SecretBox(parse_key(TEST_SECRET_KEY)).decrypt(tampered, associated(wa["id"]))


# -- replacing --------------------------------------------------------------------------------------------------


async def test_update_replaces_them(meta, caplog):
    caplog.set_level(logging.DEBUG)
    server, org, team = meta
    wa = (await connect(org, team, "WHATSAPP", {"whatsapp": WHATSAPP}))["channel"]
    before, _ = await server.services.credentials.load(wa["id"])  # now in the store's short cache
    assert before.credential_hints["access_token"].endswith(WHATSAPP["accessToken"][-4:])
    payload = await update(org, wa["id"], {"whatsapp": NEW_WHATSAPP})
    assert payload["errors"] == []
    assert payload["webhookUrl"] == wa["webhookUrl"]
    assert payload["channel"]["credentials"]["accessToken"] == "…" + NEW_WHATSAPP["accessToken"][-4:]
    assert payload["channel"]["credentials"]["phoneNumberId"] == NEW_WHATSAPP["phoneNumberId"]
    listed = json.dumps(await org.gql(CHANNELS))
    assert WHATSAPP["accessToken"][-4:] not in listed and WHATSAPP["phoneNumberId"] not in listed
    (doc,) = await stored_channels(server)
    assert open_token(doc)["access_token"] == NEW_WHATSAPP["accessToken"]
    assert not [s for s in secrets_of(WHATSAPP, NEW_WHATSAPP) if s in clear_text(doc)]
    _, credentials = await server.services.credentials.load(wa["id"])  # this process forgot the old ones
    assert credentials.access_token == NEW_WHATSAPP["accessToken"]
    answered = json.dumps(payload) + listed
    assert not [s for s in secrets_of(WHATSAPP, NEW_WHATSAPP) if s in answered]
    assert not [s for s in secrets_of(WHATSAPP, NEW_WHATSAPP) if s in caplog.text]


async def test_credentials_can_be_added_to_a_channel_connected_without(meta):
    server, org, team = meta
    fb = (await connect(org, team, "FACEBOOK", None))["channel"]
    payload = await update(org, fb["id"], {"messenger": MESSENGER})
    assert payload["errors"] == [] and payload["channel"]["credentials"]["pageId"] == MESSENGER["pageId"]
    _, credentials = await server.services.credentials.load(fb["id"])
    assert credentials.page_access_token == MESSENGER["pageAccessToken"]


# -- refusals: nothing changes ----------------------------------------------------------------------------------


def with_(base: dict, **changes) -> dict:
    return {**base, **changes}


CONNECT_REFUSALS = [
    ("WHATSAPP", {"whatsapp": with_(WHATSAPP, accessToken="")}, "credentials.accessToken"),
    ("WHATSAPP", {"whatsapp": with_(WHATSAPP, accessToken="   ")}, "credentials.accessToken"),
    ("WHATSAPP", {"whatsapp": with_(WHATSAPP, appSecret="abc\ndef-and-more")}, "credentials.appSecret"),
    ("WHATSAPP", {"whatsapp": with_(WHATSAPP, verifyToken="tab\there")}, "credentials.verifyToken"),
    ("WHATSAPP", {"whatsapp": with_(WHATSAPP, accessToken="x" * 2001)}, "credentials.accessToken"),
    ("WHATSAPP", {"whatsapp": with_(WHATSAPP, phoneNumberId="+1 555 0100")}, "credentials.phoneNumberId"),
    ("FACEBOOK", {"messenger": with_(MESSENGER, pageAccessToken="")}, "credentials.pageAccessToken"),
    ("FACEBOOK", {"messenger": with_(MESSENGER, pageId="my-page")}, "credentials.pageId"),
    ("WHATSAPP", {"whatsapp": WHATSAPP, "messenger": MESSENGER}, "credentials"),
    ("WHATSAPP", {}, "credentials"),
    ("WHATSAPP", {"whatsapp": None, "messenger": None}, "credentials"),
    ("WHATSAPP", {"messenger": MESSENGER}, "credentials"),
    ("FACEBOOK", {"whatsapp": WHATSAPP}, "credentials"),
    ("WEB_WIDGET", {"whatsapp": WHATSAPP}, "credentials"),
    ("LINE", {"messenger": MESSENGER}, "credentials"),
]


@pytest.mark.parametrize("type_, credentials, field", CONNECT_REFUSALS)
async def test_connect_refuses_bad_credentials_and_writes_nothing(meta, caplog, type_, credentials, field):
    caplog.set_level(logging.DEBUG)
    server, org, team = meta
    payload = await connect(org, team, type_, credentials)
    assert payload["channel"] is None and payload["ingestKey"] is None and payload["webhookUrl"] is None
    (error,) = payload["errors"]
    assert (error["code"], error["field"]) == ("INVALID_INPUT", field), error
    assert await stored_channels(server) == []
    assert not [s for s in secrets_of(WHATSAPP, MESSENGER) if s in error["message"] or s in caplog.text]


@pytest.mark.parametrize("type_, credentials, field", CONNECT_REFUSALS)
async def test_update_refuses_bad_credentials_and_changes_nothing(meta, type_, credentials, field):
    server, org, team = meta
    if type_ not in ("WHATSAPP", "FACEBOOK"):
        type_ = "WHATSAPP" if "messenger" in credentials else "FACEBOOK"  # the wrong provider for the channel
    given = {"whatsapp": WHATSAPP} if type_ == "WHATSAPP" else {"messenger": MESSENGER}
    channel = (await connect(org, team, type_, given))["channel"]
    before = await stored_channels(server)
    payload = await update(org, channel["id"], credentials)
    assert payload["channel"] is None and payload["webhookUrl"] is None
    (error,) = payload["errors"]
    assert (error["code"], error["field"]) == ("INVALID_INPUT", field), error
    assert await stored_channels(server) == before


async def test_a_missing_credential_field_is_refused_by_the_schema(meta, caplog):
    """Every member's fields are non-null: leaving one out fails validation, before anything runs."""
    caplog.set_level(logging.DEBUG)
    server, org, team = meta
    partial = {k: v for k, v in WHATSAPP.items() if k != "accessToken"}
    body = await org.gql(
        CONNECT,
        {"i": {"type": "WHATSAPP", "name": "Meta", "teamId": team, "credentials": {"whatsapp": partial}}},
        expect_errors=True,
    )
    assert body.get("data") is None and "accessToken" in body["errors"][0]["message"]
    assert await stored_channels(server) == []
    assert not [s for s in secrets_of(WHATSAPP) if s in caplog.text]


async def test_only_owners_and_admins_connect_or_replace_credentials(meta):
    server, org, team = meta
    wa = (await connect(org, team, "WHATSAPP", {"whatsapp": WHATSAPP}))["channel"]
    agent = await org.member("agent")
    await org.add(team, agent, "ADMIN")  # a team admin is still not an organization admin
    before = await stored_channels(server)
    refused = await connect(org, team, "FACEBOOK", {"messenger": MESSENGER}, as_=agent)
    assert [e["code"] for e in refused["errors"]] == ["FORBIDDEN"] and refused["channel"] is None
    replaced = await update(org, wa["id"], {"whatsapp": NEW_WHATSAPP}, as_=agent)
    assert [e["code"] for e in replaced["errors"]] == ["FORBIDDEN"] and replaced["channel"] is None
    assert await stored_channels(server) == before
    admin = await org.member("admin", "ADMIN")
    assert (await update(org, wa["id"], {"whatsapp": NEW_WHATSAPP}, as_=admin))["errors"] == []


async def test_another_organizations_channel_is_not_found(meta):
    server, org, team = meta
    wa = (await connect(org, team, "WHATSAPP", {"whatsapp": WHATSAPP}))["channel"]
    stranger = await new_org(server, "Rival")
    before = await stored_channels(server)
    for channel_id in (wa["id"], "0" * 24, "not-an-id"):
        payload = await update(stranger, channel_id, {"whatsapp": NEW_WHATSAPP})
        assert [(e["code"], e["field"]) for e in payload["errors"]] == [("NOT_FOUND", "channelId")], channel_id
    assert await stored_channels(server) == before


# -- the key ----------------------------------------------------------------------------------------------------


def test_secret_box_round_trip_and_token_format():
    box = SecretBox(os.urandom(32))
    first, second = box.encrypt(b"hello", b"channel-1"), box.encrypt(b"hello", b"channel-1")
    assert first.startswith("v1.") and first != second  # a fresh nonce each time
    assert "=" not in first and "+" not in first and "/" not in first
    assert box.decrypt(first, b"channel-1") == box.decrypt(second, b"channel-1") == b"hello"
    assert len(base64.urlsafe_b64decode(first[3:] + "=" * (-len(first[3:]) % 4))) == 12 + 5 + 16
    assert "key" in repr(box) and "hidden" in repr(box)


@pytest.mark.parametrize(
    "token",
    ["", "v1.", "v2.AAAA", "AAAA", "v1.!!!!", "v1." + "A" * 20, None],
)
def test_secret_box_refuses_what_is_not_its_token(token):
    box = SecretBox(os.urandom(32))
    with pytest.raises(SecretError):
        box.decrypt(token, b"x")


def test_secret_box_refuses_wrong_key_tampering_and_other_associated_data():
    key = os.urandom(32)
    token = SecretBox(key).encrypt(b"secret", b"channel-1")
    with pytest.raises(SecretError, match="not the key it was encrypted with"):
        SecretBox(os.urandom(32)).decrypt(token, b"channel-1")
    with pytest.raises(SecretError):
        SecretBox(key).decrypt(token, b"channel-2")
    body = bytearray(base64.urlsafe_b64decode(token[3:] + "=" * (-len(token[3:]) % 4)))
    body[14] ^= 1
    with pytest.raises(SecretError):
        SecretBox(key).decrypt("v1." + base64.urlsafe_b64encode(bytes(body)).decode(), b"channel-1")


def test_the_key_is_32_bytes_in_base64_or_base64url():
    key = bytes(range(250, 256)) + os.urandom(26)  # bytes that differ between the two alphabets
    for written in (
        base64.b64encode(key).decode(),
        base64.urlsafe_b64encode(key).decode(),
        base64.urlsafe_b64encode(key).decode().rstrip("="),
        f"  {base64.b64encode(key).decode()}\n",
    ):
        assert parse_key(written) == key


@pytest.mark.parametrize(
    "raw",
    [
        "too-short",
        base64.b64encode(os.urandom(16)).decode(),
        base64.b64encode(os.urandom(48)).decode(),
        os.urandom(32).hex(),  # hex is not base64 of 32 bytes
        "not base64 at all, with spaces!",
    ],
    ids=["too-short", "16-bytes", "48-bytes", "hex", "not-base64"],  # stable ids: the keys are random
)
def test_a_malformed_key_is_refused_naming_the_setting(monkeypatch, raw):
    with pytest.raises(SettingsError, match="IMBRACE_SECRET_KEY") as refused:
        parse_key(raw)
    assert raw.strip() not in str(refused.value)
    monkeypatch.setenv("IMBRACE_SECRET_KEY", raw)
    with pytest.raises(SettingsError, match="IMBRACE_SECRET_KEY"):
        Settings.from_env()


def test_production_refuses_to_start_without_a_key(monkeypatch, tmp_path):
    monkeypatch.delenv("IMBRACE_SECRET_KEY", raising=False)
    monkeypatch.setenv("IMBRACE_ENV", "production")
    with pytest.raises(SettingsError, match="IMBRACE_SECRET_KEY must be set in production"):
        Settings.from_env()
    with pytest.raises(SettingsError, match="IMBRACE_SECRET_KEY"):
        load_secret_key(None, tmp_path, production=True)
    assert not (tmp_path / KEY_FILE).exists()
    monkeypatch.setenv("IMBRACE_SECRET_KEY", TEST_SECRET_KEY)
    assert Settings.from_env().secret_key == TEST_SECRET_KEY


def test_development_generates_the_key_once_with_mode_0600(tmp_path, caplog):
    data_dir = tmp_path / "data"
    first = load_secret_key(None, data_dir, production=False)
    path = data_dir / KEY_FILE
    assert len(first) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "IMBRACE_SECRET_KEY is not set" in caplog.text
    assert load_secret_key(None, data_dir, production=False) == first
    assert [p.name for p in data_dir.iterdir()] == [KEY_FILE]  # no temporary file left behind
    assert load_secret_key(TEST_SECRET_KEY, data_dir, production=False) == parse_key(TEST_SECRET_KEY)
    path.write_text("damaged")
    with pytest.raises(SettingsError, match=KEY_FILE):
        load_secret_key(None, data_dir, production=False)


async def test_the_generated_key_survives_a_restart(mongo_uri, tmp_path):
    settings = make_settings(mongo_uri, tmp_path, secret_key=None)
    first = await Server(settings).start()
    try:
        org = await new_org(first)
        wa = (await connect(org, await org.team("Support"), "WHATSAPP", {"whatsapp": WHATSAPP}))["channel"]
    finally:
        await first.stop()
    key_file = tmp_path / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    generated = key_file.read_text()
    again = await Server(settings).start()
    try:
        _, credentials = await again.services.credentials.load(wa["id"])
        assert credentials.access_token == WHATSAPP["accessToken"]
        assert key_file.read_text() == generated
    finally:
        await again.stop()
        await drop_databases(mongo_uri, {settings.database})


def test_hints_never_give_away_a_short_secret():
    short = WhatsAppCredentials("123", "short-token", "tiny", "abcd")
    assert hints(short) == {"phone_number_id": "123", "access_token": "…", "app_secret": "…", "verify_token": "…"}
