"""``python -m funchost --port N [--app-dir DIR]``: run the host double (see ``funchost``)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from funchost.host import serve

parser = argparse.ArgumentParser(prog="funchost")
parser.add_argument("--port", type=int, required=True, help="the HTTP front door's port")
parser.add_argument("--app-dir", type=Path, default=Path.cwd(), help="the function app's folder")
args = parser.parse_args()
asyncio.run(serve(args.app_dir, args.port))
