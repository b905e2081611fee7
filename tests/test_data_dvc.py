"""data/ is reproducible: regenerating it from params.yaml gives exactly the hash in data.dvc."""

import subprocess
import sys

import pytest
import yaml

from conftest import ROOT


@pytest.mark.slow
def test_regenerated_data_matches_data_dvc_bit_for_bit(tmp_path):
    expected = yaml.safe_load((ROOT / "data.dvc").read_text())["outs"][0]
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run(dvc + ["init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([sys.executable, "-m", "a1lib.cli", "data", "generate", "--params", str(ROOT / "params.yaml"),
                    "--out", str(tmp_path / "data")], check=True, capture_output=True)
    subprocess.run(dvc + ["add", "-q", "data"], cwd=tmp_path, check=True)
    got = yaml.safe_load((tmp_path / "data.dvc").read_text())["outs"][0]
    assert (got["md5"], got["nfiles"], got["size"]) == (expected["md5"], expected["nfiles"], expected["size"])
