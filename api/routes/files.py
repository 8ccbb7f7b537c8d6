"""Uploaded files: to members who may see their conversation, or through a signed link."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.auth import viewer_from_header
from api.store.files import StoredFile
from domain.enums import ApiKeyScope
from domain.visibility import can_see, has_scope


async def download(request: Request) -> Response:
    """``?expires=&signature=`` (see ``api.signing``) opens that one file without a token;
    anything else needs a member's bearer token, or an API key with READ_CONVERSATIONS."""
    services = request.app.state.services
    file_id = request.path_params["file_id"]
    if "signature" in request.query_params or "expires" in request.query_params:
        return await _signed_download(request, services, file_id)
    viewer = await viewer_from_header(
        services.store, services.tokens, request.headers.get("authorization"), services.api_keys
    )
    if viewer is None:
        return JSONResponse({"error": "Authentication required."}, status_code=401)
    if viewer.app is not None and not has_scope(viewer, ApiKeyScope.READ_CONVERSATIONS):
        return JSONResponse({"error": "This API key's scopes don't include READ_CONVERSATIONS."}, status_code=403)
    info = await services.files.info(file_id)
    conversation = None
    if info is not None and info.org_id == viewer.org_id:
        conversation = await services.store.conversation(viewer.org_id, info.conversation_id or "")
    if conversation is None or not can_see(viewer, conversation):
        return JSONResponse({"error": "No such file."}, status_code=404)
    return await _file_response(services, file_id, info)


async def _signed_download(request: Request, services, file_id: str) -> Response:
    query = request.query_params
    if not services.links.valid(file_id, query.get("expires"), query.get("signature"), services.clock()):
        return JSONResponse({"error": "This link has expired or is not valid."}, status_code=403)
    info = await services.files.info(file_id)
    if info is None:
        return JSONResponse({"error": "No such file."}, status_code=404)
    return await _file_response(services, file_id, info)


async def _file_response(services, file_id: str, info: StoredFile) -> Response:
    data = await services.files.read(file_id)
    if data is None:
        return JSONResponse({"error": "No such file."}, status_code=404)
    filename = (
        "".join(c for c in (info.filename or "file") if c.isascii() and c.isprintable() and c not in '"\\') or "file"
    )
    return Response(
        data,
        media_type=info.content_type or "application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
            "Referrer-Policy": "no-referrer",
        },
    )
