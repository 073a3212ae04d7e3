"""The gateway's logic. One package per capability, each with a public ``__all__``.

Only the thin adapters in ``function_app.py`` import ``azure.functions``.
"""

__version__ = "0.2.0"  # CHANGELOG.md; the compatibility policy: docs/compatibility.md
