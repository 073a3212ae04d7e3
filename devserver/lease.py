"""The timer's singleton lock: a blob lease in ``AzureWebJobsStorage``, as the Functions host takes.

In Azure the host runs each timer function on one instance at a time: the instance holding a
lease on the blob ``azure-webjobs-hosts/locks/<host id>/<function>.Listener`` runs the schedule
and renews the lease; the others keep trying, and one of them takes over within the lease's
duration when the holder goes away. The dev server does the same against Azurite, so several
dev servers sharing one Azurite behave like several instances of one app: each timer tick runs
on exactly one of them.

``TimerLease.hold()`` is called before each tick: it acquires the lease, or renews it when this
process already holds it (acquiring with the same lease id renews), and returns whether this
process may run the tick. Storage errors count as "not held" (the tick is skipped here; the
holder, if any, runs it).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

__all__ = ["LEASE_CONTAINER", "TimerLease"]

_log = logging.getLogger("devserver.lease")

LEASE_CONTAINER = "azure-webjobs-hosts"


class TimerLease:
    """A renewable lease on one function's listener lock blob."""

    def __init__(
        self,
        connection: str,
        *,
        host_id: str,
        function_name: str,
        duration_s: int = 15,
        owner: str | None = None,
    ) -> None:
        if not 15 <= duration_s <= 60:
            raise ValueError("a blob lease lasts 15 to 60 seconds")
        self._connection = connection
        self.blob_name = f"locks/{host_id}/{function_name}.Listener"
        self._duration_s = duration_s
        self.lease_id = str(uuid.uuid4())
        self.owner = owner or self.lease_id[:8]
        self._blob: Any = None
        self._container: Any = None
        self.held = False

    async def _client(self) -> Any:
        if self._blob is None:
            from azure.core.exceptions import ResourceExistsError
            from azure.storage.blob.aio import ContainerClient

            container = ContainerClient.from_connection_string(
                self._connection, container_name=LEASE_CONTAINER
            )
            try:
                await container.create_container()
            except ResourceExistsError:
                pass
            blob = container.get_blob_client(self.blob_name)
            try:
                await blob.upload_blob(self.owner.encode(), overwrite=False)
            except ResourceExistsError:
                pass
            self._blob, self._container = blob, container
        return self._blob

    async def hold(self) -> bool:
        """Acquire or renew the lease; True when this process holds it now."""
        from azure.core.exceptions import HttpResponseError
        from azure.storage.blob.aio import BlobLeaseClient

        try:
            blob = await self._client()
            await BlobLeaseClient(blob, lease_id=self.lease_id).acquire(
                lease_duration=self._duration_s
            )
        except HttpResponseError as exc:
            if self.held:
                _log.info("timer lease %s lost (%s)", self.blob_name, exc.error_code)
            self.held = False
            return False
        except Exception as exc:  # noqa: BLE001 - storage down: do not run the tick here
            _log.warning("timer lease %s: %s", self.blob_name, type(exc).__name__)
            self.held = False
            return False
        if not self.held:
            _log.info("timer lease %s acquired by %s", self.blob_name, self.owner)
        self.held = True
        return True

    async def release(self) -> None:
        """Give the lease up (on shutdown), so another instance takes the next tick at once."""
        if self._blob is None:
            return
        from azure.storage.blob.aio import BlobLeaseClient

        try:
            if self.held:
                await BlobLeaseClient(self._blob, lease_id=self.lease_id).release()
        except Exception:  # noqa: BLE001 - it expires by itself
            pass
        finally:
            self.held = False
            blob, self._blob = self._blob, None
            await blob.close()
            await self._container.close()
