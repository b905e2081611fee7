"""``a1 serve``: a policy behind a websocket, speaking openpi's remote-inference protocol.

Why a server: the robot PC runs the control loop (cameras, motors, safety) and stays small; the
model runs wherever there is a GPU. Any openpi client works unchanged (``openpi_client.
websocket_client_policy.WebsocketClientPolicy(host, port, api_key)``), and so does our
``RemotePolicy``.

The protocol, per connection:

1. the server sends a metadata dict (msgpack-numpy, see ``msgpack_numpy.py``). It always has the
   keys of ``REQUIRED_METADATA``, enough for a client to build a request: ``action_dim`` (A),
   ``horizon`` (H), ``action_range`` ([low, high] of every action entry), ``camera_keys`` (image
   keys the policy reads; ``observation.image_past`` is optional), ``image_shape`` ([H, W, 3]) and
   ``state_dim`` (S). ``None`` means "not fixed": any size is accepted. Values come from the
   policy's ``metadata``, else ``ServerConfig``; the server enforces ``image_shape`` and ``state_dim``;
2. loop: the client sends an observation dict (``observation.image`` uint8 (H,W,3),
   ``observation.state`` float (S,), ``task`` str, optional ``observation.image_past``); the
   server answers ``{"actions": float32 (H, A), ..., "server_timing": {"infer_ms", "prev_total_ms"}}``;
3. on any error the server sends a *text* frame and closes that connection (code 1011). Other
   connections are unaffected. The text is the traceback (``error_detail="traceback"``, the default
   on a loopback host) or one line ``"<ErrorType>: <message>"`` (``"message"``, the default when
   binding beyond loopback: tracebacks show file paths to whoever connects).

Safety by default: binds 127.0.0.1 (``--host 0.0.0.0`` to expose it), optional API key checked in
the ``Authorization: Api-Key <key>`` header (what openpi-client sends), messages capped at
``--max-message-mb`` (larger frames are refused by the websocket layer, close code 1009), images
capped at ``--max-image-side``, msgpack only (never pickle). Inference runs in a worker thread
under a lock, so a slow model never blocks the other connections' handshakes.
"""

from __future__ import annotations

import asyncio
import hmac
import http
import ipaddress
import logging
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np
import websockets
from websockets.asyncio.server import serve
from websockets.frames import CloseCode

from a1lib.constants import IMAGE, IMAGE_PAST, STATE, TASK
from a1lib.serve import msgpack_numpy

log = logging.getLogger("a1.serve")


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000  # 0: pick a free port (see PolicyServer.port)
    api_key: str | None = None
    max_message_mb: float = 64.0
    max_image_side: int = 1024
    max_state_dim: int = 1024
    image_shape: tuple[int, int, int] | None = None  # enforced; None: the policy's metadata, else any
    state_dim: int | None = None  # enforced; None: the policy's metadata, else any
    error_detail: str | None = None  # "traceback" | "message"; None: traceback on loopback only

    def resolved_error_detail(self) -> str:
        if self.error_detail is not None:
            if self.error_detail not in ERROR_DETAILS:
                raise ValueError(f"ServerConfig.error_detail must be one of {ERROR_DETAILS}, got {self.error_detail!r}")
            return self.error_detail
        return "traceback" if is_loopback(self.host) else "message"


ERROR_DETAILS = ("traceback", "message")
# What a client needs to build a request (see the module docstring); None = not fixed.
REQUIRED_METADATA = ("action_dim", "horizon", "action_range", "camera_keys", "image_shape", "state_dim")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name or "": may resolve to anything


def one_line_error(e: BaseException, limit: int = 300) -> str:
    """``"<ErrorType>: <first line of the message>"``, without a traceback or file paths."""
    lines = str(e).strip().splitlines()
    text = f"{type(e).__name__}: {lines[0] if lines else ''}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ObservationError(ValueError):
    """The observation dict does not have the keys, dtypes or shapes the policy needs."""


def _check_image(obs: dict, key: str, cfg: ServerConfig) -> np.ndarray:
    img = obs[key]
    if not isinstance(img, np.ndarray):
        raise ObservationError(f"{key} must be a numpy array, got {type(img).__name__}")
    if img.dtype != np.uint8:
        raise ObservationError(f"{key} must be uint8, got {img.dtype}")
    if img.ndim != 3 or img.shape[2] != 3 or min(img.shape[:2]) < 1:
        raise ObservationError(f"{key} must have shape (H, W, 3), got {img.shape}")
    if max(img.shape[:2]) > cfg.max_image_side:
        raise ObservationError(f"{key} of shape {img.shape} is larger than the limit {cfg.max_image_side} px per side")
    return img


def validate_observation(obs: Any, cfg: ServerConfig, expect: dict[str, Any] | None = None) -> dict[str, Any]:
    """Check an incoming observation; returns it (arrays made writable copies) or raises."""
    expect = expect or {}
    if not isinstance(obs, dict):
        raise ObservationError(f"observation must be a map, got {type(obs).__name__}")
    keys = {k.decode() if isinstance(k, bytes) else k: v for k, v in obs.items()}
    missing = [k for k in (IMAGE, STATE, TASK) if k not in keys]
    if missing:
        raise ObservationError(f"observation lacks {missing}; got keys {sorted(map(str, keys))}")
    out = dict(keys)
    out[IMAGE] = _check_image(keys, IMAGE, cfg).copy()
    if IMAGE_PAST in keys:
        past = _check_image(keys, IMAGE_PAST, cfg)
        if past.shape != out[IMAGE].shape:
            raise ObservationError(f"{IMAGE_PAST} shape {past.shape} differs from {IMAGE} {out[IMAGE].shape}")
        out[IMAGE_PAST] = past.copy()
    if expect.get("image_shape") is not None and tuple(out[IMAGE].shape) != tuple(expect["image_shape"]):
        raise ObservationError(f"{IMAGE} has shape {out[IMAGE].shape}, "
                               f"the policy expects {tuple(expect['image_shape'])}")
    state = keys[STATE]
    if not isinstance(state, np.ndarray) or state.dtype.kind != "f":
        raise ObservationError(f"{STATE} must be a float array, got {getattr(state, 'dtype', type(state).__name__)}")
    if state.ndim != 1 or state.shape[0] > cfg.max_state_dim:
        raise ObservationError(f"{STATE} must have shape (S,) with S <= {cfg.max_state_dim}, got {state.shape}")
    if expect.get("state_dim") is not None and state.shape[0] != int(expect["state_dim"]):
        raise ObservationError(f"{STATE} has {state.shape[0]} entries, the policy expects {expect['state_dim']}")
    if not np.all(np.isfinite(state)):
        raise ObservationError(f"{STATE} contains NaN or inf")
    out[STATE] = state.astype(np.float32)
    if not isinstance(keys[TASK], str):
        raise ObservationError(f"{TASK} must be a string, got {type(keys[TASK]).__name__}")
    return out


def _check_result(result: Any) -> dict[str, Any]:
    if not isinstance(result, dict) or "actions" not in result:
        raise TypeError(f"policy.infer must return a dict with 'actions', got {type(result).__name__}")
    actions = np.asarray(result["actions"], dtype=np.float32)
    if actions.ndim != 2:
        raise ValueError(f"policy returned actions of shape {actions.shape}, expected (H, A)")
    return {**result, "actions": actions}


def server_metadata(policy: Any, config: ServerConfig, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The metadata sent on connect: defaults, the policy's ``metadata``, ``config``, ``extra``."""
    meta: dict[str, Any] = {
        "server": "a1lib", "protocol": "openpi-websocket", "observation_keys": [IMAGE, IMAGE_PAST, STATE, TASK],
        "camera_keys": [IMAGE, IMAGE_PAST], **{k: None for k in REQUIRED_METADATA if k != "camera_keys"},
        **dict(getattr(policy, "metadata", {}) or {}),
    }
    as_value = {"image_shape": lambda v: [int(x) for x in v], "state_dim": int}
    for key, value in (("image_shape", config.image_shape), ("state_dim", config.state_dim)):
        if value is None:
            continue
        value = as_value[key](value)
        if meta[key] is not None and as_value[key](meta[key]) != value:
            raise ValueError(f"ServerConfig.{key}={value} contradicts the policy's metadata {key}={meta[key]}")
        meta[key] = value
    meta.update(extra or {})
    shape = meta["image_shape"]
    if shape is not None and (len(shape) != 3 or int(shape[2]) != 3):
        raise ValueError(f"metadata image_shape must be [H, W, 3], got {shape}")
    return meta


class PolicyServer:
    def __init__(self, policy: Any, config: ServerConfig | None = None, metadata: dict[str, Any] | None = None) -> None:
        self.policy = policy
        self.config = config or ServerConfig()
        self.error_detail = self.config.resolved_error_detail()
        self.metadata = server_metadata(policy, self.config, metadata)
        self.port: int | None = None
        self.served = 0  # answered requests
        self.errors = 0  # connections closed with an error
        self._lock: asyncio.Lock | None = None
        self._stop: asyncio.Future | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -------------------------------------------------------------- websocket side
    def _process_request(self, connection, request):
        if request.path == "/healthz":
            return connection.respond(http.HTTPStatus.OK, "OK\n")
        key = self.config.api_key
        if key:
            got = request.headers.get("Authorization", "")
            if not hmac.compare_digest(got.encode(), f"Api-Key {key}".encode()):
                return connection.respond(http.HTTPStatus.UNAUTHORIZED,
                                          "missing or wrong API key (Authorization: Api-Key <key>)\n")
        return None

    async def _handler(self, ws) -> None:
        max_elements = int(self.config.max_message_mb * 1e6)
        await ws.send(msgpack_numpy.packb(self.metadata))
        prev_total_ms = None
        while True:
            try:
                message = await ws.recv()
            except websockets.ConnectionClosed:
                break
            t0 = time.monotonic()
            try:
                if isinstance(message, str):
                    raise ObservationError("expected a binary msgpack frame, got a text frame")
                obs = validate_observation(msgpack_numpy.unpackb(message, max_elements=max_elements),
                                           self.config, self.metadata)
                t1 = time.monotonic()
                async with self._lock:  # one inference at a time: models are not thread-safe
                    result = await asyncio.to_thread(self.policy.infer, obs)
                t2 = time.monotonic()
                result = _check_result(result)
                result["server_timing"] = {"decode_ms": 1e3 * (t1 - t0), "infer_ms": 1e3 * (t2 - t1)}
                if prev_total_ms is not None:
                    result["server_timing"]["prev_total_ms"] = prev_total_ms
                await ws.send(msgpack_numpy.packb(result))
                self.served += 1
                prev_total_ms = 1e3 * (time.monotonic() - t0)
            except websockets.ConnectionClosed:
                break
            except Exception as e:  # noqa: BLE001 (protocol: text frame, then close)
                self.errors += 1
                if self.error_detail == "traceback":
                    text, what = traceback.format_exc(), "Traceback"
                    log.warning("closing connection after error: %s", one_line_error(e))
                else:  # the client gets one line; the operator still sees where it failed
                    text, what = one_line_error(e), "Error message"
                    log.warning("closing connection after error: %s", traceback.format_exc())
                try:
                    await ws.send(text)
                    await ws.close(code=CloseCode.INTERNAL_ERROR,
                                   reason=f"Internal server error. {what} included in previous frame.")
                except websockets.ConnectionClosed:
                    pass
                break

    async def serve_async(self, ready: threading.Event | None = None) -> None:
        self._lock = asyncio.Lock()
        self._loop = asyncio.get_running_loop()
        self._stop = self._loop.create_future()
        async with serve(
            self._handler, self.config.host, self.config.port, compression=None,
            max_size=int(self.config.max_message_mb * 1e6), process_request=self._process_request,
        ) as server:
            self.port = server.sockets[0].getsockname()[1]
            log.info("serving %s on ws://%s:%d", self.metadata.get("policy", "policy"), self.config.host, self.port)
            if ready is not None:
                ready.set()
            await self._stop

    # -------------------------------------------------------------- python side
    def serve_forever(self) -> None:
        asyncio.run(self.serve_async())

    def start_in_thread(self, timeout_s: float = 10.0) -> "PolicyServer":
        """Serve from a daemon thread (notebooks, tests); ``self.port`` is set when this returns."""
        ready = threading.Event()
        errors: list[BaseException] = []

        def work() -> None:
            try:
                asyncio.run(self.serve_async(ready))
            except BaseException as e:  # noqa: BLE001 (reported below)
                errors.append(e)
                ready.set()

        self._thread = threading.Thread(target=work, name="a1-serve", daemon=True)
        self._thread.start()
        if not ready.wait(timeout_s) or errors:
            raise RuntimeError(f"policy server did not start on {self.config.host}:{self.config.port}: {errors}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and not self._stop.done():
            self._loop.call_soon_threadsafe(lambda: self._stop.done() or self._stop.set_result(None))
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
