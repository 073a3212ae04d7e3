"""``python -m aoai_sim --config FILE``: run the simulated regions and the token endpoint."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from ._runner import serve_forever
from .config import ConfigError, load_config

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, load the config, serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m aoai_sim", description="Local Azure OpenAI simulator"
    )
    parser.add_argument(
        "--config", help="JSON config file (default: $AOAI_SIM_CONFIG, else aoai_sim/local.json)"
    )
    parser.add_argument("--log-level", default=os.environ.get("AOAI_SIM_LOG_LEVEL", "WARNING"))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    try:
        config = load_config(args.config, os.environ)
    except (ConfigError, ValueError) as exc:
        print(f"aoai_sim: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve_forever(config))
    except OSError as exc:
        print(f"aoai_sim: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
