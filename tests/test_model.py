"""A1Model: mask semantics, gradient routing, KV cache vs uncached vs eager, persistence, validation."""

import json

import pytest
import torch
from eager_reference import eager_future_latent, eager_sample_actions, eager_velocity  # tests/eager_reference.py

from a1lib.models import fused_sampler
from a1lib.models.configuration_a1 import A1Config
from a1lib.models.modeling_a1 import A1Model, random_batch
from a1lib.models.token_layout import action_layout, make_att_2d_masks, mask_for_plot

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see tests/conftest.py


def tiny(**kw) -> A1Config:
    """The ci model without the random image shift, so that two forward passes see the same pixels."""
    return A1Config.preset("tiny", **{"shift_augment": 0, **kw})


def sharpened(model: A1Model, seed: int = 1, std: float = 0.15) -> A1Model:
    """Larger random weights than the 0.02 init, so attention is far from uniform and any leak or
    cache error shows up clearly."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * std)
    return model.eval()


# --- the mask rule ---------------------------------------------------------------------------
def test_make_att_2d_masks_rule():
    pad = torch.tensor([[1, 1, 0, 1, 1, 1]], dtype=torch.bool)
    flags = torch.tensor([[0, 0, 0, 1, 1, 0]], dtype=torch.bool)
    m = make_att_2d_masks(pad, flags)[0].int()
    expected = torch.tensor([
        [1, 1, 0, 0, 0, 0],  # prefix: bidirectional, not the pad, not later blocks
        [1, 1, 0, 0, 0, 0],
        [0, 0, 1, 0, 0, 0],  # pad: itself only (keeps softmax finite)
        [1, 1, 0, 1, 0, 0],  # block 1 (e.g. state)
        [1, 1, 0, 1, 1, 1],  # block 2 (actions): everything before + each other
        [1, 1, 0, 1, 1, 1],
    ])
    assert torch.equal(m, expected)


def test_action_layout_flags_and_plot():
    c = tiny()
    lm = torch.tensor([[1, 1, 1, 0, 0, 0, 0, 0]], dtype=torch.bool)
    lay = action_layout(c.num_image_tokens, lm, c.num_gen_tokens, c.chunk_size)
    f = lay.att_flags[0].int().tolist()
    n_pre, n_mid, H = c.num_image_tokens + 8, c.num_gen_tokens, c.chunk_size
    assert f == [0] * n_pre + [1] + [0] * (n_mid - 1) + [1] + [1] + [0] * (H - 1)
    assert lay.position_ids()[0, n_pre].item() == c.num_image_tokens + 3  # pads do not count
    mask, segs, labels = mask_for_plot(c, num_real_text=3)
    assert mask.shape == (lay.num_tokens, lay.num_tokens) and len(labels) == lay.num_tokens
    assert not mask[segs["middle"]][:, segs["state"]].any() and mask[segs["state"]][:, segs["middle"]].all()


# --- mask semantics on the real model ---------------------------------------------------------
def _run(model, batch, x_t, t):
    """[prefix, middle, suffix] outputs of ONE joint pass over the whole sequence (the mask alone
    keeps information flowing forward), with the state inputs the prefix pass gives."""
    layout = model._layout(batch)
    pre = model.prefix_pass(batch["image"], batch["lang_tokens"], layout)
    state_in = model.state_inputs(batch["state"], pre["logits"])
    groups = [("und", model.embed_prefix(batch["image"], batch["lang_tokens"], batch["lang_mask"]))]
    if model.config.has_generation_expert:
        groups.append(("gen", model.embed_middle(batch["latent_hist"])))
    groups.append(("act", model.action_embed(state_in, x_t, t)))
    outs, _ = model.run_experts(groups, layout.att_2d()[:, None], layout.position_ids())
    return outs


def test_information_flows_only_forward():
    c = tiny()
    model = sharpened(A1Model(c))
    b = random_batch(c, 2, seed=3)
    x_t, t = torch.randn(2, c.chunk_size, c.action_dim), torch.rand(2)
    with torch.no_grad():
        base = _run(model, b, x_t, t)
        # suffix perturbed (noisy actions, time, state): prefix and middle unchanged
        b2 = dict(b, state=b["state"] + 1.0)
        pert = _run(model, b2, x_t + 1.0, 1 - t)
        assert torch.equal(pert[0], base[0]) and torch.equal(pert[1], base[1])
        assert not torch.allclose(pert[2], base[2])
        # middle perturbed (history latents): prefix unchanged, middle and suffix change
        pert = _run(model, dict(b, latent_hist=b["latent_hist"] + 1.0), x_t, t)
        assert torch.equal(pert[0], base[0])
        assert not torch.allclose(pert[1], base[1]) and not torch.allclose(pert[2], base[2])


def test_padding_influences_nothing():
    c = tiny()
    model = sharpened(A1Model(c))
    b = random_batch(c, 2, seed=4)  # sample 0 has a padded instruction
    pad = ~b["lang_mask"]
    assert pad.any()
    x_t, t = torch.randn(2, c.chunk_size, c.action_dim), torch.rand(2)
    with torch.no_grad():
        base = _run(model, b, x_t, t)
        other = b["lang_tokens"].masked_fill(pad, 7)  # different ids under the padding
        pert = _run(model, dict(b, lang_tokens=other), x_t, t)
        real = b["lang_mask"]
        real_prefix = torch.cat([torch.ones(2, c.num_image_tokens, dtype=torch.bool), real], 1)
        assert torch.allclose(pert[0][real_prefix], base[0][real_prefix], atol=1e-6)  # real prefix unchanged
        for i in (1, 2):
            assert torch.allclose(pert[i], base[i], atol=1e-6)
        # the same sample without the trailing pads gives the same outputs (positions skip pads)
        n_real = int(real[0].sum())
        short = {k: (v[:1] if torch.is_tensor(v) else v) for k, v in b.items()}
        short.update(lang_tokens=b["lang_tokens"][:1, :n_real], lang_mask=b["lang_mask"][:1, :n_real])
        cut = _run(model, short, x_t[:1], t[:1])
        assert torch.allclose(cut[2], base[2][:1], atol=1e-5)
        assert torch.allclose(cut[1], base[1][:1], atol=1e-5)
        # and the losses are the same as well
        noise, tt = torch.randn(2, c.chunk_size, c.action_dim), torch.rand(2)
        l1 = model(b, noise=noise, time=tt)
        l2 = model(dict(b, lang_tokens=other), noise=noise, time=tt)
        for k in ("action", "generation", "understanding"):
            assert torch.allclose(l1[k], l2[k], atol=1e-6)


# --- gradient routing -----------------------------------------------------------------------
def _grad_norms(model):
    return {n: (p.grad.abs().sum().item() if p.grad is not None else 0.0) for n, p in model.named_parameters()}


def test_action_loss_reaches_all_three_experts():
    c = tiny()
    model = A1Model(c)
    b = random_batch(c, 2)
    model(b)["action"].sum().backward()
    g = _grad_norms(model)
    for name in ("experts.und.layers.0.self_attn.k_proj.weight", "experts.gen.layers.0.self_attn.v_proj.weight",
                 "experts.act.layers.0.mlp.down_proj.weight", "vision.stem.0.0.weight", "text_embed.weight",
                 "history_embed.lift.weight", "action_embed.state_proj.weight"):
        assert g[name] > 0, f"no action-loss gradient in {name}"
    assert g["future_head.out.weight"] == 0 and g["lm_head.weight"] == 0


def test_generation_none_has_no_generation_parameters():
    model = A1Model(tiny(generation="none"))
    assert not [n for n, _ in model.named_parameters()
                if ".gen." in n or n.startswith(("history_embed", "future_head"))]
    assert model.param_counts()["gen"] == 0
    b = random_batch(model.config, 2)
    del b["latent_hist"], b["latent_future"]
    out = model(b)
    assert torch.equal(out["generation"], torch.zeros(2))
    nf = A1Model(tiny(generation="no_future_loss"))
    assert hasattr(nf, "history_embed") and not hasattr(nf, "future_head")
    assert torch.equal(nf(b | {"latent_hist": random_batch(nf.config, 2)["latent_hist"]})["generation"], torch.zeros(2))


def test_action_free_samples_give_zero_action_gradient():
    c = tiny(lambda_und=0.0)
    model = A1Model(c)
    b = random_batch(c, 3, qa=False)
    b["has_action"] = torch.tensor([False, False, False])
    out = model(b)
    assert torch.equal(out["action"], torch.zeros(3))
    out["action"].sum().backward()
    assert all(v == 0 for v in _grad_norms(model).values())
    # mixed batch: the human sample's actions do not matter for the total loss
    model.zero_grad()
    b["has_action"] = torch.tensor([True, False, True])
    noise, t = torch.randn(3, c.chunk_size, c.action_dim), torch.rand(3)
    l1 = model(b, noise=noise, time=t)["loss"]
    acts = b["actions"].clone()
    acts[1] += 5.0
    l2 = model(dict(b, actions=acts), noise=noise, time=t)["loss"]
    assert torch.allclose(l1, l2)


def test_total_loss_averages_where_losses_exist():
    c = tiny(lambda_gen=0.5, lambda_und=0.25)
    model = A1Model(c)
    b = random_batch(c, 4)
    b["has_action"] = torch.tensor([True, False, True, True])
    b["has_future"] = torch.tensor([True, True, False, True])
    b["has_qa"] = torch.tensor([False, True, False, False])
    out = model(b)
    assert out["understanding"][[0, 2, 3]].eq(0).all() and out["understanding"][1] > 0
    expect = (out["action"].sum() / 3 + 0.5 * out["generation"].sum() / 3 + 0.25 * out["understanding"].sum() / 1)
    assert torch.allclose(out["loss"], expect)


@pytest.mark.parametrize("generation", ["full", "none"])
def test_several_flow_draws_per_sample_average_single_draws(generation):
    """draws=K runs only the action expert K times (the prefix and middle once); each draw's loss is
    the one a single-draw pass with that (noise, time) gives, and a sample's loss is their mean."""
    c = tiny(generation=generation)
    model = sharpened(A1Model(c)).eval()  # eval: no random image shift, so every pass sees the same input
    b = random_batch(c, 3, seed=2)
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(3, 2, c.chunk_size, c.action_dim, generator=g)
    t = torch.rand(3, 2, generator=g)
    both = model(b, noise=noise.flatten(0, 1), time=t.flatten(), draws=2)
    single = [model(b, noise=noise[:, k], time=t[:, k])["action"] for k in range(2)]
    torch.testing.assert_close(both["action"], (single[0] + single[1]) / 2, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(both["generation"], model(b, noise=noise[:, 0], time=t[:, 0])["generation"])


# --- inference: fused cached == readable cached == uncached == eager --------------------------
@pytest.mark.parametrize("generation", ["full", "none", "no_future_loss"])
def test_kv_cache_matches_uncached_and_eager(generation):
    c = tiny(generation=generation)
    model = sharpened(A1Model(c))
    b = random_batch(c, 2, seed=5)
    noise = torch.randn(2, c.chunk_size, c.action_dim, generator=torch.Generator().manual_seed(0))
    cached = model.sample_actions(b, noise=noise)  # the default: KV cache, fused sampler
    readable = model.sample_actions(b, noise=noise, fused=False)  # KV cache, run_experts per step
    uncached = model.sample_actions(b, noise=noise, use_cache=False)
    eager = eager_sample_actions(model, b, noise)
    assert cached.shape == (2, c.chunk_size, c.action_dim)
    assert (cached - noise).abs().max() > 1e-2  # the flow really moved the sample
    assert torch.allclose(readable, uncached, atol=1e-5), (readable - uncached).abs().max()
    assert torch.allclose(cached, readable, atol=1e-5), (cached - readable).abs().max()
    assert torch.allclose(cached, uncached, atol=1e-5), (cached - uncached).abs().max()
    assert torch.allclose(cached, eager, atol=1e-5), (cached - eager).abs().max()


def test_two_passes_equal_one_joint_pass():
    """Training runs the prefix alone (its query outputs ground "target" and "goal"), then the middle
    and suffix on its KV cache; that equals one joint pass, because the prefix sees nothing after it."""
    c = tiny()
    model = sharpened(A1Model(c))
    b = random_batch(c, 2, seed=7)  # sample 0 padded
    x_t, t = torch.randn(2, c.chunk_size, c.action_dim), torch.rand(2)
    with torch.no_grad():
        joint = _run(model, b, x_t, t)
        layout = model._layout(b)
        pre = model.prefix_pass(b["image"], b["lang_tokens"], layout)
        outs, _ = model.rest_pass(b, layout, pre["cache"], model.state_inputs(b["state"], pre["logits"]), x_t, t)
    assert torch.allclose(outs[-1], joint[-1], atol=1e-5) and torch.allclose(outs[0], joint[1], atol=1e-5)


def test_fused_weights_follow_weight_updates():
    """The fused sampler prepares its weights once per weight version; after an optimizer step or a
    load_state_dict the cached chunk must still equal the uncached one (no stale weights)."""
    c = tiny()
    model = sharpened(A1Model(c))
    b = random_batch(c, 1, seed=9)
    noise = torch.randn(1, c.chunk_size, c.action_dim, generator=torch.Generator().manual_seed(2))
    before = model.sample_actions(b, noise=noise)
    prepared = fused_sampler.fused_weights(model)
    assert fused_sampler.fused_weights(model) is prepared  # unchanged weights: reused
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    model(b)["loss"].backward()
    opt.step()
    after = model.sample_actions(b, noise=noise)
    assert fused_sampler.fused_weights(model) is not prepared
    assert not torch.allclose(before, after, atol=1e-4)  # the step really changed the policy
    assert torch.allclose(after, model.sample_actions(b, noise=noise, use_cache=False), atol=1e-5)
    model.load_state_dict(sharpened(A1Model(c)).state_dict())  # back to the first weights
    assert torch.allclose(model.sample_actions(b, noise=noise), before, atol=1e-6)


@pytest.mark.parametrize("steps", [1, 3])
def test_cached_batch_one_unpadded_matches_eager(steps):
    """Batch 1 without padding (the policy's case) and other step counts, through both cached paths."""
    c = tiny()
    model = sharpened(A1Model(c))
    b = {k: v[1:] for k, v in random_batch(c, 2, seed=8).items()}  # sample 1 is not padded
    assert b["lang_mask"].all()
    noise = torch.randn(1, c.chunk_size, c.action_dim, generator=torch.Generator().manual_seed(1))
    cached = model.sample_actions(b, noise=noise, num_steps=steps)
    assert torch.allclose(cached, model.sample_actions(b, noise=noise, num_steps=steps, use_cache=False), atol=1e-5)
    assert torch.allclose(cached, model.sample_actions(b, noise=noise, num_steps=steps, fused=False), atol=1e-5)
    assert torch.allclose(cached, eager_sample_actions(model, b, noise, num_steps=steps), atol=1e-5)


def test_training_velocity_and_imagine_match_eager():
    c = tiny()
    model = sharpened(A1Model(c))
    b = random_batch(c, 2, seed=6)
    x_t, t = torch.randn(2, c.chunk_size, c.action_dim), torch.rand(2)
    with torch.no_grad():
        outs = _run(model, b, x_t, t)
    v = model.action_out(outs[2][:, 1:])
    assert torch.allclose(v, eager_velocity(model, b, x_t, t), atol=1e-5)
    assert torch.allclose(model.imagine(b)["latent"], eager_future_latent(model, b), atol=1e-5)
    pix = model.imagine(b, decode=lambda z: z.mean(1, keepdim=True))
    assert pix["pixels"].shape == (2, 1, c.latent_size, c.latent_size)


def test_answer_greedy_shape():
    c = tiny()
    model = A1Model(c).eval()
    b = random_batch(c, 2)
    ans = model.answer(b["image"], b["qa_question_tokens"], b["qa_question_mask"], max_new_tokens=3)
    assert ans.shape == (2, 3) and ans.dtype == torch.long


# --- persistence ------------------------------------------------------------------------------
def test_save_load_round_trip_bit_identical(tmp_path):
    c = tiny()
    model = sharpened(A1Model(c))
    (tmp_path / "stats.json").write_text("{}")  # a policy wrapper's extra file survives
    model.save_pretrained(tmp_path)
    loaded = A1Model.from_pretrained(tmp_path).eval()
    assert loaded.config == c
    sd1, sd2 = model.state_dict(), loaded.state_dict()
    assert sd1.keys() == sd2.keys() and all(torch.equal(sd1[k], sd2[k]) for k in sd1)
    b = random_batch(c, 2)
    noise = torch.randn(2, c.chunk_size, c.action_dim)
    assert torch.equal(model.sample_actions(b, noise=noise), loaded.sample_actions(b, noise=noise))
    assert (tmp_path / "stats.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors", "stats.json"]


def test_mismatched_config_fails_clearly(tmp_path):
    A1Model(tiny()).save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(dict(cfg, act_hidden=48)))
    with pytest.raises(ValueError, match=r"shape mismatches \(\d+\).*action_embed\.state_proj"):
        A1Model.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(dict(cfg, generation="none")))
    with pytest.raises(ValueError, match=r"unexpected keys.*experts\.gen"):
        A1Model.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(dict(cfg, hiden=3)))
    with pytest.raises(ValueError, match="hiden"):
        A1Model.from_pretrained(tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json"):
        A1Model.from_pretrained(tmp_path)


def test_same_seed_same_bytes():
    a, b = A1Model(tiny()), A1Model(tiny())
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    c = A1Model(tiny(seed=1))
    assert not torch.equal(a.state_dict()["action_out.weight"], c.state_dict()["action_out.weight"])


# --- bad inputs -------------------------------------------------------------------------------
@pytest.mark.parametrize("key,make,match", [
    ("image", lambda b, c: torch.rand(2, 3, c.image_size + 8, c.image_size), r"image.*expected shape"),
    ("image", lambda b, c: b["image"] * 3, r"image.*\[0, 1\]"),
    ("state", lambda b, c: b["state"].index_fill(1, torch.tensor([0]), float("nan")), r"state.*NaN"),
    ("actions", lambda b, c: b["actions"].index_fill(2, torch.tensor([0]), float("nan")), r"actions.*NaN"),
    ("actions", lambda b, c: b["actions"][:, :-1], r"actions.*expected shape"),
    ("lang_mask", lambda b, c: torch.zeros_like(b["lang_mask"]), r"empty instruction"),
    ("lang_tokens", lambda b, c: b["lang_tokens"] + c.vocab_size, r"lang_tokens.*ids"),
    ("latent_hist", lambda b, c: b["latent_hist"][:, :1], r"latent_hist.*expected shape"),
    ("has_action", lambda b, c: torch.ones(2), r"has_action.*bool"),
])
def test_bad_inputs_raise_clear_errors(key, make, match):
    c = tiny()
    model = A1Model(c)
    b = random_batch(c, 2)
    b[key] = make(b, c)
    with pytest.raises(ValueError, match=match):
        model(b)


def test_missing_key_and_bad_config():
    c = tiny()
    b = random_batch(c, 2)
    del b["latent_future"]
    with pytest.raises(ValueError, match="latent_future"):
        A1Model(c)(b)
    with pytest.raises(ValueError, match="generation"):
        tiny(generation="maybe")
    with pytest.raises(ValueError, match="preset"):
        A1Config.preset("huge")
