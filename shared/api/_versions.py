"""The ``api-version`` values the Azure-shaped routes accept (their own module, so the routes
and the OpenAPI document that lists them both read it without importing each other)."""

__all__ = ["AZURE_API_VERSIONS", "V1_API_VERSIONS"]

# The data-plane inference versions Azure OpenAI answers (GA and preview), plus "v1".
AZURE_API_VERSIONS = frozenset(
    {
        "2022-12-01",
        "2023-03-15-preview",
        "2023-05-15",
        "2023-06-01-preview",
        "2023-07-01-preview",
        "2023-08-01-preview",
        "2023-09-01-preview",
        "2023-10-01-preview",
        "2023-12-01-preview",
        "2024-02-01",
        "2024-02-15-preview",
        "2024-03-01-preview",
        "2024-04-01-preview",
        "2024-05-01-preview",
        "2024-06-01",
        "2024-07-01-preview",
        "2024-08-01-preview",
        "2024-09-01-preview",
        "2024-10-01-preview",
        "2024-10-21",
        "2024-12-01-preview",
        "2025-01-01-preview",
        "2025-02-01-preview",
        "2025-03-01-preview",
        "2025-04-01-preview",
        "v1",
    }
)
V1_API_VERSIONS = frozenset({"v1", "preview", "latest"})
