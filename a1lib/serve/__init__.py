"""Remote inference, openpi-compatible: ``a1 serve`` (server.py), ``RemotePolicy`` (client.py) and
the msgpack-numpy wire format (msgpack_numpy.py)."""

from a1lib.serve.client import RemotePolicy, RemotePolicyError
from a1lib.serve.server import PolicyServer, ServerConfig

__all__ = ["PolicyServer", "RemotePolicy", "RemotePolicyError", "ServerConfig"]
