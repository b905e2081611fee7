"""Every notebook runs top to bottom with tiny parameters (papermill, from the notebooks folder)."""

import json
import random
import re
import subprocess
import sys
import uuid

import papermill
import pytest
from conftest import ROOT
from jupyter_client.kernelspec import KernelSpecManager

NOTEBOOKS = ROOT / "notebooks"

# notebook -> tiny parameters for CI
TINY = {
    "00_tour.ipynb": {},
    "01_simulator_and_data.ipynb": {"tasks": ["SortParts", "ExpressSorting"], "episodes_per_task": 1,
                                    "expert_check_episodes": 1},
    "02_understanding_expert.ipynb": {"episodes_per_task": 1, "train_steps": 5, "batch_size": 8, "ground_steps": 5},
    "03_generation_expert.ipynb": {"tokenizer_dir": "no-such-dir", "tokenizer_steps": 5, "episodes_per_task": 1,
                                   "train_steps": 5, "batch_size": 8},
    "04_action_expert_flow_matching.ipynb": {"toy_steps": 100, "chunk_steps": 20},
    "05_mixture_of_transformers.ipynb": {"preset": "ci", "timing_repeats": 2},
    "06_joint_pretraining.ipynb": {"data_root": "no-such-dir", "tasks": ["ZipBag", "PlaceMarkpen"],
                                   "episodes_per_task": 2, "tokenizer_steps": 5, "train_steps": 10, "batch_size": 8,
                                   "histogram_draws": 2000},
    "07_finetune_and_evaluate.ipynb": {"pretrained": "no-such-dir", "data_root": "no-such-dir",
                                       "quick_pretrain_steps": 6, "finetune_steps": 6, "batch_size": 8,
                                       "tasks": ["ZipBag", "PlaceMarkpen"], "episodes": 1, "shipped_episodes": 1},
    "08_ablations.ipynb": {"show_dvc_metrics": False},
    "09_imagined_futures.ipynb": {"interactive": False, "step": 5},
}


def run_notebook(name: str, tmp_path, **parameters):
    out = tmp_path / name
    papermill.execute_notebook(
        str(NOTEBOOKS / name), str(out), parameters=parameters, kernel_name="python3",
        cwd=str(NOTEBOOKS), progress_bar=False,
    )
    return json.loads(out.read_text())


def _committed_text(path) -> str:
    """What `git add` stages for ``path`` (through the nbstripout filter of .gitattributes when
    installed): a notebook opened in JupyterLab may hold outputs in the working copy, never in git."""
    staged = subprocess.run(["git", "show", f":{path.relative_to(ROOT)}"], cwd=ROOT, capture_output=True, text=True)
    return staged.stdout if staged.returncode == 0 else path.read_text()


def test_notebook_outputs_are_stripped_on_git_add(tmp_path):
    attributes = (ROOT / ".gitattributes").read_text()
    assert "*.ipynb filter=nbstripout" in attributes
    assert "nbstripout --install" in (ROOT / "scripts" / "setup.sh").read_text()
    nb = json.loads((NOTEBOOKS / "00_tour.ipynb").read_text())
    code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["hello\n"]}]
    code["execution_count"] = 3
    dirty = json.dumps(nb)
    clean = subprocess.run([sys.executable, "-m", "nbstripout", "-t"], input=dirty, capture_output=True,
                           text=True, check=True).stdout
    stripped = next(c for c in json.loads(clean)["cells"] if c["cell_type"] == "code")
    assert stripped["outputs"] == [] and stripped["execution_count"] is None
    # the committed notebooks are already in the filter's form: installing it changes nothing in git status
    assert clean == (NOTEBOOKS / "00_tour.ipynb").read_text()


def _as_jupyterlab_saves_it(text: str, display_name: str, rng: random.Random) -> str:
    """A notebook after a JupyterLab session: new cell ids, outputs, the running kernel's name and
    language details, view state, keys in another order and another indent."""
    nb = json.loads(text)

    def shuffled(d):
        items = list(d.items())
        rng.shuffle(items)
        return dict(items)

    for cell in nb["cells"]:
        cell["id"] = str(uuid.UUID(int=rng.getrandbits(128)))
        cell["metadata"]["jupyter"] = {"source_hidden": False}
        if cell["cell_type"] == "code":
            cell["execution_count"] = rng.randint(1, 99)
            cell["outputs"] = [{"name": "stdout", "output_type": "stream", "text": ["hello\n"]}]
            cell["metadata"]["execution"] = {"iopub.status.idle": "2025-01-01T00:00:00.000000Z"}
        else:
            cell["metadata"]["jp-MarkdownHeadingCollapsed"] = True
    nb["cells"] = [shuffled(c) for c in nb["cells"]]
    nb["metadata"]["kernelspec"] = {"name": "python3", "language": "python", "display_name": display_name}
    nb["metadata"]["language_info"] = shuffled({
        "codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py", "mimetype": "text/x-python",
        "name": "python", "nbconvert_exporter": "python", "pygments_lexer": "ipython3", "version": "3.11.9"})
    return json.dumps(shuffled(nb), indent=2)


def test_opening_a_notebook_in_jupyterlab_leaves_git_status_clean(tmp_path):
    """What JupyterLab rewrites (cell ids, key order, the kernel's language details, view state) is
    normalised by the filter as scripts/setup.sh configures it, and every notebook is already in the
    normal form, so a notebook only opened and run shows no change in git."""
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    keys = re.search(r'filter\.nbstripout\.extrakeys "([^"]*)"', setup)
    assert keys, "scripts/setup.sh does not configure filter.nbstripout.extrakeys"
    extra_keys = " ".join(keys.group(1).replace("\\\n", " ").split())  # the shell's line continuations
    display_name = KernelSpecManager().get_kernel_spec("python3").display_name
    rng = random.Random(0)
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    for path in paths:
        (tmp_path / path.name).write_text(_as_jupyterlab_saves_it(path.read_text(), display_name, rng))
    # the filter, as `git add` runs it (one process for all: its start-up is most of the time)
    subprocess.run([sys.executable, "-m", "nbstripout", "--extra-keys", extra_keys, *(p.name for p in paths)],
                   check=True, cwd=tmp_path)
    changed = [p.name for p in paths if (tmp_path / p.name).read_text() != p.read_text()]
    assert not changed, f"git would show these notebooks as modified after opening them in JupyterLab: {changed}"


def test_every_notebook_has_a_tiny_run_and_is_committed_clean():
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    missing = [n for n in names if n not in TINY and not n.startswith("10_")]
    assert not missing, f"notebooks without a test run: {missing}"
    for name in names:
        nb = json.loads(_committed_text(NOTEBOOKS / name))
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert any("parameters" in c["metadata"].get("tags", []) for c in code), f"{name}: no parameters cell"
        assert not any(c.get("outputs") or c.get("execution_count") for c in code), f"{name}: has outputs"


@pytest.mark.notebook
@pytest.mark.parametrize("name", sorted(TINY))
def test_notebook_runs(name, tmp_path):
    nb = run_notebook(name, tmp_path, **TINY[name])
    errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
