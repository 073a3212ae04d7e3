"""Keeping an outcome the model has already answered.

Once the model has answered a job, the answer is paid for (quota and money). If recording it
fails because Azure Storage or Service Bus is out of reach for a moment, raising would leave
the message to Service Bus redelivery, and the redelivered copy would call the model again
(the row still says ``running`` by this same delivery). So the step that records the outcome
is tried again, with jittered, growing waits (0.5 s doubling to 5 s), for at most
``BACKLOG_RECORD_RETRY_S`` (by the waits taken and by the clock). Only errors that say a peer is
out of reach (``unreachable``) are retried; anything else, and a peer still out of reach at the
limit, raises as before: redelivery, then the dead-letter handler. The step must be safe to run
again (``conclude`` is: the terminal write is conditional, the reply goes out under a lease).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ._unreachable import unreachable

__all__ = ["keep_outcome"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

FIRST_WAIT_S = 0.5
MAX_WAIT_S = 5.0


async def keep_outcome(
    step: Callable[[int], Awaitable[T]],
    *,
    job_id: str,
    budget_s: float,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]],
    jitter: Callable[[], float] = random.random,
) -> T:
    """Run ``step(attempt)`` (attempt 0, 1, ...) until it returns; retry it while it fails
    because a peer is out of reach, within ``budget_s``."""
    started = clock()
    waited = 0.0
    attempt = 0
    while True:
        try:
            return await step(attempt)
        except Exception as exc:
            reason = unreachable(exc)
            wait = min(MAX_WAIT_S, FIRST_WAIT_S * 2**attempt) * (0.5 + jitter() / 2)
            spent = max(waited, clock() - started)
            if reason is None or spent + wait > budget_s:
                raise
            logger.warning(
                "job %s: recording its outcome failed (%s, %s); try %d in %.1f s",
                job_id,
                reason,
                exc.__class__.__name__,
                attempt + 2,
                wait,
                extra={"correlation_id": job_id},
            )
        await sleep(wait)
        waited += wait
        attempt += 1
