"""The contract's message classes: ``FunctionRpc.proto`` (beside this file) compiled at start-up
with the protoc that grpcio-tools ships, into a temporary folder. Nothing generated is kept in the
repository."""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType

__all__ = ["EVENT_STREAM", "load_messages"]

EVENT_STREAM = "/AzureFunctionsRpcMessages.FunctionRpc/EventStream"
_PROTO = Path(__file__).with_name("FunctionRpc.proto")


def load_messages() -> ModuleType:
    """The compiled ``FunctionRpc_pb2`` module (compiled once per process)."""
    if "FunctionRpc_pb2" in sys.modules:
        return sys.modules["FunctionRpc_pb2"]
    import grpc_tools
    from grpc_tools import protoc

    out = tempfile.mkdtemp(prefix="funchost-proto-")
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    status = protoc.main(
        ["protoc", f"-I{_PROTO.parent}", f"-I{well_known}", f"--python_out={out}", _PROTO.name]
    )
    if status != 0:
        raise RuntimeError(f"protoc failed ({status}) on {_PROTO}")
    sys.path.insert(0, out)
    try:
        return importlib.import_module("FunctionRpc_pb2")
    finally:
        sys.path.remove(out)
