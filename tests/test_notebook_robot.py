"""notebooks/10_robot_control.ipynb runs top to bottom with tiny parameters (papermill, python3
kernel of this .venv), through the remote path: `a1 serve` in-process + RemotePolicy."""

import json

import pytest

from conftest import ROOT

papermill = pytest.importorskip("papermill")
NOTEBOOK = ROOT / "notebooks" / "10_robot_control.ipynb"


def _sim_registered() -> bool:
    try:
        import gymnasium

        import a1lib.sim  # noqa: F401
    except ImportError:
        return False
    return "a1lib/SortParts-v0" in gymnasium.registry


def test_notebook_is_committed_clean():
    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert any("parameters" in c["metadata"].get("tags", []) for c in code)
    assert not any(c.get("outputs") or c.get("execution_count") for c in code)


@pytest.mark.notebook
@pytest.mark.skipif(not _sim_registered(), reason="a1lib.sim does not register a1lib/SortParts-v0 yet")
def test_robot_notebook_runs(tmp_path):
    out = tmp_path / "10_robot_control.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK), str(out), kernel_name="python3", cwd=str(NOTEBOOK.parent), progress_bar=False,
        parameters={"steps": 12, "record_episodes": 2, "use_server": True, "record_dir": str(tmp_path / "rec")},
    )
    nb = json.loads(out.read_text())
    errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    text = "".join(t for c in nb["cells"] for o in c.get("outputs", []) for t in o.get("text", []))
    assert "remote inference: achieved" in text and "robot connected: False" in text
    from a1lib.data import LeRobotDataset

    ds = LeRobotDataset(tmp_path / "rec")
    assert ds.num_episodes == 2
