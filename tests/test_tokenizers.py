"""Image tokenizer (VAE), latent cache, text tokenizer and the `a1 tokenizer` commands."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import log_records
from transformers import PreTrainedTokenizerFast

from a1lib.models.image_tokenizer import ImageTokenizer, ImageTokenizerConfig, build_vae, psnr
from a1lib.models.text_tokenizer import (
    build_corpus,
    load_text_tokenizer,
    save_text_tokenizer,
    sim_instructions,
    train_text_tokenizer,
)
from a1lib.train.latent_cache import LatentCache, StaleCacheError, dataset_fingerprint, encode_dataset
from a1lib.train.tokenizers import train_image_tokenizer

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see tests/conftest.py

PALETTE = np.array([[220, 40, 40], [40, 160, 60], [40, 80, 220], [230, 200, 40], [240, 240, 240], [30, 30, 30]],
                   np.uint8)
TINY = dict(block_out_channels=(8, 16, 16, 16), norm_num_groups=8, mid_attention=False)


def shapes_frames(n_episodes: int, frames_per_episode: int, size: int, seed: int = 0):
    """Coloured rectangles on a plain table, drifting a little per frame: uint8 (N,S,S,3), episode ids."""
    rng = np.random.default_rng(seed)
    frames, episodes = [], []
    for e in range(n_episodes):
        table = np.array([150, 120, 90]) + rng.integers(-20, 20, 3)
        boxes = [(rng.integers(0, size - 8, 2), rng.integers(4, size // 2, 2), PALETTE[rng.integers(len(PALETTE))])
                 for _ in range(3)]
        for t in range(frames_per_episode):
            img = np.empty((size, size, 3), np.uint8)
            img[:] = table
            for (y, x), (h, w), c in boxes:
                y0, x0 = (y + t) % (size - 4), x
                img[y0 : y0 + h, x0 : x0 + w] = c
            frames.append(img)
            episodes.append(e)
    return np.stack(frames), np.array(episodes)


def tokenizer(image_size=64, seed=0, **kw) -> ImageTokenizer:
    cfg = ImageTokenizerConfig(image_size=image_size, seed=seed, **kw)
    return ImageTokenizer(build_vae(cfg), cfg).freeze()


class FakeDataset:
    """The slice of the LeRobotDataset contract the latent cache uses."""

    def __init__(self, frames, episodes):
        self.frames = frames
        bounds = np.flatnonzero(np.diff(episodes)) + 1
        starts, ends = np.r_[0, bounds], np.r_[bounds, len(frames)]
        self.episodes = [{"dataset_from_index": int(a), "dataset_to_index": int(b)} for a, b in zip(starts, ends)]

    def __len__(self):
        return len(self.frames)

    def get_frames(self, key, indices):
        assert key == "observation.image"
        return self.frames[np.asarray(indices)]


# --- image tokenizer ---------------------------------------------------------------------------


def test_vae_shapes_64_to_4x8x8():
    tok = tokenizer()
    frames, _ = shapes_frames(1, 3, 64)
    z = tok.encode(frames)
    assert z.shape == (3, 4, 8, 8) and z.dtype == torch.float32
    x = tok.decode(z)
    assert x.shape == (3, 3, 64, 64) and float(x.min()) >= 0 and float(x.max()) <= 1


def test_8x_downsampling_for_another_size():
    tok = tokenizer(image_size=48, latent_channels=6, **TINY)
    frames, _ = shapes_frames(1, 2, 48)
    assert tok.encode(frames).shape == (2, 6, 6, 6)
    assert tok.latent_shape() == (6, 6, 6)
    with pytest.raises(ValueError, match="divisible"):
        ImageTokenizerConfig(image_size=50).validate()


def test_encode_is_deterministic_and_accepts_both_layouts():
    tok = tokenizer(**TINY)
    frames, _ = shapes_frames(2, 2, 64)
    z1, z2 = tok.encode(frames), tok.encode(frames)
    assert torch.equal(z1, z2)
    as_float = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255  # (N, 3, H, W) in [0, 1]
    assert torch.allclose(tok.encode(as_float), z1, atol=1e-6)
    # another batch size takes other conv kernels: equal up to float32 rounding (1e-12 in float64)
    assert torch.allclose(tok.encode(frames, batch_size=1), z1, atol=2e-3)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        tok.encode(as_float * 255)
    with pytest.raises(ValueError, match="batch"):
        tok.encode(frames[0])


def test_same_seed_same_weights():
    a, b = tokenizer(seed=3, **TINY), tokenizer(seed=3, **TINY)
    assert a.fingerprint() == b.fingerprint()
    assert tokenizer(seed=4, **TINY).fingerprint() != a.fingerprint()



def test_training_is_deterministic():
    frames, episodes = shapes_frames(6, 3, 16)
    cfg = ImageTokenizerConfig(image_size=16, train_steps=4, batch_size=4, block_out_channels=(8, 8, 8, 8),
                               mid_attention=False)
    (a, ma), (b, mb) = train_image_tokenizer(frames, cfg, episodes), train_image_tokenizer(frames, cfg, episodes)
    assert a.fingerprint() == b.fingerprint() and ma["psnr_heldout_db"] == mb["psnr_heldout_db"]


@pytest.fixture(scope="module")
def trained():
    """A 32x32 tokenizer trained briefly (120 steps, ~12 s) on shapes; shared by the tests below."""
    frames, episodes = shapes_frames(40, 4, 32)
    cfg = ImageTokenizerConfig(image_size=32, train_steps=120, batch_size=16, lr=5e-3, heldout_fraction=0.2,
                               block_out_channels=(16, 16, 32, 32), mid_attention=False)
    tok, metrics = train_image_tokenizer(frames, cfg, episodes)
    return tok, metrics, frames, episodes


def test_training_raises_heldout_psnr(trained):
    tok, metrics, frames, episodes = trained
    assert metrics["n_heldout_frames"] > 0 and metrics["n_train_frames"] > metrics["n_heldout_frames"]
    assert metrics["psnr_heldout_db"] > metrics["psnr_heldout_untrained_db"] + 3.0, metrics  # +4.9 dB seen
    # held-out frames come from whole episodes the VAE never saw
    assert not tok.vae.training and not any(p.requires_grad for p in tok.vae.parameters())


def test_latents_are_normalised(trained):
    tok, _, frames, _ = trained
    z = tok.encode(frames)
    assert abs(float(z.mean())) < 0.2 and 0.7 < float(z.std()) < 1.3
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    assert psnr(tok.decode(z), x) > 15.0  # untrained: ~12 dB


def test_save_load_round_trip(trained, tmp_path):
    tok, _, frames, _ = trained
    tok.save(tmp_path / "image")
    files = sorted(p.name for p in (tmp_path / "image").iterdir())
    assert ("diffusion_pytorch_model.safetensors" in files
            and not any(f.endswith((".bin", ".pt", ".pkl")) for f in files))
    loaded = ImageTokenizer.load(tmp_path / "image")
    assert loaded.scaling_factor == tok.scaling_factor and loaded.shift_factor == tok.shift_factor
    assert loaded.fingerprint() == tok.fingerprint()
    assert torch.equal(loaded.encode(frames[:8]), tok.encode(frames[:8]))
    assert not any(p.requires_grad for p in loaded.vae.parameters())
    tok.save(tmp_path / "image")  # overwriting an existing directory works (atomic replace)
    with pytest.raises(FileNotFoundError, match="image_tokenizer.json"):
        ImageTokenizer.load(tmp_path)


# --- latent cache ------------------------------------------------------------------------------


def test_latent_cache_round_trip_and_stale_errors(trained, tmp_path):
    tok, _, frames, episodes = trained
    ds = FakeDataset(frames[:40], episodes[:40])
    path = encode_dataset(ds, tok, tmp_path / "sim.safetensors", dataset_root="data/sim", batch_size=16)
    meta = json.loads((tmp_path / "sim.json").read_text())
    assert meta["num_frames"] == 40 and meta["tokenizer_fingerprint"] == tok.fingerprint()

    cache = LatentCache.for_dataset(path, tok, ds)
    idx = np.array([0, 7, 39, 7])
    assert torch.equal(cache[idx], cache[idx]) and torch.allclose(cache[idx], tok.encode(frames[idx]), atol=2e-3)
    assert cache[idx].shape == (4, *tok.latent_shape()) and len(cache) == 40
    with pytest.raises(IndexError):
        cache[[40]]

    other = tokenizer(image_size=32, seed=1, block_out_channels=(16, 16, 32, 32), mid_attention=False)
    with pytest.raises(StaleCacheError, match="tokenizer"):
        LatentCache(path, other)
    with pytest.raises(StaleCacheError, match="frames"):
        LatentCache(path, tok, num_frames=41)
    changed = FakeDataset(frames[:40].copy(), episodes[:40])
    changed.frames[0] = 255 - changed.frames[0]
    with pytest.raises(StaleCacheError, match="another version"):
        LatentCache.for_dataset(path, tok, changed)
    assert dataset_fingerprint(ds) == dataset_fingerprint(FakeDataset(frames[:40], episodes[:40]))
    with pytest.raises(FileNotFoundError, match="a1 tokenizer encode"):
        LatentCache(tmp_path / "lab.safetensors")


# --- text tokenizer ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def text_tok():
    return train_text_tokenizer(build_corpus(["Push the purple gear to the corner."]), vocab_size=1024)


def test_text_tokenizer_round_trip(text_tok):
    assert isinstance(text_tok, PreTrainedTokenizerFast)
    assert [text_tok.pad_token_id, text_tok.unk_token_id, text_tok.bos_token_id, text_tok.eos_token_id,
            text_tok.sep_token_id] == [0, 1, 2, 3, 4]
    instructions = sim_instructions()
    assert len(instructions) > 100
    for text in instructions[:: max(1, len(instructions) // 200)] + ["Push the purple gear to the corner."]:
        ids = text_tok(text)["input_ids"]
        assert ids[0] == text_tok.bos_token_id and ids[-1] == text_tok.eos_token_id
        assert text_tok.unk_token_id not in ids, text
        words = text_tok.backend_tokenizer.pre_tokenizer.pre_tokenize_str(text.lower())
        assert text_tok.decode(ids, skip_special_tokens=True) == " ".join(w for w, _ in words)
    assert text_tok.unk_token_id in text_tok("fold the zebra")["input_ids"]


def test_text_tokenizer_padding_and_pairs(text_tok):
    batch = text_tok(["put the flower in the vase", "sweep"], padding=True, return_tensors="pt")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert ids.shape == mask.shape and ids.shape[0] == 2
    assert int(mask[1].sum()) == 3 and (ids[1, 3:] == text_tok.pad_token_id).all() and (mask[1, 3:] == 0).all()
    pair = text_tok("what is the gripper holding?", "nothing")["input_ids"]
    assert pair.count(text_tok.sep_token_id) == 1 and pair[-2] == text_tok.convert_tokens_to_ids("nothing")


def test_text_tokenizer_save_load_and_determinism(text_tok, tmp_path):
    path = save_text_tokenizer(text_tok, tmp_path / "text")
    assert path.name == "tokenizer.json"
    loaded = load_text_tokenizer(tmp_path / "text")
    assert isinstance(loaded, PreTrainedTokenizerFast)
    texts = ["Sort the red and blue parts into their matching bins", "how many red objects are there?"]
    assert loaded(texts)["input_ids"] == text_tok(texts)["input_ids"]
    assert loaded.pad_token_id == 0 and loaded.sep_token_id == 4
    again = train_text_tokenizer(build_corpus(["Push the purple gear to the corner."]), vocab_size=1024)
    save_text_tokenizer(again, tmp_path / "again")
    assert (tmp_path / "again" / "tokenizer.json").read_bytes() == path.read_bytes()
    small = train_text_tokenizer(["a b b c c c"], vocab_size=7)  # keeps the 2 most frequent words
    assert small.convert_tokens_to_ids("a") == small.unk_token_id
    with pytest.raises(FileNotFoundError, match="a1 tokenizer train"):
        load_text_tokenizer(tmp_path / "missing")
    # the roles a saved policy records (policy.json "special_tokens") give the same tokenizer
    roles = {"pad_token": "[PAD]", "eos_token": "[EOS]", "bos_token": "[BOS]", "unk_token": "[UNK]",
             "sep_token": "[SEP]"}
    assert load_text_tokenizer(path, roles)(texts)["input_ids"] == loaded(texts)["input_ids"]


# --- the commands, end to end on tiny synthetic LeRobot datasets -------------------------------


def test_text_tokenizer_trains_without_a_progress_bar(monkeypatch, capfd):
    """The tokenizers trainer's own bar ("Pre-processing sequences ... n / 0") is off."""
    from a1lib.models import text_tokenizer

    made = []
    real = text_tokenizer.WordLevelTrainer

    def spy(**kw):
        made.append(kw)
        return real(**kw)

    monkeypatch.setattr(text_tokenizer, "WordLevelTrainer", spy)
    train_text_tokenizer(build_corpus(["Push the purple gear to the corner."]), vocab_size=64)
    assert made and made[0]["show_progress"] is False
    out, err = capfd.readouterr()
    assert "Pre-processing" not in out + err


def test_image_tokenizer_loads_without_the_accelerate_warning(tmp_path):
    """diffusers warns on every AutoencoderKL load unless low_cpu_mem_usage=False is passed (no accelerate)."""
    with log_records("diffusers.models.modeling_utils") as records:
        tok = tokenizer(image_size=16, block_out_channels=(8, 8, 8, 8), norm_num_groups=4, mid_attention=False)
        tok.save(tmp_path / "image")
        assert ImageTokenizer.load(tmp_path / "image").fingerprint() == tok.fingerprint()
    assert not any("low_cpu_mem_usage" in r.getMessage() for r in records), [r.getMessage() for r in records]


def test_tokenizer_summary_is_a_few_numbers():
    from a1lib.train.tokenizers import tokenizer_summary

    metrics = {"psnr_heldout_db": 23.7, "psnr_objects_heldout_db": 17.2, "train_seconds": 225.1, "fingerprint": "a4",
               "latent_shape": [4, 8, 8], "config": {"image": {"mid_attention": True}}, "psnr_train_db": float("nan")}
    assert tokenizer_summary(metrics) == {"psnr_heldout_db": 23.7, "psnr_objects_heldout_db": 17.2,
                                          "train_seconds": 225.1}
    assert tokenizer_summary({"psnr_heldout_db": None, "train_seconds": 1}) == {"train_seconds": 1.0}


def test_tokenizer_train_and_encode_commands(tmp_path, capsys):
    from a1lib.data import LeRobotDataset
    from a1lib.data.synthetic import write_synthetic_dataset
    from a1lib.workflows.cli import main

    data = tmp_path / "data"
    write_synthetic_dataset(data / "sim", lengths=(5, 6, 4), image_size=16)
    write_synthetic_dataset(data / "lab", lengths=(4, 4), image_size=16)
    write_synthetic_dataset(data / "human", lengths=(3, 5), image_size=16, human=True)
    params = tmp_path / "params.yaml"
    params.write_text(
        "preset: t\npresets:\n  t:\n    tokenizer:\n      text_vocab_size: 512\n"
        "      image: {image_size: 16, train_steps: 3, batch_size: 4, block_out_channels: [8, 8, 8, 8], "
        "mid_attention: false}\n"
    )
    out, latents = tmp_path / "artifacts" / "tokenizer", tmp_path / "artifacts" / "latents"
    assert main(["tokenizer", "train", "--params", str(params), "--data", str(data), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["psnr_heldout_db_by_source"]) <= {"sim", "lab", "human"} and metrics["psnr_heldout_db"] > 0
    assert metrics["text"]["dataset_instructions_with_unk"] == 0
    assert (out / "image" / "image_tokenizer.json").exists()
    assert isinstance(load_text_tokenizer(out / "text"), PreTrainedTokenizerFast)
    summary = json.loads((out / "summary.json").read_text())  # the DVC metrics file: the numbers to compare
    assert (set(summary) <= {"psnr_heldout_db", "psnr_objects_heldout_db", "train_seconds"}
            and "train_seconds" in summary)
    assert summary["psnr_heldout_db"] == metrics["psnr_heldout_db"]

    assert "image tokenizer: step 3/3 (100%) | loss " in capsys.readouterr().out  # plain lines: not a terminal
    assert main(["tokenizer", "encode", "--data", str(data), "--tokenizer", str(out), "--out", str(latents)]) == 0
    printed = capsys.readouterr().out  # stderr is not a terminal here: plain progress lines, per source
    for source in ("sim", "lab", "human"):
        assert f"encode {source}: frame " in printed and "(100%)" in printed, printed
    tok = ImageTokenizer.load(out / "image")
    for source in ("sim", "lab", "human"):
        ds = LeRobotDataset(data / source)
        cache = LatentCache.for_dataset(latents / f"{source}.safetensors", tok, ds)
        assert cache[np.arange(len(ds))].shape == (len(ds), 4, 2, 2)
        assert torch.allclose(cache[[1]], tok.encode(ds.get_frames("observation.image", [1])), atol=2e-3)
