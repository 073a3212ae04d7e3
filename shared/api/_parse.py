"""Request bodies: size limit (413), JSON (400 ``invalid_json``), text that cannot be encoded
as UTF-8 (400 ``invalid_request``: a lone surrogate such as ``"\\ud800"``, naming the field),
then the pydantic model (400 ``invalid_request`` naming the offending field in ``param`` and in
the message)."""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request

from ._errors import ApiError

__all__ = ["field_path", "parse_body", "read_body"]

M = TypeVar("M", bound=BaseModel)

# Segments pydantic adds to a location for union members and validators, not field names.
_TYPE_TAGS = frozenset(
    {"str", "int", "float", "bool", "none", "dict", "list", "bytes", "tuple", "set"}
)


# A JSON \\u escape of a UTF-16 surrogate (paired or not); only then is the decoded body walked.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _unencodable_path(value: Any, loc: tuple[int | str, ...] = ()) -> tuple[int | str, ...] | None:
    """The location of the first string (or key) holding a lone surrogate, else None."""
    stack: list[tuple[Any, tuple[int | str, ...]]] = [(value, loc)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return where
        elif isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                try:
                    key.encode("utf-8")
                except UnicodeEncodeError:
                    return where
                stack.append((child, (*where, key)))
        elif isinstance(item, list):
            stack.extend((child, (*where, i)) for i, child in reversed(list(enumerate(item))))
    return None


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413, "request_too_large", f"The request body exceeds the gateway's limit of {limit} bytes."
    )


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole body, refusing (413) before reading more than ``max_bytes``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > max_bytes:
                raise _too_large(max_bytes)
        except ValueError:
            raise ApiError(
                400, "invalid_request", "The Content-Length header is not a number."
            ) from None
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise _too_large(max_bytes)
            chunks.append(chunk)
    except ClientDisconnect:
        raise ApiError(
            400, "client_disconnected", "The client went away before sending the whole body."
        ) from None
    return b"".join(chunks)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def field_path(loc: tuple[int | str, ...]) -> str | None:
    """``('messages', 0, 'str', 'role')`` -> ``'messages[0].role'``; None for the body itself."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _TYPE_TAGS or "[" in part or part.startswith("constrained-"):
            continue
        else:
            out += f".{part}" if out else part
    return out or None


def parse_body(raw: bytes, model: type[M]) -> M:
    """Decode ``raw`` as JSON and validate it as ``model``."""
    if not raw.strip():
        raise ApiError(400, "invalid_json", "The request body is empty; send a JSON object.")
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except (
        ValueError,
        RecursionError,
    ) as exc:  # JSONDecodeError, UnicodeDecodeError, NaN, too-deep nesting
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "the body is not valid JSON"
        raise ApiError(
            400, "invalid_json", f"The request body is not valid JSON: {reason}."
        ) from None
    if not isinstance(data, dict):
        raise ApiError(
            400,
            "invalid_request",
            f"The request body must be a JSON object, not {type(data).__name__}.",
        )
    if _SURROGATE_ESCAPE.search(raw):
        where = _unencodable_path(data)
        if where is not None:
            param = field_path(where)
            raise ApiError(
                400,
                "invalid_request",
                f"Invalid value for '{param or 'body'}': the text contains a lone UTF-16 surrogate "
                "(e.g. a string cut inside an emoji) and cannot be encoded as UTF-8.",
                param=param,
            )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc) from None
    except RecursionError:
        raise ApiError(400, "invalid_request", "The request body is nested too deeply.") from None


def _validation_error(exc: ValidationError) -> ApiError:
    """One 400 naming the first offending field; a union's alternatives are merged into one reason."""
    by_path: dict[str | None, list[str]] = {}
    for err in exc.errors(include_input=False, include_url=False):
        reasons = by_path.setdefault(field_path(tuple(err.get("loc", ()))), [])
        if err.get("msg") not in reasons:
            reasons.append(str(err.get("msg")))
    param, reasons = next(iter(by_path.items()))
    others = len(by_path) - 1
    more = f" (and {others} other invalid field{'s' if others > 1 else ''})" if others else ""
    return ApiError(
        400,
        "invalid_request",
        f"Invalid value for '{param or 'body'}': {' or '.join(reasons)}{more}.",
        param=param,
    )
