"""A trained ci A1Policy (tests/conftest.py: quick_policy) driving SimRobot in real time, in
process and through the openpi server: the loop keeps its configured rate (10 Hz within 10%)."""

import numpy as np
import pytest

from a1lib.models.policy_a1 import A1Policy
from a1lib.robot import ControlConfig, ControlLoop, SimRobot, SimRobotConfig
from a1lib.serve import PolicyServer, RemotePolicy, ServerConfig

STEPS = 30  # 3 s at 10 Hz


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see tests/conftest.py


def run_sim_robot(policy, delta):
    robot = SimRobot(SimRobotConfig(task="ZipBag", domain="lab", image_size=64, fps=10, seed=0))
    config = ControlConfig(fps=10, max_steps=STEPS, replan_steps=5, async_inference=True, delta=delta,
                           stop_when_done=False)
    loop = ControlLoop(robot, policy, config=config)
    result = loop.run_episode()
    loop.close()
    return result


def check(result, how):
    print(f"\n{how} trained ci A1Policy on SimRobot: {result.timing.achieved_hz:.2f} Hz (target 10), "
          f"inference mean {result.latency_ms['mean']:.1f} ms p95 {result.latency_ms['p95']:.1f} ms, "
          f"{result.broker.inferences} inferences, safety holds {result.safety.held}")
    assert result.steps == STEPS
    assert result.broker.inferences >= STEPS // 5
    assert result.safety.held == 0  # no watchdog stall, no NaN
    assert np.isfinite(result.actions).all() and np.abs(result.actions).max() > 0  # the policy really acted
    assert result.timing.achieved_hz == pytest.approx(10, rel=0.1)


def test_trained_ci_policy_keeps_the_rate_locally(quick_policy):
    policy = A1Policy.from_pretrained(quick_policy)
    check(run_sim_robot(policy, policy.delta), "local")


def test_trained_ci_policy_keeps_the_rate_through_the_server(quick_policy):
    policy = A1Policy.from_pretrained(quick_policy)
    server = PolicyServer(policy, ServerConfig(host="127.0.0.1", port=0)).start_in_thread()
    remote = RemotePolicy("127.0.0.1", server.port)
    try:
        assert remote.get_server_metadata()["policy"] == "a1"
        check(run_sim_robot(remote, policy.delta), "remote")
    finally:
        remote.close()
        server.stop()
