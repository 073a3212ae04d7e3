"""The backlog's frozen settings: queues, the job store, parking and re-drive limits.

Keys are ``BACKLOG_<FIELD>``; a few fields answer to the names the Functions host itself uses in
binding expressions and identity-based connections (``%BACKLOG_QUEUE%``, ``%PARKING_QUEUE%``,
``%RETRY_TIMER_SCHEDULE%``, ``ServiceBusConnection__fullyQualifiedNamespace``, ...), so one value
serves both the host and our code. Loaded through pydantic-settings (``AppSettings``), the host's
names given as each field's ``validation_alias``; an empty value counts as unset.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Annotated

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from ._errors import settings_error_from
from ._source import AppSettings, env_names, json_object, load_from
from ._storage import StorageSettings, storage_field

__all__ = ["BacklogSettings", "load_backlog_settings"]

_PREFIX = "BACKLOG_"


def _host(name: str) -> AliasChoices:
    """A field read from the host's own setting name instead of BACKLOG_<FIELD>."""
    return AliasChoices(name)


_STORAGE_QUEUE = re.compile(
    r"^[a-z0-9](?!.*--)[a-z0-9-]{1,54}[a-z0-9]$"
)  # leaves room for "-poison"
_TABLE = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")
_SB_QUEUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,259}$")  # a queue, never a sub-queue ("/")
EVERY_CALLER = "*"


def _default_reply_queues() -> dict[str, tuple[str, ...]]:
    """Every caller may use ``replies`` (the queue ``infra/`` creates by default)."""
    return {EVERY_CALLER: ("replies",)}


_CONTAINER = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")

MAX_VISIBILITY_S = 7 * 24 * 3600  # Storage queues refuse a longer visibility timeout


class BacklogSettings(AppSettings):
    """Everything the backlog needs. See docs/configuration.md ("Backlog settings") for each key."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix=_PREFIX,
        case_sensitive=False,
        env_ignore_empty=True,
        populate_by_name=True,
    )

    queue: str = Field(
        validation_alias=_host("BACKLOG_QUEUE"),
        default="backlog",
        min_length=1,
        description="The Service Bus work queue (BACKLOG_QUEUE).",
    )
    parking_queue: str = Field(
        validation_alias=_host("PARKING_QUEUE"),
        default="parked",
        description="Storage queue of throttled jobs (PARKING_QUEUE); poison is '<name>-poison'.",
    )
    timer_schedule: str = Field(
        validation_alias=_host("RETRY_TIMER_SCHEDULE"),
        default="*/30 * * * * *",
        description="NCRONTAB of the re-drive timer (RETRY_TIMER_SCHEDULE).",
    )
    jobs_table: str = Field(default="jobs", description="Table of job records.")
    results_container: str = Field(
        default="jobresults",
        description="Blob container for results and parked bodies too big for a table or queue.",
    )
    servicebus_connection: str | None = Field(
        validation_alias=_host("ServiceBusConnection"),
        default=None,
        description="Connection string (local/test broker); else identity-based.",
    )
    servicebus_namespace: str | None = Field(
        validation_alias=_host("ServiceBusConnection__fullyQualifiedNamespace"),
        default=None,
        description="<ns>.servicebus.windows.net for managed identity.",
    )
    servicebus_client_id: str | None = Field(
        validation_alias=_host("ServiceBusConnection__clientId"),
        default=None,
        description="User-assigned identity's client id; None = system-assigned.",
    )
    storage_connection: str | None = storage_field(
        "storage_connection", description="Storage connection string (Azurite locally)."
    )
    storage_account: str | None = storage_field(
        "storage_account", description="Storage account name for managed identity."
    )
    storage_client_id: str | None = storage_field("storage_client_id")
    storage_queue_uri: str | None = storage_field(
        "storage_queue_uri",
        description="Identity-based storage by service URI (instead of the account name).",
    )
    storage_table_uri: str | None = storage_field("storage_table_uri")
    storage_blob_uri: str | None = storage_field("storage_blob_uri")
    job_timeout_s: float = Field(
        default=180.0,
        gt=0,
        description="Budget of one model call inside the worker (under functionTimeout).",
    )
    max_parks: int = Field(
        default=20, ge=1, description="A job parked this often goes to the parking poison queue."
    )
    max_park_s: float = Field(default=float(MAX_VISIBILITY_S), gt=0, le=MAX_VISIBILITY_S)
    suspect_park_s: float = Field(
        default=60.0,
        gt=0,
        description="A job whose request every region failed with a 5xx while serving others is "
        "parked this long (doubling per park) instead of failing at once: an outage's first "
        "moments look the same.",
    )
    suspect_parks: int = Field(
        default=3, ge=0, description="Such a job fails for good after this many parks."
    )
    min_park_s: float = Field(
        default=1.0, ge=0, description="Shortest park, so a retry_at in the past does not spin."
    )
    redrive_batch: int = Field(
        default=32,
        ge=1,
        le=32,
        description="Parked messages read per timer pass (Storage caps a read at 32).",
    )
    redrive_max_per_run: int = Field(
        default=256, ge=1, description="Upper bound of jobs re-driven by one timer run."
    )
    redrive_concurrency: int = Field(
        default=8, ge=1, le=64, description="Parked jobs moved at once by one timer run."
    )
    probe_timeout_s: float = Field(
        default=10.0, gt=0, description="The timer's region probe gives up after this."
    )
    redrive_claim_s: float = Field(
        default=60.0,
        gt=0,
        description="How long a parked message is hidden while the timer moves it.",
    )
    defer_s: float = Field(
        default=15.0,
        gt=0,
        description="A due job that the quota cannot absorb in this run is looked at again after this.",
    )
    redrive_horizon_s: float | None = Field(
        default=None,
        gt=0,
        description="How far ahead one timer run schedules re-drives (the time to its next run); None: the timer "
        "schedule's period when evenly spaced ('*/N' seconds, a fixed minute), else 30 s.",
    )
    max_dlq_redrives: int = Field(
        default=2, ge=0, description="Re-drives of a job dead-lettered for a transient reason."
    )
    dlq_redrive_delay_s: float = Field(
        default=60.0,
        ge=0,
        description="Delay before a dead-lettered job is re-driven (doubles each time).",
    )
    inline_result_chars: int = Field(
        default=30_000,
        ge=1,
        le=30_000,
        description="Larger results spill to blob (a table property holds 64 KiB of UTF-16).",
    )
    inline_reply_bytes: int = Field(
        default=192_000,
        ge=0,
        description="Results up to this size travel in the reply; larger ones by reference.",
    )
    max_message_bytes: int = Field(
        default=256 * 1024,
        ge=16 * 1024,
        description="Service Bus message size limit: 262144 on Standard, up to 104857600 on Premium. "
        "Job bodies that do not fit travel by claim check (body in blob, reference on the queue).",
    )
    max_job_bytes: int = Field(
        default=4_000_000,
        ge=1,
        description="Largest job body accepted (POST /api/v1/jobs answers 413 above it).",
    )
    storage_unavailable_retry_s: int = Field(
        default=10,
        ge=1,
        description="Retry-After of the 503 answered while storage is unreachable.",
    )
    record_retry_s: float = Field(
        default=30.0,
        ge=0,
        description="How long the worker keeps trying to record an outcome the model has already "
        "answered while storage or Service Bus is out of reach (0: not at all), before it leaves "
        "the message to redelivery (which calls the model again).",
    )
    reply_lease_s: float = Field(
        default=60.0, gt=0, description="How long one delivery owns sending a job's reply."
    )
    status_route: str = Field(
        default="/api/v1/jobs", description="Base of the status URL returned by POST /api/v1/jobs."
    )
    # -- the batch lane (docs/configuration.md, "Batch lane") --------------------------------------
    batch_table: str = Field(default="batchlane", description="Table of batch-lane rows.")
    batch_max_requests: int = Field(
        default=100_000, ge=1, le=100_000, description="Lines per batch file (Azure: 100,000)."
    )
    batch_max_bytes: int = Field(
        default=200_000_000,
        ge=1_000,
        le=200_000_000,
        description="Bytes per batch file (Azure: 200 MB).",
    )
    batch_max_wait_s: float = Field(
        default=300.0, ge=0, description="A file is flushed when its oldest job waited this long."
    )
    batch_window_s: float = Field(
        default=86_400.0,
        gt=0,
        description="Time a batch may take (the 24h completion window, or the simulator's scaled one).",
    )
    batch_margin_s: float = Field(
        default=3_600.0,
        ge=0,
        description="'auto' picks batch only when the deadline is further than window + margin; a "
        "batched job whose deadline comes within this margin is re-routed to the standard lane.",
    )
    batch_retry_s: float = Field(
        default=60.0, gt=0, description="First back-off after token_limit_exceeded (doubles)."
    )

    reply_queues: Annotated[dict[str, tuple[str, ...]], NoDecode] = Field(
        default_factory=_default_reply_queues,
        description="The Service Bus queues each caller may name in reply_to (JSON: caller -> "
        "queue names, a trailing '*' a prefix; the caller '*' applies to every caller). The "
        "backlog queue and its dead-letter queue are never allowed.",
    )

    @field_validator("reply_queues", mode="before")
    @classmethod
    def _reply_queues_from_json(cls, value: object) -> object:
        found = json_object(value, '{"<caller>" or "*": ["<queue>", ...]}')
        out: dict[str, tuple[str, ...]] = {}
        for caller, queues in found.items():
            if isinstance(queues, str):
                queues = [queues]
            if not isinstance(queues, (list, tuple)) or not all(
                isinstance(q, str) and (q == "*" or _SB_QUEUE.match(q.removesuffix("*")))
                for q in queues
            ):
                raise ValueError(
                    f"{caller}: a list of Service Bus queue names (a trailing '*': every queue "
                    "whose name starts with what precedes it)"
                )
            out[str(caller)] = tuple(queues)
        return out

    @model_validator(mode="after")
    def _reply_queues_not_the_backlog(self) -> BacklogSettings:
        forbidden = {self.queue.lower()}
        for caller, queues in self.reply_queues.items():
            if any(q.lower() in forbidden for q in queues):
                raise ValueError(
                    f"reply_queues: {caller}: the backlog queue '{self.queue}' cannot take replies"
                )
        return self

    def reply_allowed(self, caller: str | None, queue: str) -> bool:
        """Whether ``caller`` may have replies sent to ``queue`` (``reply_queues``): never the
        backlog queue or any sub-queue such as its dead-letter queue."""
        if "/" in queue or queue.lower() == self.queue.lower():
            return False
        allowed = self.reply_queues.get(EVERY_CALLER, ())
        if caller is not None:
            allowed = (*allowed, *self.reply_queues.get(caller, ()))
        return any(
            name == queue or (name.endswith("*") and queue.startswith(name[:-1]))
            for name in allowed
        )

    @field_validator("parking_queue")
    @classmethod
    def _queue_name(cls, value: str) -> str:
        if not _STORAGE_QUEUE.match(value):
            raise ValueError(
                "must be 3-56 lowercase letters, digits or single '-' (room is left for '-poison')"
            )
        return value

    @field_validator("jobs_table", "batch_table")
    @classmethod
    def _table_name(cls, value: str) -> str:
        if not _TABLE.match(value):
            raise ValueError("must be 3-63 letters or digits, starting with a letter")
        return value

    @field_validator("results_container")
    @classmethod
    def _container_name(cls, value: str) -> str:
        if not _CONTAINER.match(value):
            raise ValueError("must be 3-63 lowercase letters, digits or single '-'")
        return value

    @model_validator(mode="after")
    def _connections(self) -> BacklogSettings:
        if not (self.servicebus_connection or self.servicebus_namespace):
            raise ValueError(
                "servicebus_connection: set ServiceBusConnection (a connection string) or "
                "ServiceBusConnection__fullyQualifiedNamespace (managed identity)"
            )
        if not (self.storage_connection or self.storage_account or self.storage_queue_uri):
            raise ValueError(
                "storage_connection: set AzureWebJobsStorage, or AzureWebJobsStorage__accountName "
                "(or __queueServiceUri) for an identity-based connection"
            )
        return self

    def storage_endpoint(self, kind: str) -> str:
        """``https://<account>.<kind>.core.windows.net`` of identity-based storage, or the
        ``AzureWebJobsStorage__<kind>ServiceUri`` given (the others derived from the queue's)."""
        return self.storage.endpoint(kind)

    @property
    def storage(self) -> StorageSettings:
        """The storage these settings name (the app's one storage settings model)."""
        return StorageSettings.of(self)

    @property
    def parking_poison_queue(self) -> str:
        return f"{self.parking_queue}-poison"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.queue}/$DeadLetterQueue"


def load_backlog_settings(environ: Mapping[str, str] | None = None) -> BacklogSettings:
    """Validate settings from ``environ`` (default ``os.environ``); raise SettingsError naming the bad key."""
    env = os.environ if environ is None else environ
    try:
        return load_from(BacklogSettings, env)
    except ValidationError as exc:
        raise settings_error_from(
            exc, prefix=_PREFIX, source_names=env_names(BacklogSettings, _PREFIX)
        ) from exc
