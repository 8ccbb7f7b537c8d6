"""The ``imbrace`` command: serve, init, export-schema."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys

from api.settings import Settings, SettingsError

log = logging.getLogger("imbrace")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imbrace", description="iMBrace Conversations API server.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="Run the server (embedded MongoDB unless MONGODB_URI is set).")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)

    init = commands.add_parser("init", help="Create an organization and its owner.")
    init.add_argument("--org", required=True)
    init.add_argument("--email", required=True)
    init.add_argument("--password", required=True)
    init.add_argument("--name", default=None)

    export = commands.add_parser("export-schema", help="Print the GraphQL schema (SDL).")
    export.add_argument(
        "--widget", action="store_true", help="The web widget visitors' schema (/widget/graphql) instead."
    )

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "serve":
            return serve_command(args.host, args.port)
        if args.command == "init":
            return asyncio.run(init_command(args.org, args.email, args.password, args.name))
    except SettingsError as error:  # an operator's typo: one line naming the setting, no traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(export_widget_schema() if getattr(args, "widget", False) else export_schema())
    return 0


def serve_command(host: str, port: int) -> int:
    """Starts the embedded database before uvicorn, so that a data directory held by another
    live server is refused with one line rather than a failed-lifespan traceback."""
    import uvicorn

    from api.app import create_app
    from api.embedded import DataDirInUse, EmbeddedMongo

    settings = Settings.from_env()
    log.info("data directory: %s", settings.data_dir.absolute())
    embedded = None
    if settings.mongodb_uri is None:
        try:
            embedded = EmbeddedMongo(settings.data_dir).start()
        except DataDirInUse as in_use:
            print(f"error: {in_use}. Stop it first, or set IMBRACE_DATA_DIR to another directory.", file=sys.stderr)
            return 1
    try:
        app = create_app(settings, embedded=embedded, setup_hint=True)
        tune_garbage_collector()
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="info",
            ws="websockets-sansio",
            ws_per_message_deflate=settings.ws_compression,
            proxy_headers=False,
            timeout_graceful_shutdown=10,
        )
    finally:
        if embedded is not None:  # uvicorn never ran the lifespan, e.g. its port was taken
            embedded.stop()
    return 0


def tune_garbage_collector() -> None:
    """Collect the young generation less often, and never rescan what start-up created.

    A server holding thousands of WebSocket subscribers keeps hundreds of
    thousands of long-lived objects; with CPython's default threshold (700
    allocations) the collector walks them over and over while events are fanned
    out. Measured with bench fan-out at 5,000 subscribers: 6.9 -> 10.9 events/s and
    p99 2.0 s -> 0.54 s on the same busy machine (bench/results/NOTES.md).
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


async def init_command(org: str, email: str, password: str, name: str | None) -> int:
    from api.app import Runtime
    from api.embedded import DataDirInUse
    from domain.errors import Refused
    from domain.usecases.onboarding import create_organization

    settings = Settings.from_env()
    log.info("data directory: %s", settings.data_dir.absolute())
    runtime = Runtime(settings)
    try:
        services = await runtime.start(workers=False, share_embedded=True)
    except DataDirInUse as in_use:
        print(f"error: {in_use}", file=sys.stderr)
        await runtime.stop()
        return 1
    try:
        organization, owner = await create_organization(
            services.store, services.passwords, org, email, password, name, services.clock()
        )
    except Refused as refused:
        print(f"error: {refused.message}", file=sys.stderr)
        return 1
    finally:
        await runtime.stop()
    where = f" in the data directory {settings.data_dir.absolute()}" if settings.mongodb_uri is None else ""
    print(
        f"Created organization {organization.name!r} ({organization.id}) with owner {owner.email} ({owner.id}){where}."
    )
    return 0


def export_schema() -> str:
    from api.graphql.schema import build_schema

    return build_schema(Settings()).as_str()


def export_widget_schema() -> str:
    from api.widget.view import build_widget_schema

    return build_widget_schema(Settings()).as_str()


if __name__ == "__main__":
    sys.exit(main())
