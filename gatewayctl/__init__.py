"""``python -m gatewayctl``: the operations surface from a terminal, against a deployed app
(its URL and master key) or the local dev server. Standard library only."""

from ._cli import main

__all__ = ["main"]
