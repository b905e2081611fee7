"""The policy server: wire format, openpi-client compatibility, API key, robustness to bad
clients, the CLI, and the control loop over the network."""

import json
import os
import socket
import subprocess
import sys

import msgpack
import numpy as np
import pytest
import websockets
from openpi_client import msgpack_numpy as openpi_msgpack
from openpi_client.websocket_client_policy import WebsocketClientPolicy
from websockets.sync.client import connect

from a1lib.constants import IMAGE, IMAGE_PAST, STATE, TASK
from a1lib.eval.evaluate import load_policy
from a1lib.policy_protocol import RandomPolicy
from a1lib.serve import PolicyServer, RemotePolicy, RemotePolicyError, ServerConfig
from a1lib.serve import msgpack_numpy as ours


def observation(seed=0, size=64):
    rng = np.random.default_rng(seed)
    return {IMAGE: rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
            IMAGE_PAST: rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
            STATE: rng.normal(size=5).astype(np.float32), TASK: "sort the parts"}


@pytest.fixture
def server():
    s = PolicyServer(RandomPolicy(seed=0), ServerConfig(port=0, max_message_mb=16)).start_in_thread()
    yield s
    s.stop()


# ------------------------------------------------------------------ wire format
def test_msgpack_numpy_matches_openpi_bytes_and_refuses_unsafe_dtypes():
    msg = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.float64(2.5), "c": "text",
           "d": np.zeros((2, 2, 3), np.uint8), "e": [1, 2]}
    assert ours.packb(msg) == openpi_msgpack.packb(msg)
    back = ours.unpackb(openpi_msgpack.packb(msg))
    assert back["a"].dtype == np.float32 and np.array_equal(back["a"], msg["a"]) and back["b"] == 2.5
    for bad in (np.array([object()], dtype=object), np.zeros(2, np.complex64), np.zeros(2, "V4")):
        with pytest.raises(ValueError, match="Unsupported dtype"):
            ours.packb({"x": bad})
    forged = msgpack.packb({b"__ndarray__": True, b"data": b"\0" * 16, b"dtype": "|O", b"shape": [2]})
    with pytest.raises(ours.DecodeError, match="refused dtype"):
        ours.unpackb(forged)
    short = msgpack.packb({b"__ndarray__": True, b"data": b"\0" * 3, b"dtype": "<f4", b"shape": [2]})
    with pytest.raises(ours.DecodeError, match="needs 8"):
        ours.unpackb(short)
    huge = msgpack.packb({b"__ndarray__": True, b"data": b"", b"dtype": "<f4", b"shape": [10**6, 10**6]})
    with pytest.raises(ours.DecodeError, match="more than the limit"):
        ours.unpackb(huge, max_elements=10**6)
    with pytest.raises(ours.DecodeError, match="not a valid msgpack"):
        ours.unpackb(b"\xc1garbage")


# ------------------------------------------------------------------ openpi client
def test_openpi_client_round_trip(server):
    client = WebsocketClientPolicy("127.0.0.1", server.port)
    meta = client.get_server_metadata()
    assert meta["action_dim"] == 5 and meta["horizon"] == 10 and meta["protocol"] == "openpi-websocket"
    out = client.infer(observation())
    assert out["actions"].shape == (10, 5) and out["actions"].dtype == np.float32
    assert out["server_timing"]["infer_ms"] >= 0
    expected = RandomPolicy(seed=0).infer({})["actions"]
    assert np.array_equal(out["actions"], expected)  # the same bytes the policy produced
    out2 = client.infer(observation(1))
    assert "prev_total_ms" in out2["server_timing"]


def test_api_key_is_checked_in_the_headers():
    s = PolicyServer(RandomPolicy(), ServerConfig(port=0, api_key="s3cret")).start_in_thread()
    try:
        ok = WebsocketClientPolicy("127.0.0.1", s.port, api_key="s3cret")
        assert ok.infer(observation())["actions"].shape == (10, 5)
        for key in (None, "wrong"):
            with pytest.raises(websockets.InvalidStatus, match="401"):
                WebsocketClientPolicy("127.0.0.1", s.port, api_key=key)
        with pytest.raises(RemotePolicyError, match="401"):
            RemotePolicy("127.0.0.1", s.port, api_key="wrong")
        assert RemotePolicy("127.0.0.1", s.port, api_key="s3cret").infer(observation())["actions"].shape == (10, 5)
    finally:
        s.stop()


# ------------------------------------------------------------------ robustness
def _bad_exchange(port, payload):
    """Send one bad message; return the server's text reply and the close code."""
    with connect(f"ws://127.0.0.1:{port}", compression=None, max_size=None) as ws:
        ws.recv()  # metadata
        ws.send(payload)
        reply = ws.recv(timeout=5)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            ws.recv(timeout=5)
        return reply, closed.value.rcvd.code


def test_bad_messages_get_an_error_reply_while_another_client_is_served(server):
    good = WebsocketClientPolicy("127.0.0.1", server.port)  # stays connected throughout
    wrong_dtype = observation()
    wrong_dtype[IMAGE] = wrong_dtype[IMAGE].astype(np.float32)
    oversized = observation()
    oversized[IMAGE] = np.zeros((1100, 1100, 3), np.uint8)
    missing = observation()
    del missing[STATE]
    nan_state = observation()
    nan_state[STATE][0] = np.nan
    cases = {
        "garbage": (b"\xc1\xff\x00 not msgpack", "not a valid msgpack"),
        "wrong dtype": (ours.packb(wrong_dtype), "observation.image must be uint8, got float32"),
        "oversized": (ours.packb(oversized), "larger than the limit 1024"),
        "missing key": (ours.packb(missing), "lacks ['observation.state']"),
        "nan state": (ours.packb(nan_state), "NaN"),
        "not a map": (ours.packb([1, 2, 3]), "must be a map"),
        "text frame": ("hello", "text frame"),
        "object dtype": (msgpack.packb({b"__ndarray__": True, b"data": b"\0" * 8, b"dtype": "|O", b"shape": [1]}),
                         "refused dtype"),
    }
    for name, (payload, expected) in cases.items():
        reply, code = _bad_exchange(server.port, payload)
        assert isinstance(reply, str) and "Traceback" in reply and expected in reply, (name, reply[-300:])
        assert code == 1011, name
        assert good.infer(observation())["actions"].shape == (10, 5), name  # the other client is unaffected
    # a frame above the size limit is refused by the websocket layer (close code 1009)
    with connect(f"ws://127.0.0.1:{server.port}", compression=None, max_size=None) as ws:
        ws.recv()
        ws.send(b"\0" * (17 * 10**6))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd.code == 1009
    assert good.infer(observation())["actions"].shape == (10, 5)
    assert server.errors == len(cases)


def test_remote_policy_reports_server_errors_and_reconnects(server):
    remote = RemotePolicy("127.0.0.1", server.port)
    with pytest.raises(RemotePolicyError, match="lacks"):
        remote.infer({"task": "x"})
    out = remote.infer(observation())  # a fresh connection after the server closed the last one
    assert out["actions"].shape == (10, 5) and remote.last_latency_s > 0
    remote.close()


# ------------------------------------------------------------------ metadata and error detail
def test_metadata_is_enough_to_build_a_request():
    from a1lib.serve.server import REQUIRED_METADATA

    s = PolicyServer(RandomPolicy(action_dim=4, horizon=6),
                     ServerConfig(port=0, image_shape=(32, 32, 3), state_dim=3)).start_in_thread()
    try:
        client = WebsocketClientPolicy("127.0.0.1", s.port)
        meta = client.get_server_metadata()
        assert set(REQUIRED_METADATA) <= set(meta), meta
        assert meta["action_range"] == [-1.0, 1.0] and meta["camera_keys"] == [IMAGE, IMAGE_PAST]
        assert meta["image_shape"] == [32, 32, 3] and meta["state_dim"] == 3
        # a request built from the metadata alone is accepted; another size is refused
        obs = {key: np.zeros(meta["image_shape"], np.uint8) for key in meta["camera_keys"]}
        obs.update({STATE: np.zeros(meta["state_dim"], np.float32), TASK: "x"})
        actions = client.infer(obs)["actions"]
        assert actions.shape == (meta["horizon"], meta["action_dim"])
        low, high = meta["action_range"]
        assert actions.min() >= low and actions.max() <= high
        reply, code = _bad_exchange(s.port, ours.packb(observation(size=64)))
        assert "the policy expects (32, 32, 3)" in reply and code == 1011
    finally:
        s.stop()
    # every key is there for any policy (None: not fixed), and the policy's own values win
    bare = PolicyServer(type("P", (), {"infer": lambda self, obs: {"actions": np.zeros((1, 1))}})())
    assert set(REQUIRED_METADATA) <= set(bare.metadata) and bare.metadata["image_shape"] is None

    class Described(RandomPolicy):
        def __init__(self):
            super().__init__()
            self.metadata = {**self.metadata, "image_shape": [64, 64, 3], "state_dim": 6}

    assert PolicyServer(Described()).metadata["state_dim"] == 6
    assert PolicyServer(Described(), ServerConfig(image_shape=(64, 64, 3))).metadata["image_shape"] == [64, 64, 3]
    with pytest.raises(ValueError, match="state_dim=5 contradicts the policy's metadata state_dim=6"):
        PolicyServer(Described(), ServerConfig(state_dim=5))


def test_error_detail_defaults_to_one_line_beyond_loopback():
    for host, want in (("127.0.0.1", "traceback"), ("localhost", "traceback"), ("::1", "traceback"),
                       ("0.0.0.0", "message"), ("192.168.1.20", "message"), ("robot-pc.lan", "message")):
        assert ServerConfig(host=host).resolved_error_detail() == want, host
    assert ServerConfig(host="0.0.0.0", error_detail="traceback").resolved_error_detail() == "traceback"
    with pytest.raises(ValueError, match="error_detail"):
        PolicyServer(RandomPolicy(), ServerConfig(error_detail="everything"))
    s = PolicyServer(RandomPolicy(), ServerConfig(port=0, error_detail="message")).start_in_thread()
    try:
        bad = observation()
        del bad[STATE]
        reply, code = _bad_exchange(s.port, ours.packb(bad))
        assert code == 1011 and reply.startswith("ObservationError: observation lacks ['observation.state']")
        assert "\n" not in reply and "Traceback" not in reply and ".py" not in reply
        with pytest.raises(RemotePolicyError, match="ObservationError"):
            RemotePolicy("127.0.0.1", s.port).infer({"task": "x"})
    finally:
        s.stop()


def test_random_policy_declares_its_action_range():
    p = RandomPolicy(action_dim=3, horizon=4, seed=1)
    assert p.metadata["action_range"] == [-1.0, 1.0]
    out = np.stack([p.infer({})["actions"] for _ in range(50)])
    assert out.min() >= -1.0 and out.max() <= 1.0
    assert RandomPolicy(low=-0.5, high=0.5).metadata["action_range"] == [-0.5, 0.5]
    with pytest.raises(ValueError, match="low <= high"):
        RandomPolicy(low=1.0, high=-1.0)


# ------------------------------------------------------------------ CLI and loading
def test_checkpoint_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such directory"):
        load_policy(str(tmp_path / "missing"))
    try:
        import a1lib.models.policy_a1  # noqa: F401
    except ModuleNotFoundError:
        with pytest.raises(ImportError, match="policy_a1"):
            load_policy(str(tmp_path))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a1_serve_command_serves_openpi_clients():
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "a1lib.workflows.cli", "serve", "--port", str(port),
                             "--policy", "random", "--seed", "7"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "A1_API_KEY": ""})
    try:
        remote = RemotePolicy("127.0.0.1", port, connect_timeout_s=30)
        out = remote.infer(observation())
        assert np.array_equal(out["actions"], RandomPolicy(seed=7).infer({})["actions"])
        remote.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a1_serve_defaults_to_the_shipped_policy():
    from a1lib.shipped import SHIPPED_DIR

    policy = load_policy()  # what `a1 serve` without --checkpoint / --policy serves
    assert type(policy).__name__ == "A1Policy" and policy.metadata["state_dim"] == 6
    assert json.loads((SHIPPED_DIR / "config.json").read_text()) == json.loads(policy.config.to_json())


# ------------------------------------------------------------------ over the network in the loop
def test_control_loop_with_remote_policy_keeps_its_rate(server):
    from test_robot import make_robot

    from a1lib.robot import ControlConfig, ControlLoop

    robot = make_robot(realtime=True, fps=10)
    remote = RemotePolicy("127.0.0.1", server.port)
    loop = ControlLoop(robot, remote, config=ControlConfig(fps=10, max_steps=16, replan_steps=5, stop_when_done=False))
    result = loop.run_episode()
    loop.close()
    remote.close()
    print(f"\nremote RandomPolicy: {result.timing.achieved_hz:.2f} Hz, overruns {result.timing.overruns}, "
          f"latency mean {result.latency_ms['mean']:.2f} ms p95 {result.latency_ms['p95']:.2f} ms")
    assert result.broker.inferences >= 3 and result.safety.held == 0
    assert result.timing.achieved_hz == pytest.approx(10, rel=0.1)
