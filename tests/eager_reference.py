"""The same math as A1Model, written the slow and obvious way: a test oracle (tests/test_model.py).

No KV cache, no fused ops: every Euler step runs the whole token sequence in ONE joint pass; each
expert projects its own tokens with the Qwen3 modules called as modules
(``layer.input_layernorm(x)``, ...); the attention is spelled out as
``softmax(Q K^T / sqrt(d) + mask) V`` with the key/value heads repeated for grouped-query
attention. It shares A1Model's parameters and embedding layers, so any disagreement with A1Model
points at the transformer / attention / cache code. (A1Model's own paths, cached or not, all run
through _mot_layer, so they cannot catch an error in it; this file can.)
"""

from __future__ import annotations

import torch
from transformers.models.qwen3.modeling_qwen3 import apply_rotary_pos_emb, repeat_kv

from a1lib.models.modeling_a1 import A1Model
from a1lib.models.token_layout import action_layout


def eager_attention(q, k, v, allowed: torch.Tensor) -> torch.Tensor:
    """q (B, Hq, N, D), k/v (B, Hkv, N, D), allowed (B, N, N) bool -> (B, Hq, N, D)."""
    groups = q.shape[1] // k.shape[1]
    k, v = repeat_kv(k, groups), repeat_kv(v, groups)
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5  # (B, Hq, N, N)
    scores = scores.masked_fill(~allowed[:, None], float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def eager_experts(model: A1Model, groups: list[tuple[str, torch.Tensor]], allowed: torch.Tensor,
                  position_ids: torch.Tensor) -> list[torch.Tensor]:
    """All layers over the full sequence. groups: [(expert name, (B, n, d))] in sequence order."""
    c = model.config
    experts = [model.experts[name] for name, _ in groups]
    xs = [x for _, x in groups]
    cos, sin = model.rotary(xs[0], position_ids)
    for i in range(c.num_layers):
        qs, ks, vs = [], [], []
        for expert, x in zip(experts, xs):
            layer = expert.layers[i]
            a = layer.self_attn
            B, n, _ = x.shape
            h = layer.input_layernorm(x)
            qs.append(a.q_norm(a.q_proj(h).view(B, n, -1, c.head_dim)).transpose(1, 2))
            ks.append(a.k_norm(a.k_proj(h).view(B, n, -1, c.head_dim)).transpose(1, 2))
            vs.append(a.v_proj(h).view(B, n, -1, c.head_dim).transpose(1, 2))
        q, k = apply_rotary_pos_emb(torch.cat(qs, 2), torch.cat(ks, 2), cos, sin)
        out = eager_attention(q, k, torch.cat(vs, 2), allowed).transpose(1, 2).flatten(2)  # (B, N, Hq*D)
        start, new = 0, []
        for expert, x in zip(experts, xs):
            layer = expert.layers[i]
            n = x.shape[1]
            x = x + layer.self_attn.o_proj(out[:, start:start + n])
            x = x + layer.mlp(layer.post_attention_layernorm(x))
            new.append(x)
            start += n
        xs = new
    return [e.norm(x) for e, x in zip(experts, xs)]


def _groups(model: A1Model, batch, x_t, t):
    tokens, logits = model.vision(batch["image"], batch["lang_tokens"], batch["lang_mask"])
    groups = [("und", torch.cat([tokens, model.text_embed(batch["lang_tokens"])], 1))]
    if model.config.has_generation_expert:
        groups.append(("gen", model.history_embed(batch["latent_hist"])))
    groups.append(("act", model.action_embed(model.state_inputs(batch["state"], logits), x_t, t)))
    return groups


def _layout(model: A1Model, batch):
    c = model.config
    return action_layout(c.num_image_tokens, batch["lang_mask"], c.num_gen_tokens, c.chunk_size)


@torch.inference_mode()
def eager_velocity(model: A1Model, batch, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Predicted velocity (B, H, A) at (x_t, t), from the full sequence."""
    layout = _layout(model, batch)
    outs = eager_experts(model, _groups(model, batch, x_t, t), layout.att_2d(), layout.position_ids())
    return model.action_out(outs[-1][:, 1:])


@torch.inference_mode()
def eager_sample_actions(model: A1Model, batch, noise: torch.Tensor, num_steps: int | None = None) -> torch.Tensor:
    """Euler integration from t=1 to t=0, the full sequence at every step."""
    steps = num_steps or model.config.num_inference_steps
    dt = -1.0 / steps
    x = noise
    for i in range(steps):
        t = torch.full((x.shape[0],), 1.0 + i * dt)
        x = x + dt * eager_velocity(model, batch, x, t)
    return x


@torch.inference_mode()
def eager_future_latent(model: A1Model, batch) -> torch.Tensor:
    """The generation expert's predicted latent (B, C, h, w) from the full action-pass sequence."""
    layout = _layout(model, batch)
    x_t = torch.zeros(batch["image"].shape[0], model.config.chunk_size, model.config.action_dim)
    t = torch.ones(x_t.shape[0])
    outs = eager_experts(model, _groups(model, batch, x_t, t), layout.att_2d(), layout.position_ids())
    return model.predict_future(outs[1], batch["latent_hist"])
