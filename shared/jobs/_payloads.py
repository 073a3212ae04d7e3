"""Blob storage for payloads too large for a table property or a queue message."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from azure.storage.blob.aio import ContainerClient

__all__ = ["PayloadStore"]


class PayloadStore:
    """Whole-object put/get/delete in one container, created on first write."""

    def __init__(self, container: ContainerClient) -> None:
        self._container = container
        self._ready = False

    async def put(self, name: str, data: bytes) -> None:
        from azure.core.exceptions import ResourceExistsError

        if not self._ready:
            try:
                await self._container.create_container()
            except ResourceExistsError:
                pass
            self._ready = True
        await self._container.upload_blob(name, data, overwrite=True, content_settings=None)

    async def get(self, name: str) -> bytes:
        downloader = await self._container.download_blob(name)
        return await downloader.readall()

    async def delete(self, name: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            await self._container.delete_blob(name)
        except ResourceNotFoundError:
            pass
