"""Link state: client-to-broker (incoming) and broker-to-client (outgoing) links."""

from __future__ import annotations

import logging
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any

from ._entities import Queue
from ._message import StoredMessage

if TYPE_CHECKING:
    from ._connection import Session

__all__ = ["BATCH_FORMAT", "IncomingLink", "OutgoingLink"]

_LOGGER = logging.getLogger(__name__)
BATCH_FORMAT = 0x80013700
INCOMING_CREDIT = 1000


class _Link:
    def __init__(
        self,
        session: Session,
        *,
        name: str,
        handle: int,
        remote_handle: int,
        kind: str,
        queue: Queue | None,
        path: str,
    ) -> None:
        self.session = session
        self.name = name
        self.handle = handle
        self.remote_handle = remote_handle
        self.kind = kind  # "queue" | "management" | "cbs"
        self.queue = queue
        self.path = path
        self.attached = True


class IncomingLink(_Link):
    """The client sends on this link: messages to a queue, or management/CBS requests."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.delivery_count = 0
        self.credit = INCOMING_CREDIT
        self._partial: bytearray | None = None
        self._first: list[Any] | None = None

    def on_transfer(self, fields: list[Any]) -> tuple[list[Any], bytes] | None:
        """Collect one transfer frame; returns (first frame fields, payload) once the delivery is whole."""
        more, aborted = fields[5], fields[9]
        payload = fields[11]
        if self._first is None:
            self._first = fields
            self._partial = bytearray()
        assert self._partial is not None
        self._partial.extend(payload)
        if aborted:
            self._first, self._partial = None, None
            return None
        if more:
            return None
        first, whole = self._first, bytes(self._partial)
        self._first, self._partial = None, None
        self.delivery_count += 1
        self.credit -= 1
        return first, whole


class OutgoingLink(_Link):
    """The broker sends on this link: queue deliveries, or management/CBS responses."""

    def __init__(self, *args: Any, peek_lock: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.peek_lock = peek_lock
        self.delivery_count = 0
        self.link_credit = 0
        self.pending: deque[bytes] = deque()  # management responses waiting for credit

    def credit(self) -> int:
        return self.link_credit if self.attached and self.session.open else 0

    def on_flow(self, delivery_count: int | None, link_credit: int | None) -> None:
        """Apply the receiver's flow: credit = its delivery-count + link-credit - ours."""
        if link_credit is None:
            return
        base = self.delivery_count if delivery_count is None else delivery_count
        self.link_credit = max(0, base + link_credit - self.delivery_count)

    def drain(self) -> None:
        """Use up the remaining credit (nothing more to send)."""
        self.delivery_count += self.link_credit
        self.link_credit = 0

    def deliver(self, queue: Queue, message: StoredMessage) -> None:
        """Send a queue message to the client."""
        if self.peek_lock:
            assert message.lock_token is not None
            tag = message.lock_token.bytes_le
            payload = message.encode(locked_until_ms=message.locked_until_ms)
        else:
            tag = uuid.uuid4().bytes_le
            payload = message.encode()
        self._send(
            payload,
            tag,
            settled=not self.peek_lock,
            lock=(queue, message.lock_token) if self.peek_lock else None,
        )

    def respond(self, payload: bytes) -> None:
        """Send a management response, or hold it until the client gives credit."""
        self.pending.append(payload)
        self.flush_pending()

    def flush_pending(self) -> None:
        while self.pending and self.credit() > 0:
            self._send(self.pending.popleft(), uuid.uuid4().bytes, settled=True, lock=None)

    def _send(
        self, payload: bytes, tag: bytes, *, settled: bool, lock: tuple[Queue, Any] | None
    ) -> None:
        self.delivery_count += 1
        self.link_credit -= 1
        self.session.send_transfer(self, payload, tag, settled=settled, lock=lock)
