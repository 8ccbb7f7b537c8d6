"""The ``imbrace`` command: serve, init, export-schema."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from api.settings import Settings


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

    commands.add_parser("export-schema", help="Print the GraphQL schema (SDL).")

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "serve":
        return serve_command(args.host, args.port)
    if args.command == "init":
        return asyncio.run(init_command(args.org, args.email, args.password, args.name))
    print(export_schema())
    return 0


def serve_command(host: str, port: int) -> int:
    import uvicorn

    from api.app import create_app

    uvicorn.run(create_app(Settings.from_env()), host=host, port=port, log_level="info", ws="websockets-sansio",
                proxy_headers=False, timeout_graceful_shutdown=10)
    return 0


async def init_command(org: str, email: str, password: str, name: str | None) -> int:
    from api.app import Runtime
    from domain.errors import Refused
    from domain.usecases.onboarding import create_organization

    runtime = Runtime(Settings.from_env())
    services = await runtime.start(workers=False)
    try:
        organization, owner = await create_organization(services.store, services.passwords, org, email, password,
                                                        name, services.clock())
    except Refused as refused:
        print(f"error: {refused.message}", file=sys.stderr)
        return 1
    finally:
        await runtime.stop()
    print(f"Created organization {organization.name!r} ({organization.id}) with owner {owner.email} ({owner.id}).")
    return 0


def export_schema() -> str:
    from api.graphql.schema import build_schema

    return build_schema(Settings()).as_str()


if __name__ == "__main__":
    sys.exit(main())
