"""One client connection: SASL, AMQP framing, sessions, and routing of performatives."""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import TYPE_CHECKING, Any

from azure.servicebus._pyamqp._encode import encode_payload
from azure.servicebus._pyamqp.endpoints import Source, Target
from azure.servicebus._pyamqp.error import AMQPError
from azure.servicebus._pyamqp.message import Message
from azure.servicebus._pyamqp.outcomes import Accepted, Modified, Rejected, Released
from azure.servicebus._pyamqp.performatives import (
    AttachFrame,
    BeginFrame,
    CloseFrame,
    DetachFrame,
    DispositionFrame,
    EndFrame,
    FlowFrame,
    OpenFrame,
    SASLMechanism,
    SASLOutcome,
    TransferFrame,
)

from ._codec import (
    AMQP_HEADER,
    SASL_HEADER,
    decode_frame,
    decode_payload,
    decode_typed,
    split_sections,
)
from ._entities import EntityNotFound, LockLost, Queue
from ._links import BATCH_FORMAT, INCOMING_CREDIT, IncomingLink, OutgoingLink
from ._management import handle_cbs, handle_management

if TYPE_CHECKING:
    from ._broker import Broker

__all__ = ["Connection", "Session"]

_LOGGER = logging.getLogger(__name__)
_EMPTY_FRAME = b"\x00\x00\x00\x08\x02\x00\x00\x00"
_WINDOW = 0x7FFFFFFF
_SESSION_FILTER = b"com.microsoft:session-filter"
_SIZE_EXCEEDED = b"amqp:link:message-size-exceeded"

Outcome = Accepted | Rejected | Released | Modified


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8") if isinstance(value, (bytes, bytearray)) else str(value)


class Session:
    """An AMQP session: handles, delivery ids and the links attached on it."""

    def __init__(self, connection: Connection, channel: int, remote_channel: int) -> None:
        self.connection = connection
        self.channel = channel
        self.remote_channel = remote_channel
        self.open = True
        self.next_outgoing_id = 1
        self.next_incoming_id = 0
        self.links: dict[int, IncomingLink | OutgoingLink] = {}  # by remote handle
        self.unsettled: dict[
            int, tuple[OutgoingLink, Queue, Any]
        ] = {}  # delivery id -> (link, queue, lock token)
        self._next_handle = 0

    def new_handle(self) -> int:
        handle = self._next_handle
        self._next_handle += 1
        return handle

    def send(self, performative: Any) -> None:
        self.connection.send(self.channel, performative)

    def flow_frame(
        self, link: IncomingLink | OutgoingLink | None = None, **extra: Any
    ) -> FlowFrame:
        fields: dict[str, Any] = dict(
            next_incoming_id=self.next_incoming_id,
            incoming_window=_WINDOW,
            next_outgoing_id=self.next_outgoing_id,
            outgoing_window=_WINDOW,
            handle=None,
            delivery_count=None,
            link_credit=None,
            available=None,
            drain=None,
            echo=None,
            properties=None,
        )
        if link is not None:
            fields["handle"] = link.handle
            if isinstance(link, OutgoingLink):
                fields["delivery_count"] = link.delivery_count
                fields["link_credit"] = link.link_credit
            else:
                fields["delivery_count"] = link.delivery_count
                fields["link_credit"] = link.credit
        fields.update(extra)
        return FlowFrame(**fields)

    def send_transfer(
        self,
        link: OutgoingLink,
        payload: bytes,
        tag: bytes,
        *,
        settled: bool,
        lock: tuple[Queue, Any] | None,
    ) -> None:
        """Send one delivery, split into frames no larger than the negotiated max frame size."""
        delivery_id = self.next_outgoing_id
        self.next_outgoing_id += 1
        if lock is not None:
            self.unsettled[delivery_id] = (link, lock[0], lock[1])

        def frame(chunk: bytes, more: bool) -> TransferFrame:
            return TransferFrame(
                handle=link.handle,
                delivery_id=delivery_id,
                delivery_tag=tag,
                message_format=0,
                settled=settled,
                more=more,
                rcv_settle_mode=None,
                state=None,
                resume=None,
                aborted=None,
                batchable=None,
                payload=chunk,
            )

        overhead = len(self.connection.encode(self.channel, frame(b"", True)))
        room = max(1, self.connection.max_frame_size - overhead)
        pos = 0
        if len(payload) > room:
            self.connection.broker.counters["split_deliveries_out"] += 1
        while len(payload) - pos > room:
            self.connection.send(self.channel, frame(payload[pos : pos + room], True))
            pos += room
        self.connection.send(self.channel, frame(payload[pos:], False))


class Connection:
    """Serves one TCP client until it closes."""

    def __init__(
        self, broker: Broker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.broker = broker
        self.registry = broker.registry
        self.reader = reader
        self.writer = writer
        self.sessions: dict[int, Session] = {}  # by remote channel
        self.max_frame_size = broker.max_frame_size
        self._heartbeat: asyncio.Task | None = None
        self.closed = False

    # -- wire ----------------------------------------------------------------------------
    def encode(self, channel: int, performative: Any, frame_type: bytes = b"\x00") -> bytes:
        from ._codec import frame_bytes

        return frame_bytes(channel, performative, frame_type)

    def send(self, channel: int, performative: Any, frame_type: bytes = b"\x00") -> None:
        if self.closed:
            return
        self.writer.write(self.encode(channel, performative, frame_type))

    async def _read_frame(self) -> tuple[int, int, bytes]:
        head = await self.reader.readexactly(8)
        size, doff, ftype, channel = struct.unpack(">IBBH", head)
        body = await self.reader.readexactly(size - 8)
        return ftype, channel, body[doff * 4 - 8 :]

    # -- lifecycle -----------------------------------------------------------------------
    async def serve(self) -> None:
        try:
            await self._handshake()
            while not self.closed:
                _ftype, channel, body = await self._read_frame()
                if body:
                    code, fields = decode_frame(memoryview(body))
                    self._dispatch(code, channel, fields)
                await self.writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except asyncio.CancelledError:
            raise
        except Exception:
            _LOGGER.exception("connection failed")
        finally:
            self.cleanup()

    async def _handshake(self) -> None:
        header = await self.reader.readexactly(8)
        if header == SASL_HEADER:
            self.writer.write(SASL_HEADER)
            self.send(
                0,
                SASLMechanism(sasl_server_mechanisms=[b"ANONYMOUS", b"PLAIN", b"MSSBCBS"]),
                b"\x01",
            )
            await self._read_frame()  # sasl-init: anything goes
            self.send(0, SASLOutcome(code=0, additional_data=None), b"\x01")
            await self.writer.drain()
            header = await self.reader.readexactly(8)
        if header != AMQP_HEADER:
            self.writer.write(AMQP_HEADER)
            raise ConnectionError(f"unsupported protocol header {header!r}")
        self.writer.write(AMQP_HEADER)
        await self.writer.drain()

    def cleanup(self) -> None:
        self.closed = True
        if self._heartbeat:
            self._heartbeat.cancel()
        for session in list(self.sessions.values()):
            self._end_session(session)
        self.sessions.clear()
        try:
            self.writer.close()
        except Exception:  # noqa: BLE001
            pass
        self.broker.connections.discard(self)

    async def _heartbeats(self, interval: float) -> None:
        while not self.closed:
            await asyncio.sleep(interval)
            self.writer.write(_EMPTY_FRAME)

    # -- performatives -------------------------------------------------------------------
    def _dispatch(self, code: int, channel: int, fields: list[Any]) -> None:
        if code == 0x10:
            self._on_open(fields)
            return
        if code == 0x18:
            self.send(0, CloseFrame(error=None))
            self.closed = True
            return
        if code == 0x11:
            self._on_begin(channel, fields)
            return
        session = self.sessions.get(channel)
        if session is None:
            _LOGGER.debug("frame %#x on unknown or ended channel %s", code, channel)
            return
        handler = {
            0x12: self._on_attach,
            0x13: self._on_flow,
            0x14: self._on_transfer,
            0x15: self._on_disposition,
            0x16: self._on_detach,
            0x17: self._on_end,
        }.get(code)
        if handler:
            handler(session, fields)

    def _on_open(self, fields: list[Any]) -> None:
        remote_max = fields[2] or 0xFFFFFFFF
        self.max_frame_size = max(512, min(self.broker.max_frame_size, remote_max))
        idle_ms = fields[4]
        if idle_ms:
            self._heartbeat = asyncio.get_running_loop().create_task(
                self._heartbeats(idle_ms / 2000)
            )
        self.send(
            0,
            OpenFrame(
                container_id="sbbroker",
                hostname=None,
                max_frame_size=self.broker.max_frame_size,
                channel_max=fields[3] if fields[3] is not None else 65535,
                idle_timeout=None,
                outgoing_locales=None,
                incoming_locales=None,
                offered_capabilities=None,
                desired_capabilities=None,
                properties=None,
            ),
        )

    def _on_begin(self, channel: int, fields: list[Any]) -> None:
        session = Session(self, channel, channel)
        session.next_incoming_id = fields[1] or 0
        self.sessions[channel] = session
        session.send(
            BeginFrame(
                remote_channel=channel,
                next_outgoing_id=session.next_outgoing_id,
                incoming_window=_WINDOW,
                outgoing_window=_WINDOW,
                handle_max=65535,
                offered_capabilities=None,
                desired_capabilities=None,
                properties=None,
            )
        )

    def _on_end(self, session: Session, fields: list[Any]) -> None:
        self._end_session(session)
        session.send(EndFrame(error=None))
        self.sessions.pop(session.remote_channel, None)

    def _end_session(self, session: Session) -> None:
        session.open = False
        for link in list(session.links.values()):
            self._drop_link(link)
        session.links.clear()
        session.unsettled.clear()

    def _drop_link(self, link: IncomingLink | OutgoingLink) -> None:
        link.attached = False
        if (
            isinstance(link, OutgoingLink)
            and link.kind == "queue"
            and link.queue is not None
            and link in link.queue.consumers
        ):
            link.queue.consumers.remove(link)

    def _on_attach(self, session: Session, fields: list[Any]) -> None:
        name, remote_handle, role = fields[0], fields[1], fields[2]
        source, target = fields[5] or [], fields[6] or []
        client_receives = bool(role)
        address = (
            _text(
                (source if client_receives else target)[0]
                if (source if client_receives else target)
                else None
            )
            or ""
        )
        handle = session.new_handle()
        reply = AttachFrame(
            name=name,
            handle=handle,
            role=not client_receives,
            send_settle_mode=fields[3],
            rcv_settle_mode=fields[4],
            source=Source(address=source[0] if source else None),
            target=Target(address=target[0] if target else None),
            unsettled=None,
            incomplete_unsettled=None,
            initial_delivery_count=0 if client_receives else None,
            max_message_size=self.broker.max_message_size,
            offered_capabilities=None,
            desired_capabilities=None,
            properties=None,
        )
        error: AMQPError | None = None
        link: IncomingLink | OutgoingLink | None = None
        try:
            resolved = self.registry.resolve(address)
            filters = source[7] if client_receives and len(source) > 7 else None
            if isinstance(filters, dict) and _SESSION_FILTER in filters:
                error = AMQPError(
                    condition=b"amqp:not-implemented",
                    description="Message sessions are not supported by sbbroker.",
                    info=None,
                )
            elif not client_receives and resolved.queue is not None and resolved.queue.send_denied:
                error = AMQPError(
                    condition=b"amqp:unauthorized-access",
                    description="Unauthorized access. 'Send' claim(s) are required to perform "
                    "this operation.",
                    info=None,
                )
            else:
                common = dict(
                    name=_text(name) or "",
                    handle=handle,
                    remote_handle=remote_handle,
                    kind=resolved.kind,
                    queue=resolved.queue,
                    path=resolved.path.lower(),
                )
                if client_receives:
                    link = OutgoingLink(session, peek_lock=fields[3] != 1, **common)
                else:
                    link = IncomingLink(session, **common)
        except EntityNotFound as exc:
            error = AMQPError(
                condition=b"amqp:not-found",
                description=f"The messaging entity '{exc}' could not be found.",
                info=None,
            )
        if error is not None or link is None:
            # Refusing a link (AMQP 1.0 2.6.3): attach with a null terminus on our side, then detach.
            reply = reply._replace(source=None) if client_receives else reply._replace(target=None)
            session.send(reply)
            session.send(DetachFrame(handle=handle, closed=True, error=error))
            return
        session.send(reply)
        session.links[remote_handle] = link
        if isinstance(link, IncomingLink):
            session.send(session.flow_frame(link))
        elif link.kind == "queue" and link.queue is not None:
            link.queue.consumers.append(link)

    def _on_detach(self, session: Session, fields: list[Any]) -> None:
        link = session.links.pop(fields[0], None)
        if link is None:
            return
        self._drop_link(link)
        for delivery_id in [d for d, (lnk, _q, _t) in session.unsettled.items() if lnk is link]:
            del session.unsettled[delivery_id]
        session.send(DetachFrame(handle=link.handle, closed=True, error=None))

    def _on_flow(self, session: Session, fields: list[Any]) -> None:
        if fields[1] is not None:
            pass  # the client's incoming window: the broker never gets near it
        handle = fields[4]
        if handle is None:
            return
        link = session.links.get(handle)
        if link is None:
            return
        if isinstance(link, IncomingLink):
            if fields[9]:  # echo
                session.send(session.flow_frame(link))
            return
        link.on_flow(fields[5], fields[6])
        if link.kind == "queue" and link.queue is not None:
            link.queue.dispatch()
        else:
            link.flush_pending()
        if fields[8]:  # drain: nothing more to send now, so use up the credit and say so
            link.drain()
            session.send(session.flow_frame(link, drain=True))
        elif fields[9]:
            session.send(session.flow_frame(link))

    # -- transfers -----------------------------------------------------------------------
    def _on_transfer(self, session: Session, fields: list[Any]) -> None:
        link = session.links.get(fields[0])
        if fields[1] is not None:
            session.next_incoming_id = fields[1] + 1
        if not isinstance(link, IncomingLink):
            _LOGGER.warning("transfer on unknown or outgoing handle %s", fields[0])
            return
        if fields[5]:
            self.broker.counters["transfer_frames_with_more_in"] += 1
        done = link.on_transfer(fields)
        if done is None:
            return
        first, payload = done
        if first is not fields:
            self.broker.counters["split_deliveries_in"] += 1
        delivery_id, settled = first[1], first[4]
        outcome: Outcome = Accepted()
        try:
            if link.kind == "queue":
                outcome = self._enqueue(link, first[3], payload)
            else:
                self._request(session, link, payload)
        except Exception as exc:
            _LOGGER.exception("failed to process a delivery on %s", link.path)
            outcome = Rejected(
                error=AMQPError(condition=b"amqp:internal-error", description=str(exc), info=None)
            )
        if not settled:
            session.send(
                DispositionFrame(
                    role=True,
                    first=delivery_id,
                    last=None,
                    settled=True,
                    state=outcome,
                    batchable=None,
                )
            )
        if link.credit < INCOMING_CREDIT // 2:
            link.credit = INCOMING_CREDIT
            session.send(session.flow_frame(link))

    def _enqueue(self, link: IncomingLink, message_format: int | None, payload: bytes) -> Outcome:
        assert link.queue is not None
        if len(payload) > self.broker.max_message_size:
            return Rejected(
                error=AMQPError(
                    condition=_SIZE_EXCEEDED,
                    description=f"The received message (size {len(payload)} bytes) exceeds the limit "
                    f"({self.broker.max_message_size} bytes).",
                    info=None,
                )
            )
        if message_format == BATCH_FORMAT:
            parts = [decode_typed(s.value_raw) for s in split_sections(payload) if s.code == 0x75]
        else:
            parts = [payload]
        for part in parts:
            link.queue.enqueue(bytes(part))
        link.queue.dispatch()
        return Accepted()

    def _request(self, session: Session, link: IncomingLink, payload: bytes) -> None:
        request: Message = decode_payload(memoryview(payload))
        if link.kind == "cbs":
            response = handle_cbs(request).to_message(request, cbs=True)
        else:
            assert link.queue is not None
            response = handle_management(self.registry, link.queue, request).to_message(request)
        out = bytearray()
        encode_payload(out, response)
        target = next(
            (
                other
                for other in session.links.values()
                if isinstance(other, OutgoingLink)
                and other.kind == link.kind
                and other.path == link.path
            ),
            None,
        )
        if target is None:
            _LOGGER.warning("no response link for %s", link.path)
            return
        target.respond(bytes(out))

    # -- settlement ----------------------------------------------------------------------
    def _on_disposition(self, session: Session, fields: list[Any]) -> None:
        role, first, last, settled, state = fields[0], fields[1], fields[2], fields[3], fields[4]
        if not role:
            return  # the client settling something it sent: nothing to do
        touched: set[int] = set()
        for delivery_id in range(first, (last if last is not None else first) + 1):
            entry = session.unsettled.get(delivery_id)
            if entry is None:
                continue
            _link, queue, token = entry
            if state is None or "received" in state:
                if settled:
                    session.unsettled.pop(delivery_id, None)
                    queue.release(token)
                continue
            session.unsettled.pop(delivery_id, None)
            echo = self._settle(queue, token, state)
            touched.add(id(queue))
            queue.dispatch()
            if not settled:
                session.send(
                    DispositionFrame(
                        role=False,
                        first=delivery_id,
                        last=None,
                        settled=True,
                        state=echo,
                        batchable=None,
                    )
                )

    @staticmethod
    def _settle(queue: Queue, token: Any, state: dict) -> Outcome:
        try:
            if "accepted" in state:
                queue.complete(token)
                return Accepted()
            if "released" in state:
                queue.release(token)
                return Released()
            if "modified" in state:
                values = list(state["modified"]) + [None, None, None]
                delivery_failed, undeliverable_here = values[0], values[1]
                if undeliverable_here:
                    queue.defer(token)
                elif delivery_failed:
                    queue.abandon(token)
                else:
                    queue.release(token)
                return Modified(
                    delivery_failed=delivery_failed,
                    undeliverable_here=undeliverable_here,
                    message_annotations=None,
                )
            if "rejected" in state:
                error = (list(state["rejected"]) + [None])[0] or []
                error = list(error) + [None, None, None]
                condition, description, info = error[0], error[1], error[2]
                info = info if isinstance(info, dict) else {}
                if condition == b"com.microsoft:dead-letter":
                    reason = _text(info.get(b"DeadLetterReason"))
                    detail = _text(info.get(b"DeadLetterErrorDescription"))
                    if detail is None:
                        detail = _text(description)
                else:
                    reason, detail = _text(condition), _text(description)
                queue.dead_letter(token, reason, detail)
                return Rejected(error=None)
        except LockLost as exc:
            return Rejected(
                error=AMQPError(
                    condition=b"com.microsoft:message-lock-lost", description=str(exc), info=None
                )
            )
        return Accepted()
