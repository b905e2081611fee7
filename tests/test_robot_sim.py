"""SimRobot on the real simulator (a1lib.sim, lab domain): features, real-time rate, a short run."""

import numpy as np
import pytest

gymnasium = pytest.importorskip("gymnasium")


def _registered() -> bool:
    try:
        import a1lib.sim  # noqa: F401
    except ImportError:
        return False
    return "a1lib/SortParts-v0" in gymnasium.registry


pytestmark = pytest.mark.skipif(not _registered(), reason="a1lib.sim does not register a1lib/SortParts-v0 yet")


def test_simrobot_on_the_lab_sim_keeps_10_hz():
    import a1lib.sim as sim
    from a1lib.policy_protocol import RandomPolicy
    from a1lib.robot import ControlConfig, ControlLoop, SimRobot, SimRobotConfig

    robot = SimRobot(SimRobotConfig(task="SortParts", domain="lab", fps=10, seed=0))
    assert list(robot.action_features) == ["x.vel", "y.vel", "yaw.vel", "lift.vel", "grip.vel"]
    assert len([k for k in robot.observation_features if k.endswith(".pos")]) == len(sim.STATE_NAMES)
    loop = ControlLoop(robot, RandomPolicy(seed=0), config=ControlConfig(fps=10, max_steps=15, async_inference=True))
    obs = robot.get_observation()
    assert obs["front"].shape == (64, 64, 3) and obs["front"].dtype == np.uint8
    assert isinstance(robot.instruction, str) and robot.instruction
    result = loop.run_episode()
    loop.close()
    print(f"\nSimRobot (lab, SortParts) local RandomPolicy: {result.timing.achieved_hz:.2f} Hz, "
          f"overruns {result.timing.overruns}, busy {result.timing.mean_step_ms:.1f} ms/step")
    assert result.steps == 15 and result.safety.held == 0
    assert result.timing.achieved_hz == pytest.approx(10, rel=0.1)
