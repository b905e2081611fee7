"""A1Processor (raw samples -> model batches) and A1Policy (save / load / infer)."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

from a1lib.data import WindowedDataset
from a1lib.models.modeling_a1 import A1Model, validate_batch
from a1lib.models.policy_a1 import A1Policy, CheckpointError
from a1lib.models.processor import A1Processor, ProcessorError
from a1lib.policy_protocol import InferenceSettings
from a1lib.workflows.synthetic_setup import make_toy_setup, toy_normalizer, toy_qa


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return make_toy_setup(tmp_path_factory.mktemp("toy"))


@pytest.fixture(scope="module")
def processor(setup):
    return A1Processor(setup.config, setup.text_tokenizer, toy_normalizer(setup), setup.image_tokenizer,
                       latents=setup.latents, qa_fn=toy_qa)


def samples(setup, source, idx, delta=2):
    w = WindowedDataset(setup.datasets[source], delta=delta, horizon=setup.config.chunk_size, source=source)
    return [w[i] for i in idx]


def test_batch_shapes_masks_and_contract(setup, processor):
    c = setup.config
    raw = samples(setup, "sim", [0, 5, 11]) + samples(setup, "human", [3])
    batch = processor(raw)
    validate_batch(c, batch, "train")  # the model's own contract
    B = 4
    assert batch["image"].shape == (B, 3, c.image_size, c.image_size) and batch["image"].dtype == torch.float32
    assert 0 <= batch["image"].min() and batch["image"].max() <= 1
    torch.testing.assert_close(batch["image"][0], torch.from_numpy(raw[0]["observation.image"]).permute(2, 0, 1) / 255)
    assert batch["lang_tokens"].shape == (B, c.max_text_len) and batch["lang_mask"].dtype == torch.bool
    # "task 0" -> two word tokens, the rest padding
    assert batch["lang_mask"][0].tolist() == [True, True] + [False] * (c.max_text_len - 2)
    assert (batch["lang_tokens"][0, 2:] == processor.pad_id).all()
    assert batch["latent_hist"].shape == (B, 2, c.latent_channels, c.latent_size, c.latent_size)
    # latents come from the cache at the window's global frame indices
    torch.testing.assert_close(batch["latent_hist"][1, 0], setup.latents["sim"][raw[1]["index_past"]])
    torch.testing.assert_close(batch["latent_future"][1], setup.latents["sim"][raw[1]["index_future"]])
    assert batch["has_future"].tolist() == [not r["future_is_pad"] for r in raw]
    # state / action normalised with the saved stats
    norm = processor.normalizer
    np.testing.assert_allclose(batch["state"][0].numpy(),
                               norm.normalize("observation.state", raw[0]["observation.state"]), rtol=1e-5)
    np.testing.assert_allclose(batch["actions"][2].numpy(), norm.normalize("action", raw[2]["action"]), rtol=1e-5)
    assert batch["action_is_pad"][2].tolist() == raw[2]["action_is_pad"].tolist()
    # human: no action, zero state, every action row padded
    assert batch["has_action"].tolist() == [True, True, True, False]
    assert (batch["state"][3] == 0).all() and (batch["actions"][3] == 0).all() and batch["action_is_pad"][3].all()
    assert batch["source_id"].tolist() == [0, 0, 0, 2]
    # scene QA: a share (config.qa_fraction, by a fixed hash of seed, source and frame) of the frames gets a
    # tokenised question / answer ending in EOS; with qa_fraction=1 every frame does
    every = A1Processor(dataclasses.replace(c, qa_fraction=1.0), setup.text_tokenizer, toy_normalizer(setup),
                        setup.image_tokenizer, latents=setup.latents, qa_fn=toy_qa)(raw)
    assert every["has_qa"].all()
    assert (batch["has_qa"] <= every["has_qa"]).all() and batch["has_qa"].any()
    i = int(batch["has_qa"].float().argmax())
    n_ans = int(batch["qa_answer_mask"][i].sum())
    assert batch["qa_answer_tokens"][i, n_ans - 1] == processor.eos_id


def test_qa_is_deterministic_per_frame(setup, processor):
    a = processor(samples(setup, "lab", [4]))
    b = processor(samples(setup, "lab", [4]))
    assert torch.equal(a["qa_question_tokens"], b["qa_question_tokens"])


def test_human_samples_get_no_action_loss(setup, processor):
    batch = processor(samples(setup, "human", [0, 4, 8]))
    model = A1Model(setup.config)
    batch["actions"] = torch.randn_like(batch["actions"]) * 100  # garbage must not matter
    out = model(batch)
    assert (out["action"] == 0).all() and torch.isfinite(out["loss"])
    assert (out["generation"][batch["has_future"]] > 0).all()


def test_clear_errors(setup, processor):
    s = samples(setup, "sim", [0])[0]
    s["observation.image"] = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ProcessorError, match="image_size"):
        processor([s])
    from a1lib.workflows.synthetic_setup import toy_model_config

    bad = A1Processor(toy_model_config(state_dim=7), setup.text_tokenizer, toy_normalizer(setup))
    with pytest.raises(ProcessorError, match="state_dim=7"):
        bad.check_dataset(setup.datasets["sim"], "sim")
    with pytest.raises(ProcessorError, match="vocab_size"):
        A1Processor(toy_model_config(vocab_size=8), setup.text_tokenizer)
    with pytest.raises(ProcessorError, match="observation.state"):
        processor.observation_batch({"observation.image": s["observation.image"], "task": "task 0"})


def obs_of(setup, i=5):
    ds = setup.datasets["lab"]
    return {"observation.image": ds.get_frames("observation.image", [i])[0],
            "observation.image_past": ds.get_frames("observation.image", [i - 2])[0],
            "observation.state": ds.columns["observation.state"][i], "task": ds.task_of(i)}


def test_policy_round_trip_identical_actions(setup, processor, tmp_path):
    model = A1Model(setup.config)
    policy = A1Policy(model, processor, InferenceSettings(delta=2), imagine=True)
    out = policy.infer(obs_of(setup))
    c = setup.config
    assert out["actions"].shape == (c.chunk_size, c.action_dim) and out["actions"].dtype == np.float32
    assert out["imagined"].shape == (c.image_size, c.image_size, 3) and out["imagined"].dtype == np.uint8
    policy.reset()
    first = policy.infer(obs_of(setup))["actions"]
    np.testing.assert_array_equal(first, out["actions"])  # reset restarts the noise stream

    policy.save_pretrained(tmp_path / "p")
    loaded = A1Policy.from_pretrained(tmp_path / "p", imagine=True)
    assert loaded.delta == 2 and loaded.config == setup.config
    again = loaded.infer(obs_of(setup))
    np.testing.assert_array_equal(again["actions"], out["actions"])
    np.testing.assert_array_equal(again["imagined"], out["imagined"])
    # real units: un-normalised with the same stats
    assert json.loads((tmp_path / "p" / "normalizer.json").read_text())["mode"] == "mean_std"


def test_policy_checkpoint_errors(setup, processor, tmp_path):
    A1Policy(A1Model(setup.config), processor, InferenceSettings(delta=2)).save_pretrained(tmp_path / "p")
    with pytest.raises(CheckpointError, match="not a directory"):
        A1Policy.from_pretrained(tmp_path / "nothing")
    shutil.copytree(tmp_path / "p", tmp_path / "q")
    (tmp_path / "q" / "normalizer.json").unlink()
    with pytest.raises(CheckpointError, match="missing.*normalizer.json"):
        A1Policy.from_pretrained(tmp_path / "q")
    shutil.copytree(tmp_path / "p", tmp_path / "r")
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    cfg["act_hidden"] = 48  # weights no longer fit the config
    (tmp_path / "r" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="shape"):
        A1Policy.from_pretrained(tmp_path / "r")
    shutil.copytree(tmp_path / "p", tmp_path / "s")
    shutil.rmtree(tmp_path / "s" / "image_tokenizer")
    with pytest.raises(CheckpointError, match="image_tokenizer"):
        A1Policy.from_pretrained(tmp_path / "s")


def test_policy_inference_settings_are_saved_and_zero_noise_is_deterministic(setup, processor, tmp_path, capsys):
    """noise_scale 0 starts every chunk's flow from zero: the seed no longer matters; the exported
    settings travel in policy.json, and an override is explicit and printed."""
    model = A1Model(setup.config)
    mean_settings = InferenceSettings(replan_every=3, delta=2, noise_scale=0.0)
    mean = [A1Policy(model, processor, mean_settings, seed=s).infer(obs_of(setup))["actions"] for s in (0, 1)]
    np.testing.assert_array_equal(mean[0], mean[1])
    drawn = [A1Policy(model, processor, InferenceSettings(delta=2), seed=s).infer(obs_of(setup))["actions"]
             for s in (0, 1)]
    assert not np.array_equal(drawn[0], drawn[1])
    A1Policy(model, processor, mean_settings).save_pretrained(tmp_path / "p")
    saved = json.loads((tmp_path / "p" / "policy.json").read_text())
    assert (saved["noise_scale"], saved["replan_every"], saved["delta"]) == (0.0, 3, 2)
    loaded = A1Policy.from_pretrained(tmp_path / "p", seed=7)
    assert loaded.settings == mean_settings and loaded.metadata["replan_every"] == 3
    np.testing.assert_array_equal(loaded.infer(obs_of(setup))["actions"], mean[0])
    overridden = A1Policy.from_pretrained(tmp_path / "p", override={"noise_scale": 1.0})
    assert overridden.settings == InferenceSettings(replan_every=3, delta=2, noise_scale=1.0)
    assert "noise_scale 0.0 -> 1.0" in capsys.readouterr().err
    with pytest.raises(ValueError, match="noise_scale must be >= 0"):
        A1Policy(model, processor, InferenceSettings(delta=2, noise_scale=-1.0))
    with pytest.raises(CheckpointError, match="replan_every must be in 1..4 .the chunk size"):
        A1Policy.from_pretrained(tmp_path / "p", override={"replan_every": 11})
