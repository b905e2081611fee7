"""``a1lib.sim``: a numpy tabletop world with Gymnasium envs, three domains and scripted experts.

A planar, top-down table (``[0, 1]^2``, x right, y down) with a gripper (x, y, yaw, lift,
grip), objects, bins, a conveyor belt and a turntable, rendered to small RGB images at 10 fps.
Importing this package registers ``a1lib/<Task>-v0`` for the ten tasks:

    import gymnasium, a1lib.sim
    env = gymnasium.make("a1lib/ExpressSorting-v0", domain="lab", image_size=64)

Files, one idea each: ``world.py`` (state + physics), ``render.py`` (the rasteriser),
``domains.py`` (sim / lab / human looks and noise), ``tasks.py`` (scenes, rules, success,
instructions), ``experts.py`` (scripted experts), ``env.py`` (the Gymnasium env),
``rollout.py`` (recording expert episodes).
"""

from a1lib.sim.env import SCENE_FEATURES, TabletopEnv, make_env, register_envs
from a1lib.sim.tasks import DYNAMIC_TASKS, STATIC_TASKS, TASKS
from a1lib.sim.world import ACTION_DIM, ACTION_NAMES, COLOR_NAMES, KIND_NAMES, MAX_OBJECTS, STATE_DIM, STATE_NAMES

register_envs()

__all__ = [
    "TASKS", "STATIC_TASKS", "DYNAMIC_TASKS", "ACTION_NAMES", "STATE_NAMES", "ACTION_DIM", "STATE_DIM",
    "KIND_NAMES", "COLOR_NAMES", "MAX_OBJECTS", "SCENE_FEATURES", "make_env", "TabletopEnv",
]
