"""Uploaded files, kept in GridFS beside the conversations they belong to."""

from __future__ import annotations

from dataclasses import dataclass

from bson import ObjectId
from bson.errors import InvalidId
from gridfs import AsyncGridFSBucket
from gridfs.errors import NoFile

from domain.entities import Attachment


@dataclass(frozen=True, slots=True)
class StoredFile:
    """What GridFS keeps about an upload: whose conversation it belongs to, and how to serve it."""

    org_id: str | None
    conversation_id: str | None
    filename: str | None
    content_type: str | None


class GridFiles:
    # The default bucket name "fs": nx-27017 maps only fs.files/fs.chunks among dotted collection names.
    def __init__(self, db) -> None:
        self.bucket = AsyncGridFSBucket(db)
        self.db = db

    async def save(
        self, org_id: str, conversation_id: str, filename: str, content_type: str, data: bytes
    ) -> Attachment:
        file_id = await self.bucket.upload_from_stream(
            filename,
            data,
            metadata={"org_id": org_id, "conversation_id": conversation_id, "content_type": content_type},
        )
        return Attachment(
            url=f"/files/{file_id}", mime_type=content_type, name=filename, size=len(data), file_id=str(file_id)
        )

    async def info(self, file_id: str) -> StoredFile | None:
        try:
            oid = ObjectId(file_id)
        except (InvalidId, TypeError):
            return None
        doc = await self.db["fs.files"].find_one({"_id": oid})
        if doc is None:
            return None
        metadata = doc.get("metadata") or {}
        return StoredFile(
            org_id=metadata.get("org_id"),
            conversation_id=metadata.get("conversation_id"),
            filename=doc.get("filename"),
            content_type=metadata.get("content_type"),
        )

    async def read(self, file_id: str) -> bytes | None:
        try:
            stream = await self.bucket.open_download_stream(ObjectId(file_id))
        except (NoFile, InvalidId, TypeError):
            return None
        return await stream.read()
