"""Span, attribute and instrument names in one place (OpenTelemetry GenAI conventions + ours)."""

from __future__ import annotations

__all__ = [
    "ATTR",
    "DURATION_BUCKETS",
    "GEN_AI_PROVIDER",
    "METER_NAME",
    "TOKEN_BUCKETS",
    "TRACER_NAME",
]

TRACER_NAME = "aoai_gateway"
METER_NAME = "aoai_gateway"
GEN_AI_PROVIDER = "azure.ai.openai"


class ATTR:
    # OpenTelemetry semantic conventions (GenAI, general)
    OPERATION = "gen_ai.operation.name"
    SYSTEM = "gen_ai.system"
    PROVIDER = "gen_ai.provider.name"
    REQUEST_MODEL = "gen_ai.request.model"
    RESPONSE_MODEL = "gen_ai.response.model"
    RESPONSE_ID = "gen_ai.response.id"
    FINISH_REASONS = "gen_ai.response.finish_reasons"
    INPUT_TOKENS = "gen_ai.usage.input_tokens"
    OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
    TOKEN_TYPE = "gen_ai.token.type"
    CACHE_READ_TOKENS = "gen_ai.usage.cache_read.input_tokens"
    REASONING_TOKENS = "gen_ai.usage.reasoning.output_tokens"
    OPENAI_API_TYPE = "openai.api.type"  # chat_completions | responses
    SERVER_ADDRESS = "server.address"
    ERROR_TYPE = "error.type"
    HTTP_STATUS = "http.response.status_code"
    MESSAGING_SYSTEM = "messaging.system"
    MESSAGING_DESTINATION = "messaging.destination.name"
    MESSAGING_MESSAGE_ID = "messaging.message.id"
    # ours
    REGION = "gateway.region"
    DEPLOYMENT = "gateway.deployment"
    ATTEMPT = "gateway.attempt"
    ATTEMPTS = "gateway.attempts"
    CALLER = "gateway.caller"
    CORRELATION_ID = "gateway.correlation_id"
    FAILURE_KIND = "gateway.failure_kind"
    COOLDOWN_SOURCE = "gateway.cooldown_source"
    OUTCOME = "gateway.outcome"
    STREAM = "gateway.stream"
    STREAM_END = "gateway.stream.end"  # completed | interrupted_upstream | client_gone
    TTFT_MS = "gateway.ttft_ms"
    JOB_ID = "gateway.job.id"
    JOB_OUTCOME = "gateway.job.outcome"
    STATE = "gateway.state"
    LANE = "gateway.lane"
    GATEWAY_OPERATION = "gateway.operation"  # the gateway's own name when it differs


# The GenAI conventions' advisory bucket boundaries.
TOKEN_BUCKETS = (
    1,
    4,
    16,
    64,
    256,
    1024,
    4096,
    16384,
    65536,
    262144,
    1048576,
    4194304,
    16777216,
    67108864,
)
DURATION_BUCKETS = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
