"""Uploaded files, served only to members who may see their conversation."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.auth import viewer_from_header
from domain.visibility import can_see


async def download(request: Request) -> Response:
    services = request.app.state.services
    viewer = await viewer_from_header(services.db, services.tokens, request.headers.get("authorization"))
    if viewer is None:
        return JSONResponse({"error": "Authentication required."}, status_code=401)
    info = await services.files.info(request.path_params["file_id"])
    metadata = (info or {}).get("metadata") or {}
    conversation = None
    if metadata.get("org_id") == viewer.org_id:
        conversation = await services.store.conversation(viewer.org_id, metadata.get("conversation_id", ""))
    if conversation is None or not can_see(viewer, conversation):
        return JSONResponse({"error": "No such file."}, status_code=404)
    data = await services.files.read(request.path_params["file_id"])
    filename = "".join(c for c in (info.get("filename") or "file") if c.isascii() and c.isprintable() and c not in "\"\\") or "file"
    return Response(data, media_type=metadata.get("content_type") or "application/octet-stream", headers={
        "Content-Disposition": f'attachment; filename="{filename}"',
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-store",
    })
