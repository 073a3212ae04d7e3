"""Queues, their dead-letter subqueues, locks, schedules and expiry."""

from __future__ import annotations

import heapq
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from ._message import STATE_ACTIVE, STATE_DEFERRED, STATE_SCHEDULED, StoredMessage, now_ms

__all__ = [
    "DLQ_SUFFIX",
    "Consumer",
    "EntityNotFound",
    "LockLost",
    "Queue",
    "QueueConfig",
    "Registry",
    "Resolved",
]

_LOGGER = logging.getLogger(__name__)
DLQ_SUFFIX = "/$deadletterqueue"
MGMT_SUFFIX = "/$management"


class EntityNotFound(Exception):
    """The addressed queue does not exist and auto-create is off."""


class LockLost(Exception):
    """The lock token is unknown or its lock has expired."""


class Consumer(Protocol):
    """What a queue needs from an attached receiver link."""

    def credit(self) -> int: ...

    def deliver(self, queue: Queue, message: StoredMessage) -> None: ...


@dataclass
class QueueConfig:
    """Per-queue behaviour."""

    max_delivery_count: int = 10
    lock_duration_s: float = 30.0
    dead_lettering_on_expiration: bool = False
    default_ttl_s: float | None = None
    # RequiresDuplicateDetection: a second message with a MessageId seen within the window is
    # accepted by the sender and silently dropped (None: detection off, as by default in Azure).
    duplicate_detection_window_s: float | None = None


class Queue:
    """One queue or dead-letter subqueue."""

    def __init__(self, name: str, config: QueueConfig, parent: Queue | None = None) -> None:
        self.name = name
        self.config = config
        self.parent = parent
        self.dlq: Queue | None = None if parent else Queue(name + "/$DeadLetterQueue", config, self)
        self.messages: dict[int, StoredMessage] = {}
        self.locks: dict[uuid.UUID, StoredMessage] = {}
        self.consumers: list[Consumer] = []
        self._available: list[int] = []  # heap of sequence numbers (lazy deletion)
        self._next_seq = 1
        self._rr = 0
        self._seen_ids: dict[str, int] = {}  # message id -> when its detection window ends (ms)
        self.duplicates_dropped = 0
        self.send_denied = False  # a sender without the Send claim: links to send are refused

    @property
    def is_dlq(self) -> bool:
        return self.parent is not None

    @property
    def source_name(self) -> str:
        """The queue's name as dead-letter source (the parent's name for a DLQ)."""
        return self.parent.name if self.parent else self.name

    # -- counts --------------------------------------------------------------------------
    def active(self) -> list[StoredMessage]:
        """Visible and locked messages (not scheduled, not deferred), in sequence order."""
        return sorted(
            (m for m in self.messages.values() if m.state == STATE_ACTIVE),
            key=lambda m: m.sequence_number,
        )

    def with_state(self, state: int) -> list[StoredMessage]:
        return sorted(
            (m for m in self.messages.values() if m.state == state), key=lambda m: m.sequence_number
        )

    # -- enqueue -------------------------------------------------------------------------
    def _take_seq(self) -> int:
        root = self.parent or self
        seq = root._next_seq
        root._next_seq += 1
        return seq

    def is_duplicate(self, message_id: object, now: int) -> bool:
        """Duplicate detection: True when ``message_id`` was enqueued within the window (then the
        message must be dropped); otherwise the id is remembered for one window."""
        window = self.config.duplicate_detection_window_s
        if window is None or self.is_dlq or message_id is None:
            return False
        key = message_id.decode() if isinstance(message_id, bytes) else str(message_id)
        if len(self._seen_ids) > 4096:
            self._seen_ids = {k: until for k, until in self._seen_ids.items() if until > now}
        if self._seen_ids.get(key, 0) > now:
            self.duplicates_dropped += 1
            return True
        self._seen_ids[key] = now + int(window * 1000)
        return False

    def enqueue(self, payload: bytes, *, schedule_ms: int | None = None) -> StoredMessage | None:
        """Store a message sent by a client; scheduled ones stay hidden until their time.
        None: duplicate detection dropped it (the sender was told it was accepted)."""
        now = now_ms()
        message = StoredMessage(payload, sequence_number=0, enqueued_ms=now)
        if self.is_duplicate(message.properties.get("message_id"), now):
            return None
        message.sequence_number = self._take_seq()
        if schedule_ms is not None:
            message.scheduled_ms = schedule_ms
        if message.ttl_ms is None and self.config.default_ttl_s:
            message.header_fields[2] = int(self.config.default_ttl_s * 1000)
        if message.scheduled_ms is not None and message.scheduled_ms > now:
            message.state = STATE_SCHEDULED
            message.enqueued_ms = message.scheduled_ms
        self.messages[message.sequence_number] = message
        if message.state == STATE_ACTIVE:
            heapq.heappush(self._available, message.sequence_number)
        return message

    def put_dead_letter(self, message: StoredMessage) -> None:
        """Store a message moved here from the parent queue."""
        self.messages[message.sequence_number] = message
        heapq.heappush(self._available, message.sequence_number)

    def cancel_scheduled(self, sequence_numbers: Iterable[int]) -> list[int]:
        """Drop scheduled messages; returns the numbers that were not scheduled here."""
        missing = []
        for seq in sequence_numbers:
            message = self.messages.get(seq)
            if message is None or message.state != STATE_SCHEDULED:
                missing.append(seq)
            else:
                del self.messages[seq]
        return missing

    # -- delivery ------------------------------------------------------------------------
    def _pop_available(self, now: int) -> StoredMessage | None:
        while self._available:
            seq = heapq.heappop(self._available)
            message = self.messages.get(seq)
            if message is None or message.state != STATE_ACTIVE or message.lock_token is not None:
                continue
            if self._expired(message, now):
                self._expire(message)
                continue
            return message
        return None

    def take(self, *, peek_lock: bool) -> StoredMessage | None:
        """Next visible message: locked (peek-lock) or removed (receive-and-delete)."""
        now = now_ms()
        message = self._pop_available(now)
        if message is None:
            return None
        if peek_lock:
            message.lock_token = uuid.uuid4()
            message.locked_until_ms = now + int(self.config.lock_duration_s * 1000)
            self.locks[message.lock_token] = message
        else:
            del self.messages[message.sequence_number]
        return message

    def dispatch(self) -> None:
        """Hand visible messages to attached receivers that have credit, round-robin."""
        while self.consumers:
            ready = [c for c in self.consumers if c.credit() > 0]
            if not ready:
                return
            consumer = ready[self._rr % len(ready)]
            self._rr += 1
            peek_lock = getattr(consumer, "peek_lock", True)
            message = self.take(peek_lock=peek_lock)
            if message is None:
                return
            consumer.deliver(self, message)

    def _make_visible(self, message: StoredMessage) -> None:
        message.lock_token = None
        message.locked_until_ms = None
        heapq.heappush(self._available, message.sequence_number)

    # -- settlement ----------------------------------------------------------------------
    def _locked(self, token: uuid.UUID) -> StoredMessage:
        message = self.locks.get(token)
        if message is None or message.lock_token != token:
            raise LockLost(
                f"The lock supplied is invalid: lock token {token} is unknown or has expired."
            )
        if message.locked_until_ms is not None and message.locked_until_ms <= now_ms():
            self._lock_expired(message)
            raise LockLost(f"The lock supplied has expired: lock token {token}.")
        return message

    def _unlock(self, message: StoredMessage) -> None:
        if message.lock_token is not None:
            self.locks.pop(message.lock_token, None)

    def complete(self, token: uuid.UUID) -> None:
        message = self._locked(token)
        self._unlock(message)
        self.messages.pop(message.sequence_number, None)

    def abandon(self, token: uuid.UUID) -> None:
        message = self._locked(token)
        self._unlock(message)
        self._failed_attempt(message)

    def release(self, token: uuid.UUID) -> None:
        """Give a delivered message back without counting it as a failed attempt."""
        message = self.locks.get(token)
        if message is None or message.lock_token != token:
            return
        self._unlock(message)
        self._make_visible(message)

    def defer(self, token: uuid.UUID) -> None:
        message = self._locked(token)
        self._unlock(message)
        message.lock_token = None
        message.locked_until_ms = None
        message.delivery_count += 1
        message.state = STATE_DEFERRED

    def dead_letter(self, token: uuid.UUID, reason: str | None, description: str | None) -> None:
        message = self._locked(token)
        self._unlock(message)
        self._move_to_dlq(message, reason, description)

    def renew(self, token: uuid.UUID) -> int:
        """Extend a lock; returns the new locked-until (epoch ms)."""
        message = self._locked(token)
        message.locked_until_ms = now_ms() + int(self.config.lock_duration_s * 1000)
        return message.locked_until_ms

    def _failed_attempt(self, message: StoredMessage) -> None:
        message.delivery_count += 1
        if not self.is_dlq and message.delivery_count >= self.config.max_delivery_count:
            self._move_to_dlq(
                message,
                "MaxDeliveryCountExceeded",
                f"Message could not be consumed after {self.config.max_delivery_count} delivery attempts.",
            )
        else:
            self._make_visible(message)

    def _move_to_dlq(
        self, message: StoredMessage, reason: str | None, description: str | None
    ) -> None:
        self.messages.pop(message.sequence_number, None)
        if self.is_dlq:  # dead-lettering from the DLQ keeps it there
            clone = message.copy_for_dead_letter(self.source_name, reason, description)
            self.put_dead_letter(clone)
            return
        assert self.dlq is not None
        self.dlq.put_dead_letter(message.copy_for_dead_letter(self.name, reason, description))
        self.dlq.dispatch()

    def _lock_expired(self, message: StoredMessage) -> None:
        _LOGGER.debug("lock expired on %s seq %s", self.name, message.sequence_number)
        self._unlock(message)
        self._failed_attempt(message)

    def _expired(self, message: StoredMessage, now: int) -> bool:
        """Whether TTL has run out (never in a dead-letter queue, as in Service Bus)."""
        expires = message.expires_ms
        return not self.is_dlq and expires is not None and expires <= now

    def _expire(self, message: StoredMessage) -> None:
        self.messages.pop(message.sequence_number, None)
        if self.config.dead_lettering_on_expiration and not self.is_dlq:
            assert self.dlq is not None
            self.dlq.put_dead_letter(
                message.copy_for_dead_letter(
                    self.name, "TTLExpiredException", "The message expired and was dead lettered."
                )
            )
            self.dlq.dispatch()

    # -- time ----------------------------------------------------------------------------
    def tick(self, now: int) -> None:
        """Expire locks and TTLs, activate due scheduled messages, then dispatch."""
        for message in list(self.messages.values()):
            if message.lock_token is not None:
                if message.locked_until_ms is not None and message.locked_until_ms <= now:
                    self._lock_expired(message)
            elif message.state == STATE_SCHEDULED:
                if message.scheduled_ms is None or message.scheduled_ms <= now:
                    message.state = STATE_ACTIVE
                    heapq.heappush(self._available, message.sequence_number)
            elif message.state == STATE_ACTIVE and self._expired(message, now):
                self._expire(message)
        self.dispatch()

    def peek(self, from_seq: int, count: int) -> list[StoredMessage]:
        """Messages from a sequence number on, locked or not, scheduled and deferred included."""
        now = now_ms()
        found = []
        for seq in sorted(self.messages):
            if seq < from_seq:
                continue
            message = self.messages[seq]
            if (
                message.lock_token is None
                and message.state == STATE_ACTIVE
                and self._expired(message, now)
            ):
                continue
            found.append(message)
            if len(found) >= count:
                break
        return found

    def clear(self) -> None:
        self.messages.clear()
        self.locks.clear()
        self._available.clear()


@dataclass
class Resolved:
    """What a link address points at."""

    kind: str  # "queue" | "management" | "cbs"
    queue: Queue | None
    path: str


class Registry:
    """All queues of the broker, addressed the way the SDK addresses them."""

    def __init__(
        self,
        config: QueueConfig,
        *,
        auto_create: bool = True,
        queues: Iterable[str] = (),
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.auto_create = auto_create
        self.queues: dict[str, Queue] = {}
        self.declared = list(queues)
        for name in self.declared:
            self.create(name)

    def create(self, name: str, config: QueueConfig | None = None) -> Queue:
        key = name.lower()
        if key not in self.queues:
            self.queues[key] = Queue(name, config or QueueConfig(**vars(self.config)))
        elif config is not None:
            self.queues[key].config = config
            if self.queues[key].dlq is not None:
                self.queues[key].dlq.config = config
        return self.queues[key]

    def get(self, name: str, *, create: bool | None = None) -> Queue:
        """A queue or its DLQ by name (``q`` or ``q/$DeadLetterQueue``)."""
        lowered = name.lower()
        is_dlq = lowered.endswith(DLQ_SUFFIX)
        base = name[: -len(DLQ_SUFFIX)] if is_dlq else name
        queue = self.queues.get(base.lower())
        if queue is None:
            if not (self.auto_create if create is None else create):
                raise EntityNotFound(base)
            queue = self.create(base)
        return queue.dlq if is_dlq and queue.dlq else queue

    @staticmethod
    def entity_path(address: str) -> str:
        """The entity path of an AMQP address such as ``amqps://host/q/$DeadLetterQueue``."""
        if "://" in address:
            address = address.split("://", 1)[1]
            address = address.split("/", 1)[1] if "/" in address else ""
        return address.strip("/")

    def resolve(self, address: str) -> Resolved:
        path = self.entity_path(address)
        lowered = path.lower()
        if lowered == "$cbs":
            return Resolved("cbs", None, path)
        if lowered.endswith(MGMT_SUFFIX):
            return Resolved("management", self.get(path[: -len(MGMT_SUFFIX)]), path)
        if not path:
            raise EntityNotFound(address)
        return Resolved("queue", self.get(path), path)

    def all_queues(self) -> list[Queue]:
        result = []
        for queue in self.queues.values():
            result.append(queue)
            if queue.dlq is not None:
                result.append(queue.dlq)
        return result

    def tick(self) -> None:
        now = now_ms()
        for queue in self.all_queues():
            queue.tick(now)

    def reset(self) -> None:
        """Drop every message and every queue not declared up front."""
        for queue in self.all_queues():
            queue.clear()
        declared = {n.lower() for n in self.declared}
        for key in list(self.queues):
            if (
                key not in declared
                and not self.queues[key].consumers
                and not (self.queues[key].dlq and self.queues[key].dlq.consumers)
            ):
                del self.queues[key]
