"""The floors: bare Starlette routes, no GraphQL, for the conversation page and for inbound.

It issues the same MongoDB commands as ``conversations(first: 50)`` with
customer, team, channel, representatives, owner and lastMessage selected,
through the same driver (PyMongo async), and answers similar JSON:

1. the ``load_viewer`` aggregation (members + $lookup teams) for the caller,
2. the conversations ``find`` with the same filter (``domain.listing.list_criteria``
   compiled by ``api.store.query.to_mongo``), sort and limit as the lister's
   (one sorted find per visibility branch, ``ConversationLister.find_sorted``),
3. customers ``$in`` and members ``$in``, concurrently (as the GraphQL DataLoaders
   batch them). ``lastMessage`` is the conversation's own copy of its newest
   message (``last_message``), so no command reads messages.

It authenticates nothing: the caller names the member in ``X-Member`` and ``X-Org``.

``POST /channels/{id}/inbound`` is the inbound floor: the least any design must
do to acknowledge a customer message durably (the channel key checked, the
conversation's next sequence number taken, the message inserted: 2 commands),
with no deduplication, status, event or notification.
Run as its own process: ``python -m bench.floor --port 8123`` with ``MONGODB_URI`` set.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from bson import ObjectId
from pymongo import ReturnDocument
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from api.auth import load_viewer
from api.cli import tune_garbage_collector
from api.services import utc_now
from api.settings import Settings
from api.store import codec
from api.store.database import connect
from api.store.listing import ConversationLister, encode_cursor
from api.store.members import Members
from api.store.query import conjunction, to_mongo
from domain import listing
from domain.status import status_of
from domain.usecases.onboarding import ingest_key_matches


def _iso(value_ms):
    return codec.dt(value_ms).isoformat() if value_ms is not None else None


def create_floor_app(settings: Settings, listeners=None) -> Starlette:
    state: dict = {}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        client = connect(settings.mongodb_uri, listeners)
        state["db"] = client[settings.database]
        try:
            yield
        finally:
            await client.close()

    async def page(request: Request) -> JSONResponse:
        db = state["db"]
        first = int(request.query_params.get("first", 50))
        viewer = await load_viewer(Members(db), request.headers["x-member"], request.headers["x-org"])
        if viewer is None:
            return JSONResponse({"error": "no such member"}, status_code=401)
        now = utc_now()
        criteria = listing.list_criteria(viewer, listing.ConversationFilter(), now, settings.thresholds)
        t0 = codec.ms(now)
        docs = await ConversationLister(db).find_sorted(
            conjunction(to_mongo(criteria), {"last_message_at": {"$lte": t0}}),
            [("last_message_at", -1), ("_id", -1)],
            first + 1,
        )
        page_docs = docs[:first]
        customer_ids = list({d["customer_id"] for d in page_docs})
        member_ids = list(
            {m for d in page_docs for m in d.get("participants", [])}
            | {d["owner_id"] for d in page_docs if d.get("owner_id")}
        )
        customers, members = await asyncio.gather(
            db.customers.find({"_id": {"$in": customer_ids}, "org_id": viewer.org_id}).to_list(),
            db.members.find({"_id": {"$in": member_ids}, "org_id": viewer.org_id}, {"password_hash": 0}).to_list(),
        )
        customers = {c["_id"]: c for c in customers}
        members = {m["_id"]: m for m in members}
        teams = {t.id: t for t in viewer.teams}
        edges = []
        for d in page_docs:
            conversation = codec.conversation(d)
            team = teams.get(d["team_id"])
            customer = customers.get(d["customer_id"])
            message = d.get("last_message")
            owner = members.get(d.get("owner_id")) if d.get("owner_id") else None
            edges.append(
                {
                    "cursor": encode_cursor(
                        {"o": "LAST_ACTIVITY_DESC", "t0": t0, "k": d["last_message_at"], "id": d["_id"], "g": 0}
                    ),
                    "node": {
                        "id": d["_id"],
                        "status": status_of(conversation, now, settings.thresholds).value,
                        "waitingSince": _iso(d.get("waiting_since")),
                        "customer": {
                            "id": customer["_id"],
                            "name": customer.get("name"),
                            "email": customer.get("email"),
                            "phone": customer.get("phone"),
                            "online": (customer.get("online_until") or 0) > t0,
                        }
                        if customer
                        else None,
                        "team": {"id": team.id, "name": team.name, "mode": team.mode.value} if team else None,
                        "channel": {
                            "id": d["channel_id"],
                            "type": d["channel_type"],
                            "name": d.get("channel_name", ""),
                        },
                        "representatives": [
                            {"id": m["_id"], "name": m["name"]}
                            for m in (members.get(p) for p in d.get("participants", []))
                            if m
                        ],
                        "owner": {"id": owner["_id"], "name": owner["name"]} if owner else None,
                        "lastMessage": {
                            "id": message["_id"],
                            "text": message.get("text"),
                            "seq": message["seq"],
                            "createdAt": _iso(message["created_at"]),
                            "kind": message["kind"],
                        }
                        if message
                        else None,
                    },
                }
            )
        return JSONResponse(
            {
                "data": {
                    "conversations": {
                        "edges": edges,
                        "pageInfo": {
                            "hasNextPage": len(docs) > first,
                            "endCursor": edges[-1]["cursor"] if edges else None,
                        },
                    }
                }
            }
        )

    channels: dict[str, dict] = {}
    conversation_ids: dict[tuple[str, str], str] = {}

    async def inbound(request: Request) -> JSONResponse:
        """The least any design must do to acknowledge a customer message durably: take the
        conversation's next sequence number (one findAndModify) and insert the message.
        Channel and customer are remembered per process, as the server does."""
        db = state["db"]
        channel_id = request.path_params["channel_id"]
        channel = channels.get(channel_id)
        if channel is None:
            channel = channels[channel_id] = await db.channels.find_one({"_id": channel_id})
        if channel is None or not ingest_key_matches(request.headers.get("x-channel-key"), channel["ingest_key_hash"]):
            return JSONResponse({"error": "unknown channel or key"}, status_code=401)
        body = await request.json()
        key = (channel_id, body["customer"]["externalId"])
        conversation_id = conversation_ids.get(key)
        if conversation_id is None:
            customer = await db.customers.find_one({"channel_id": key[0], "external_id": key[1]}, {"_id": 1})
            conversation_id = conversation_ids[key] = customer["_id"]
        now = codec.ms(utc_now())
        before = await db.conversations.find_one_and_update(
            {"_id": conversation_id},
            {"$inc": {"message_seq": 1}, "$set": {"last_customer_message_at": now, "last_message_at": now}},
            projection={"message_seq": 1},
            return_document=ReturnDocument.BEFORE,
        )
        message_id = str(ObjectId())
        await db.messages.insert_one(
            {
                "_id": message_id,
                "org_id": channel["org_id"],
                "conversation_id": conversation_id,
                "seq": before["message_seq"] + 1,
                "sender_kind": "CUSTOMER",
                "kind": "TEXT",
                "text": body.get("text"),
                "created_at": now,
                "channel_id": channel_id,
                "provider_key": codec.provider_key(channel_id, body["messageId"]),
            }
        )
        return JSONResponse(
            {"conversationId": conversation_id, "messageId": message_id, "duplicate": False}, status_code=202
        )

    async def healthz(request: Request) -> JSONResponse:
        await state["db"].command("ping")
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/page", page, methods=["GET", "POST"]),
            Route("/channels/{channel_id}/inbound", inbound, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    settings = Settings.from_env()
    assert settings.mongodb_uri, "set MONGODB_URI"
    # the same uvicorn options and GC tuning as `imbrace serve` (access log included), so only the app differs
    app = create_floor_app(settings)
    tune_garbage_collector()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="info", proxy_headers=False)


if __name__ == "__main__":
    main()
