"""a1lib: a small, readable re-implementation of InternVLA-A1 ("imagine, then act").

The folders follow the data flow of the workbench:

    sim -> data -> models -> train -> eval -> robot / serve -> viz

* ``a1lib.sim``     a numpy tabletop world with Gymnasium envs, three domains, scripted experts.
* ``a1lib.data``    LeRobotDataset v3.0 episodes: writer, reader, windowed training samples.
* ``a1lib.models``  tokenizers and the three-expert Mixture-of-Transformers.
* ``a1lib.train``   Lightning joint pretraining and fine-tuning.
* ``a1lib.eval``    closed-loop rollouts and success statistics.
* ``a1lib.robot``   the LeRobot-style robot interface, safety layer and control loop.
* ``a1lib.serve``   an openpi-compatible websocket policy server.
* ``a1lib.viz``     plots and the imagined-futures explorer.
"""

__version__ = "0.1.0"
