"""What a robot looks like from Python: the LeRobot robot API, as a Protocol.

A LeRobot robot (an SO-101 follower arm, a LeKiwi base, ...) is an object with a lifecycle
(``connect`` / ``disconnect`` / ``is_connected``), two feature dicts that describe what it
measures and what it accepts, ``get_observation()`` and ``send_action(dict)``. Joints are keyed
``"<joint>.pos"`` (position) or ``"<axis>.vel"`` (velocity) and carry floats; every camera name
maps to an ``(H, W, 3)`` uint8 array. ``send_action`` returns the action actually sent, which
the robot may have clipped.

Feature dicts follow LeRobot: a joint maps to the type ``float``, a camera to its shape tuple::

    observation_features = {"shoulder_pan.pos": float, ..., "front": (480, 640, 3)}
    action_features      = {"shoulder_pan.pos": float, ...}

Anything with these members plugs into the control loop: our ``SimRobot``, or a real LeRobot
robot made with ``make_lerobot_robot(config)``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Robot(Protocol):
    """The LeRobot robot API (duck-typed; LeRobot's own ``Robot`` base class satisfies it)."""

    @property
    def observation_features(self) -> dict[str, Any]: ...

    @property
    def action_features(self) -> dict[str, Any]: ...

    @property
    def is_connected(self) -> bool: ...

    def connect(self) -> None: ...

    def disconnect(self) -> None: ...

    def get_observation(self) -> dict[str, Any]: ...

    def send_action(self, action: dict[str, Any]) -> dict[str, Any]: ...


class RobotError(RuntimeError):
    """The robot is missing, misconfigured, or does not match the feature mapping."""


class ReadingError(RobotError):
    """One observation has unusable readings; ``faults`` says which key and why. The control loop
    treats it as a sensor fault of that step (hold), not as a crash."""

    def __init__(self, message: str, faults: dict[str, str]) -> None:
        super().__init__(message)
        self.faults = faults


def finite_number(v: Any) -> float | None:
    """``v`` as a float if it is a finite real number (int, float or a NumPy scalar), else None.

    Joints carry floats (their feature type is ``float``). A string (``"5.0"``), a bool or an array,
    even of one element, is a driver bug, not a value: refused, never parsed or unwrapped."""
    if isinstance(v, (bool, str)) or not isinstance(v, numbers.Real):  # np.bool_ is not numbers.Real
        return None
    try:
        f = float(v)
    except OverflowError:  # an int beyond float range, e.g. 10 ** 400
        return None
    return f if math.isfinite(f) else None


def reading_fault(v: Any) -> str:
    """What is wrong with a value ``finite_number`` refused (None: the key is missing)."""
    return "missing" if v is None else f"not a finite number ({v!r})"


def camera_keys(robot: Robot) -> list[str]:
    """Observation features that are images (their value is a shape tuple, not ``float``)."""
    return [k for k, v in robot.observation_features.items() if isinstance(v, tuple)]


def joint_keys(features: dict[str, Any]) -> list[str]:
    """Scalar features (``"<joint>.pos"``, ``"<axis>.vel"``, ...), in declaration order."""
    return [k for k, v in features.items() if not isinstance(v, tuple)]


LEROBOT_MISSING = (
    "make_lerobot_robot needs the `lerobot` package, which is not installed. "
    "Install it with `pip install lerobot` (plus the extra for your arm, e.g. "
    "`pip install 'lerobot[feetech]'` for an SO-101), then pass a lerobot RobotConfig, e.g. "
    "SO101FollowerConfig(port='/dev/ttyACM0', id='my_arm', cameras={...})."
)


def make_lerobot_robot(config: Any) -> Robot:
    """Build a real LeRobot robot from its lerobot config (imports lerobot only when called).

    Example (on the lab PC, with lerobot installed)::

        from lerobot.robots.so101_follower import SO101FollowerConfig
        from lerobot.cameras.opencv import OpenCVCameraConfig
        cfg = SO101FollowerConfig(port="/dev/ttyACM0", id="lab_arm", max_relative_target=10.0,
                                  cameras={"front": OpenCVCameraConfig(index_or_path=0, width=640,
                                                                       height=480, fps=30)})
        robot = make_lerobot_robot(cfg)
    """
    try:  # lazy: lerobot is optional (not a dependency of a1lib), needed only for a real robot
        from lerobot.robots.utils import make_robot_from_config
    except ImportError as e:  # lerobot absent, or an old layout without robots.utils
        raise ImportError(LEROBOT_MISSING) from e
    robot = make_robot_from_config(config)
    missing = [m for m in ("connect", "disconnect", "get_observation", "send_action") if not hasattr(robot, m)]
    if missing:
        raise RobotError(f"lerobot returned {type(robot).__name__} without {missing}; unsupported lerobot version")
    return robot
