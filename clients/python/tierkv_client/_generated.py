"""Imports the generated tierkv.v1 modules (../gen/tierkv/v1, made by `buf generate`).

The generated gRPC stubs import their messages as ``tierkv.v1.kvstore_pb2`` (protoc's Python
generators know no relative imports), so ``gen/`` must be a root on ``sys.path``. An installed
package (pyproject.toml) has ``tierkv.v1`` on the path already; from a source checkout the
``gen/`` directory beside this package is added.
"""

from __future__ import annotations

import os
import sys

try:
    from tierkv.v1 import kvstore_pb2, kvstore_pb2_grpc
except ImportError:  # a source checkout: clients/python/gen is not on sys.path yet
    _GEN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gen")
    if _GEN not in sys.path:
        sys.path.append(_GEN)
    from tierkv.v1 import kvstore_pb2, kvstore_pb2_grpc

__all__ = ["kvstore_pb2", "kvstore_pb2_grpc"]
