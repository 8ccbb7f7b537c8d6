"""Uploaded files, kept in GridFS beside the conversations they belong to."""

from __future__ import annotations

from bson import ObjectId
from bson.errors import InvalidId
from gridfs import AsyncGridFSBucket
from gridfs.errors import NoFile

from domain.entities import Attachment


class GridFiles:
    # The default bucket name "fs": nx-27017 maps only fs.files/fs.chunks among dotted collection names.
    def __init__(self, db) -> None:
        self.bucket = AsyncGridFSBucket(db)
        self.db = db

    async def save(self, org_id: str, conversation_id: str, filename: str, content_type: str,
                   data: bytes) -> Attachment:
        file_id = await self.bucket.upload_from_stream(
            filename, data, metadata={"org_id": org_id, "conversation_id": conversation_id,
                                      "content_type": content_type})
        return Attachment(url=f"/files/{file_id}", mime_type=content_type, name=filename, size=len(data),
                          file_id=str(file_id))

    async def info(self, file_id: str) -> dict | None:
        try:
            oid = ObjectId(file_id)
        except (InvalidId, TypeError):
            return None
        return await self.db["fs.files"].find_one({"_id": oid})

    async def read(self, file_id: str) -> bytes | None:
        try:
            stream = await self.bucket.open_download_stream(ObjectId(file_id))
        except (NoFile, InvalidId, TypeError):
            return None
        return await stream.read()
