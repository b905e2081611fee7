"""LeRobotDataset v3.0 episodes: the writer, the reader and windowed training samples.

* ``LeRobotWriter``   writes episodes in the v3.0 layout (atomic, deterministic bytes).
* ``LeRobotDataset``  reads v3.0 and v2.1 datasets, image and (PyAV-decoded) video features.
* ``WindowedDataset`` turns frames into training windows (t - delta, t, t + delta, action chunk).
* ``Normalizer``      normalises state / action with the saved stats; JSON-serialisable.
* ``DatasetError``    every problem with a dataset, naming the file and what is wrong.
"""

from a1lib.data.errors import DatasetError
from a1lib.data.reader import LeRobotDataset
from a1lib.data.windows import Normalizer, WindowedDataset
from a1lib.data.writer import LeRobotWriter

__all__ = ["DatasetError", "LeRobotDataset", "LeRobotWriter", "Normalizer", "WindowedDataset"]
