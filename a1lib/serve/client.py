"""``RemotePolicy``: a ``Policy`` whose ``infer`` runs on an ``a1 serve`` (or any openpi) server.

The same protocol as openpi's ``WebsocketClientPolicy`` (and interchangeable with it), plus what
a control loop needs: a receive timeout, a reconnect after the server closed the connection on
an error, and the last round-trip / server timings for latency reports.
"""

from __future__ import annotations

import time
from typing import Any

from websockets.sync.client import connect

from a1lib.policy_protocol import InferenceSettings
from a1lib.serve import msgpack_numpy


class RemotePolicyError(RuntimeError):
    """The server answered with an error (its traceback is in the message) or went away."""


class RemotePolicy:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = 8000,
        api_key: str | None = None,
        connect_timeout_s: float = 10.0,
        timeout_s: float | None = 30.0,
    ) -> None:
        self.uri = host if host.startswith("ws") else f"ws://{host}"
        if port is not None:
            self.uri += f":{port}"
        self.api_key, self.connect_timeout_s, self.timeout_s = api_key, connect_timeout_s, timeout_s
        self._packer = msgpack_numpy.Packer()
        self._ws = None
        self.metadata: dict[str, Any] = {}
        self.last_latency_s: float | None = None
        self.last_server_timing: dict[str, float] = {}
        self._connect()

    def _connect(self) -> None:
        headers = {"Authorization": f"Api-Key {self.api_key}"} if self.api_key else None
        deadline = time.monotonic() + self.connect_timeout_s
        while True:
            try:
                self._ws = connect(self.uri, compression=None, max_size=None, additional_headers=headers, legacy=True,
                                   open_timeout=self.connect_timeout_s)
                break
            except ConnectionRefusedError as e:  # server still starting: retry until the deadline
                if time.monotonic() > deadline:
                    raise RemotePolicyError(f"no policy server at {self.uri} "
                                            f"after {self.connect_timeout_s:.0f} s") from e
                time.sleep(0.2)
            except Exception as e:  # noqa: BLE001 (e.g. HTTP 401 for a wrong API key)
                raise RemotePolicyError(f"cannot connect to {self.uri}: {e}") from e
        self.metadata = msgpack_numpy.unpackb(self._ws.recv(timeout=self.connect_timeout_s))

    def get_server_metadata(self) -> dict[str, Any]:
        return self.metadata

    @property
    def settings(self) -> InferenceSettings:
        """The served policy's own inference settings, as its metadata states them (``delta``: the frame
        offset of ``observation.image_past`` to send; ``replan_every``: actions to run per chunk)."""
        m = self.metadata
        return InferenceSettings(replan_every=m.get("replan_every"), delta=int(m.get("delta", 0)),
                                 noise_scale=float(m.get("noise_scale", 1.0)))

    def infer(self, obs: dict[str, Any]) -> dict[str, Any]:
        if self._ws is None:
            self._connect()  # the server closed the last connection after an error
        t0 = time.perf_counter()
        try:
            self._ws.send(self._packer.pack(obs))
            response = self._ws.recv(timeout=self.timeout_s)
        except TimeoutError as e:
            self.close()  # a late answer would be taken for the next request's
            raise RemotePolicyError(f"policy server {self.uri} did not answer within {self.timeout_s} s") from e
        except Exception as e:  # noqa: BLE001 (connection closed)
            self.close()
            raise RemotePolicyError(f"policy server {self.uri} connection lost: {e}") from e
        self.last_latency_s = time.perf_counter() - t0
        if isinstance(response, str):  # protocol: a text frame is the server's traceback
            self.close()
            raise RemotePolicyError(f"error in policy server:\n{response}")
        result = msgpack_numpy.unpackb(response)
        self.last_server_timing = dict(result.get("server_timing", {}))
        return result

    def reset(self) -> None:
        pass  # the server holds no episode state

    def close(self) -> None:
        if self._ws is not None:
            try:
                self._ws.close()
            finally:
                self._ws = None

    def __enter__(self) -> "RemotePolicy":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
