"""The keys and names shared by every layer (like LeRobot's ``lerobot.constants``).

Observation / feature keys, as they appear in a policy's observation dict, in a LeRobot dataset's
``features`` and in a training batch:

* ``observation.image``       uint8 (H, W, 3), the current camera frame (frame t)
* ``observation.image_past``  uint8 (H, W, 3), frame t - delta
* ``observation.state``       float32 (S,), proprioceptive state in real units
* ``action``                  float32 (A,) per frame; a policy answers chunks (H, A)
* ``task``                    str, the language instruction

This is the bottom layer: it imports nothing from a1lib (nor anything else), so every module can
import it without a cycle.
"""

IMAGE = "observation.image"
IMAGE_PAST = "observation.image_past"
STATE = "observation.state"
ACTION = "action"
TASK = "task"

# The three data sources (one dataset each); a training sample's source_id is its position here.
SOURCES = ("sim", "lab", "human")

# Every action entry (the sim's and the robot adapters'): policies clip to it.
ACTION_RANGE = (-1.0, 1.0)
