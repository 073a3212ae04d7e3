"""``GET /api/v1/usage`` (the caller's own usage) and ``GET /api/ops/usage`` (everyone's).

Query: ``from`` / ``to`` (ISO dates or date-times, UTC when no offset; default: the start of
this month to now), ``group_by`` (``caller``, ``alias``, ``deployment``, ``hour`` or ``lane``;
several comma-separated; default ``caller``). JSON, or CSV when ``Accept`` asks for ``text/csv``.
Hours are whole UTC hours: ``from`` is rounded down to its hour, ``to`` includes its hour.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ._context import request_info
from ._errors import ApiError, error_response

if TYPE_CHECKING:
    from shared.settings import GatewaySettings
    from shared.usage import UsageRecorder, UsageSettings

__all__ = ["MAX_RANGE", "UsageServices", "usage_report"]

# One query reads one hour-partition per hour of its range: a year (and a day) at most, so no
# key holder can make the gateway scan the table from 0001-01-01.
MAX_RANGE = timedelta(days=366)


class UsageServices(Protocol):
    def settings(self) -> GatewaySettings: ...

    def usage(self) -> UsageRecorder: ...

    def usage_settings(self) -> UsageSettings: ...


def _when(request: Request, name: str, default: datetime) -> datetime:
    raw = request.query_params.get(name)
    if not raw:
        return default
    try:
        value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise ApiError(
            400, "invalid_parameter", f"'{name}' must be an ISO date or date-time.", param=name
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def usage_report(request: Request, services: UsageServices, *, everyone: bool) -> Response:
    """The usage report; ``everyone`` False limits it to the calling identity's own rows."""
    from shared.usage import GROUPS, summarize, to_csv  # lazy: cold start

    info = request_info(request, services)
    try:
        now = datetime.now(UTC)  # only the default report range (this month so far)
        start = _when(
            request, "from", now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        )
        end = _when(request, "to", now)
        if end < start:
            raise ApiError(400, "invalid_parameter", "'to' is before 'from'.", param="to")
        if end - start > MAX_RANGE:
            raise ApiError(
                400,
                "invalid_parameter",
                f"'from' to 'to' spans more than {MAX_RANGE.days} days; ask for a year at a time.",
                param="from",
            )
        group_by = [
            g.strip()
            for g in request.query_params.get("group_by", "caller").split(",")
            if g.strip()
        ]
        unknown = [g for g in group_by if g not in GROUPS]
        if unknown or not group_by:
            raise ApiError(
                400,
                "invalid_parameter",
                f"'group_by' takes {', '.join(GROUPS)} (comma-separated); got {', '.join(unknown) or 'nothing'}.",
                param="group_by",
            )
        caller = None if everyone else info.caller
        rows = await services.usage().read(
            start.strftime("%Y%m%d%H"), end.strftime("%Y%m%d%H"), caller=caller
        )
        prices = services.usage_settings().prices
        report: dict[str, Any] = summarize(rows, group_by, prices)
    except Exception as exc:  # noqa: BLE001 - every failure becomes OpenAI's error shape
        return error_response(exc, info.correlation_id, headers=info.headers())
    if "text/csv" in request.headers.get("accept", ""):
        return Response(
            to_csv(report, group_by), media_type="text/csv; charset=utf-8", headers=info.headers()
        )
    body = {
        "object": "usage",
        "from": start.isoformat().replace("+00:00", "Z"),
        "to": end.isoformat().replace("+00:00", "Z"),
        "group_by": group_by,
        "scope": "all" if everyone else caller,
        "currency": prices.currency,
        **report,
    }
    return JSONResponse(body, headers=info.headers())
