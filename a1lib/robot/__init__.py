"""Robots: the LeRobot robot API, our real-time ``SimRobot``, the safety layer and the control loop.

``from a1lib.robot import SimRobot, ControlLoop`` is all a lab notebook needs; see
``notebooks/10_robot_control.ipynb``.
"""

from a1lib.robot.broker import ChunkBroker
from a1lib.robot.estop import EStop
from a1lib.robot.interface import ReadingError, Robot, RobotError, make_lerobot_robot
from a1lib.robot.loop import ControlConfig, ControlLoop, EpisodeResult, connect_and_check
from a1lib.robot.mapping import FeatureMapping
from a1lib.robot.recording import EpisodeRecorder
from a1lib.robot.safety import SafetyConfig, SafetyLayer
from a1lib.robot.sim_robot import SimRobot, SimRobotConfig
from a1lib.robot.timing import RateClock

__all__ = [
    "ChunkBroker", "ControlConfig", "ControlLoop", "EStop", "EpisodeRecorder", "EpisodeResult",
    "FeatureMapping", "RateClock", "ReadingError", "Robot", "RobotError", "SafetyConfig", "SafetyLayer", "SimRobot",
    "SimRobotConfig", "connect_and_check", "make_lerobot_robot",
]
