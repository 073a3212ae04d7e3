"""The Files API's store: uploaded batch inputs and the batch output/error files, in memory."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["FileStore", "MultipartError", "StoredFile", "parse_multipart"]

_PURPOSES = frozenset({"batch", "batch_output"})


class MultipartError(ValueError):
    """The multipart/form-data body is malformed."""


@dataclass(frozen=True)
class StoredFile:
    """One file: its bytes and the metadata the Files API reports."""

    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int

    def describe(self) -> dict[str, Any]:
        """The file object."""
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
        }


class FileStore:
    """Files by id, in upload order."""

    def __init__(self) -> None:
        self._files: dict[str, StoredFile] = {}

    def add(self, filename: str, purpose: str, content: bytes) -> StoredFile:
        """Store ``content``; purpose must be ``batch`` (or ``batch_output`` for our own outputs)."""
        if purpose not in _PURPOSES:
            raise ValueError(f"purpose must be 'batch', got {purpose!r}")
        stored = StoredFile(
            f"file-{secrets.token_hex(12)}", filename, purpose, content, int(time.time())
        )
        self._files[stored.id] = stored
        return stored

    def get(self, file_id: str) -> StoredFile | None:
        """The file, or None."""
        return self._files.get(file_id)

    def delete(self, file_id: str) -> bool:
        """Remove a file; False when unknown."""
        return self._files.pop(file_id, None) is not None

    def all(self) -> list[StoredFile]:
        """Every file, oldest first."""
        return list(self._files.values())

    def clear(self) -> None:
        """Forget every file."""
        self._files.clear()


def _boundary(content_type: str) -> bytes:
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "boundary" and value:
            return value.strip('"').encode("latin-1")
    raise MultipartError("multipart/form-data needs a boundary")


def _disposition(headers: dict[str, str]) -> dict[str, str]:
    out = {}
    for part in headers.get("content-disposition", "").split(";")[1:]:
        key, _, value = part.strip().partition("=")
        out[key.lower()] = value.strip('"')
    return out


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """The form's fields: name -> (filename or None, bytes)."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise MultipartError("expected a multipart/form-data body")
    delimiter = b"--" + _boundary(content_type)
    fields: dict[str, tuple[str | None, bytes]] = {}
    chunks = body.split(delimiter)
    if len(chunks) < 3:
        raise MultipartError("no parts in the multipart body")
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        head, sep, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            raise MultipartError("a part has no header block")
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        disposition = _disposition(headers)
        if "name" not in disposition:
            raise MultipartError("a part has no name")
        fields[disposition["name"]] = (disposition.get("filename"), data.removesuffix(b"\r\n"))
    return fields
