"""The fused sampler: A1Model's cached Euler steps with ~3x fewer dispatched torch ops.

A speed switch on the same model (``A1Model.sample_actions(..., fused=True)``, the default), not a
second model: the context (prefix + middle) still runs through A1Model.prefix_pass / rest_pass into
the KV cache; only the per-step suffix pass (state + H action tokens through the action expert) is
replaced by ``euler_steps`` below. tests/test_model.py holds it to the readable cached path
(``fused=False``) to 1e-5 with the same noise.

WHY a second implementation of the suffix: at batch 1 the matrices are tiny (widths 96-128, 11
tokens), so the time goes into dispatching thousands of small torch ops, not into arithmetic, and
the suffix runs num_inference_steps times per chunk. This path computes the same function with
~3x fewer ops: per-layer weights stacked (Q|K|V, gate|up) with the RMSNorm gains folded in and
prepared once per weight version (``fused_weights``), 2-D activations with addmm for matmul +
residual, RoPE as y * cos + (y @ R) * sin (folded into the QKV matmul), output buffers whose views
are made once, angles / masks made once per chunk, no Python-scalar arithmetic on tensors (each such
op costs 4 extra dispatches). bench/bench_model.py measures both paths side by side.

Measured and rejected: running the state token once in the context pass (it sees only the prefix,
the middle and itself, so that would be exact). It saves nothing per step (the cost of a step is the
number of ops, not 11 vs 10 rows), so the state token stays in the suffix.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from transformers.models.qwen3.modeling_qwen3 import Qwen3DecoderLayer

from a1lib.models import flow_matching as fm

# ``model`` below is an A1Model (not imported: modeling_a1 imports this module).


def _rms(x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """RMSNorm without gain over the last dim (the gains are folded into the weights):
    x / sqrt(mean(x^2) + eps). 6 dispatched ops where F.rms_norm takes ~23 on CPU. eps is a 0-d
    tensor because a Python float would be turned into a tensor on every call."""
    return x * torch.rsqrt(torch.add(eps, (x * x).sum(-1, keepdim=True), alpha=1.0 / x.shape[-1]))


def _rotate_half_matrix(D: int, like: torch.Tensor) -> torch.Tensor:
    """R (D, D) with y @ R == rotate_half(y) == cat(-y[D/2:], y[:D/2]): a signed permutation, so
    RoPE becomes y * cos + (y @ R) * sin: one small matmul instead of slice/neg/cat."""
    half = D // 2
    R = torch.zeros(D, D, device=like.device, dtype=like.dtype)
    R[half:, :half] = -torch.eye(half)
    R[:half, half:] = torch.eye(half)
    return R


def _layer_weights(layer: Qwen3DecoderLayer) -> dict[str, torch.Tensor]:
    """One decoder layer's weights arranged for this path. RMSNorm gains are folded into the next
    matmul, (rms(x) * g) @ W^T = rms(x) @ (W * g)^T, and projections are stacked so one matmul
    does Q|K|V and one does gate|up. Stored as contiguous (d_in, d_out) matrices: torch.mm(x, w)
    is x @ W^T, and a contiguous right operand is ~10% faster than a transposed view."""
    a, mlp = layer.self_attn, layer.mlp
    Hq, D = a.config.num_attention_heads, a.head_dim
    Hkv = a.config.num_key_value_heads
    w_qkv = torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]) * layer.input_layernorm.weight
    w_gate_up = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]) * layer.post_attention_layernorm.weight
    return dict(
        w_qkv=w_qkv.t().contiguous(),  # (d, (Hq + 2 Hkv) D)
        g_qk=torch.cat([a.q_norm.weight.expand(Hq, D), a.k_norm.weight.expand(Hkv, D)]),  # (Hq + Hkv, D)
        w_o=a.o_proj.weight.t().contiguous(),  # (Hq D, d)
        w_gate_up=w_gate_up.t().contiguous(),  # (d, 2 mlp)
        w_down=mlp.down_proj.weight.t().contiguous(),  # (mlp, d)
    )


def _mlp(x: torch.Tensor, lw: dict[str, torch.Tensor], eps: torch.Tensor) -> torch.Tensor:
    """x + SwiGLU(rms(x)) on 2-D activations (n, d) with _layer_weights' stacked gate|up."""
    gate_up = torch.mm(_rms(x, eps), lw["w_gate_up"])  # (n, 2 mlp)
    m = gate_up.shape[1] // 2
    return torch.addmm(x, F.silu(gate_up[:, :m]) * gate_up[:, m:], lw["w_down"])


def _additive_mask(allowed: torch.Tensor) -> torch.Tensor:
    """bool mask (True = may attend) -> float mask (0 / -inf), made once instead of inside every
    scaled_dot_product_attention call."""
    return torch.zeros(allowed.shape, device=allowed.device).masked_fill_(~allowed, float("-inf"))


def fused_weights(model: torch.nn.Module) -> dict[str, Any]:
    """Everything this path derives from the weights alone (stacked, gain-folded, RoPE-extended,
    contiguous matrices), made once per weight version instead of once per chunk and kept on the
    model (``model._fused_cache``). The key is every parameter's identity, storage and version
    counter: an optimizer step, load_state_dict or .to() changes it, so the prepared weights can
    never go stale. (Parameters made under torch.inference_mode have no version counter: then no
    caching.)"""
    try:
        key = tuple((id(p), p.data_ptr(), p._version) for p in model.parameters())
    except RuntimeError:
        key = None
    cached = model._fused_cache
    if key is None or cached is None or cached[0] != key:
        model._fused_cache = cached = (key, _prepare_weights(model))
    return cached[1]


def _prepare_weights(model: torch.nn.Module) -> dict[str, Any]:
    c = model.config
    D, Hq, Hkv = c.head_dim, c.num_heads, c.num_kv_heads
    R = _rotate_half_matrix(D, model.action_out.weight)
    act = []
    for layer in model.experts["act"].layers:
        lw = _layer_weights(layer)
        # RoPE folded into the Euler steps' projection: with y = a raw q/k head,
        # rotate_half(y) = y @ R, so extra columns W_h @ R also emit y @ R. q_norm / k_norm then
        # RoPE: (y * g * cos + (y @ R) * (g permuted by R) * sin) / rms(y)
        w_rows = lw["w_qkv"].t()  # ((Hq + 2 Hkv) D, d): per head, y_h = h @ W_h^T
        d_in = w_rows.shape[1]
        w_rot = R.t() @ w_rows[:(Hq + Hkv) * D].reshape(Hq + Hkv, D, d_in)  # y_h @ R = h @ (R^T W_h)^T
        lw["w_qkv_rot"] = torch.cat([w_rows, w_rot.reshape(-1, d_in)]).t().contiguous()  # (d, (2 Hq + 3 Hkv) D)
        lw["g_qk_rot"] = lw["g_qk"] @ R.abs()
        act.append(lw)
    emb, d = model.action_embed, c.act_hidden
    return dict(
        R=R, eps=torch.tensor(c.rms_norm_eps, device=R.device),  # 0-d tensor: see _rms
        act=act,
        w_action_in=emb.action_in.weight.t().contiguous(), b_action_in=emb.action_in.bias,
        w_time_in=emb.time_mlp_in.weight[:, :d].t().contiguous(),  # action half of time_mlp_in
        w_time_out=emb.time_mlp_out.weight.t().contiguous(), b_time_out=emb.time_mlp_out.bias,
        w_out=(model.action_out.weight * model.experts["act"].norm.weight).t().contiguous(),
        b_out=model.action_out.bias,
        time_bias={},  # steps -> (steps, 1, d): see euler_steps
    )


def euler_steps(model: torch.nn.Module, layout, cache, state_in: torch.Tensor, noise: torch.Tensor,
                steps: int) -> torch.Tensor:
    """Actions (B, H, A) by ``steps`` Euler steps from ``noise`` (t=1) to t=0, each running only the
    suffix (state + H action tokens) through the action expert (_velocity), reading ``cache``: the
    per-layer (key, value) of prefix + middle that A1Model.sample_actions made. state_in
    (B, state_input_dim): the state token's inputs (A1Model.state_inputs)."""
    c = model.config
    B, H, _ = noise.shape
    D, Hq, Hkv = c.head_dim, c.num_heads, c.num_kv_heads
    S = H + 1  # suffix tokens: state + actions
    seg = layout.segments
    n_ctx = seg["suffix"].start  # prefix + middle
    mask = layout.att_2d()[:, None]  # (B, 1, N, N) bool
    pos = layout.position_ids()  # (B, N)
    lw = fused_weights(model)

    # 1) per-layer key/value buffers (B, Hkv, n_ctx + S, D): the context is copied in once,
    #    each step writes its suffix keys/values into the tail (no concatenation per step)
    kv = []
    for k_ctx, v_ctx in cache:
        k_all = torch.cat([k_ctx, k_ctx.new_empty(B, Hkv, S, D)], 2)
        v_all = torch.cat([v_ctx, v_ctx.new_empty(B, Hkv, S, D)], 2)
        kv.append((k_all, v_all, k_all[:, :, n_ctx:], v_all[:, :, n_ctx:]))
    sfx_mask = _additive_mask(mask[:, :, seg["suffix"], :])  # (B, 1, S, N): the suffix rows

    # 2) what every Euler step shares: RoPE of the suffix positions times the q/k-norm gains,
    #    time embeddings, the state token (it depends on neither x_t nor t)
    cos, sin = model.rotary(noise, pos[:, seg["suffix"]])  # (B, S, D)
    cos, sin = cos.reshape(B * S, 1, D), sin.reshape(B * S, 1, D)
    layers = [dict(w, cos=cos * w["g_qk"], sin=sin * w["g_qk_rot"]) for w in lw["act"]]  # (B*S, Hq+Hkv, D)
    # buffers the steps write into, with their views made once (each view is a dispatched op)
    qkv_rot = noise.new_empty(B * S, (2 * Hq + 3 * Hkv) * D)
    heads = qkv_rot.view(B * S, 2 * Hq + 3 * Hkv, D)
    qk = noise.new_empty(B * S, Hq + Hkv, D)  # q/k after norm and RoPE
    buf = dict(qkv_rot=qkv_rot, y=heads[:, :Hq + Hkv], y_rot=heads[:, Hq + 2 * Hkv:], qk=qk,
               q=qk[:, :Hq].view(B, S, Hq, D).transpose(1, 2),  # (B, Hq, S, D)
               k=qk[:, Hq:].view(B, S, Hkv, D).transpose(1, 2),  # (B, Hkv, S, D)
               v=heads[:, Hq + Hkv:Hq + 2 * Hkv].view(B, S, Hkv, D).transpose(1, 2))
    dt = -1.0 / steps
    if steps not in lw["time_bias"]:  # time half of time_mlp_in (+ its bias) per step: (steps, 1, d)
        emb, d = model.action_embed, c.act_hidden
        t = torch.tensor([1.0 + i * dt for i in range(steps)], device=noise.device)  # as the readable path
        temb = fm.sinusoidal_embedding(t, d, c.time_min_period, c.time_max_period)  # (steps, d)
        lw["time_bias"][steps] = F.linear(temb, emb.time_mlp_in.weight[:, d:], emb.time_mlp_in.bias)[:, None]
    t_bias = lw["time_bias"][steps].expand(-1, B * H, -1)  # (steps, B*H, d)
    if c.state_to_actions:  # the state inputs enter every action token at the same place as time
        t_bias = t_bias + model.action_embed.state_to_actions(state_in).repeat_interleave(H, 0)[None]
    step_w = dict(lw, layers=layers, buf=buf, state=model.action_embed.state_proj(state_in)[:, None, :])
    x = noise
    for i in range(steps):
        x = torch.add(x, _velocity(c, x, t_bias[i], kv, sfx_mask, step_w), alpha=dt)  # x + dt * v
    return x


def _velocity(c, x_t, t_bias, kv, mask, w) -> torch.Tensor:
    """Velocity (B, H, A) at one Euler step: the suffix (state + H action tokens) through the
    action expert with 2-D (B*S, width) activations, its keys/values written into the
    preallocated buffers ``kv``. Same math as A1Model._mot_layer for the "act" group. c: the
    A1Config; t_bias (B*H, d): this step's time half of time_mlp_in; mask (B, 1, S, N) float;
    w: see euler_steps."""
    D, Hq, Hkv = c.head_dim, c.num_heads, c.num_kv_heads
    B, H, A = x_t.shape
    S = H + 1
    eps, buf = w["eps"], w["buf"]
    # action tokens: time_mlp_out(silu(time_mlp_in([action_in(x_t), temb]))), as ActionEmbed
    a = torch.addmm(w["b_action_in"], x_t.reshape(B * H, A), w["w_action_in"])  # (B*H, d)
    a = F.silu(torch.addmm(t_bias, a, w["w_time_in"]))
    a = torch.addmm(w["b_time_out"], a, w["w_time_out"])  # (B*H, d)
    x = torch.cat([w["state"], a.view(B, H, -1)], 1).view(B * S, -1)  # (B*S, d): state token first
    for lw, (k_all, v_all, k_new, v_new) in zip(w["layers"], kv):
        torch.mm(_rms(x, eps), lw["w_qkv_rot"], out=buf["qkv_rot"])  # [q, k, v, q @ R, k @ R]
        y = buf["y"]  # (B*S, Hq+Hkv, D) raw q/k
        inv_rms = torch.rsqrt(torch.add(eps, (y * y).sum(-1, keepdim=True), alpha=1.0 / D))  # q/k norms
        torch.mul(torch.addcmul(y * lw["cos"], buf["y_rot"], lw["sin"]), inv_rms, out=buf["qk"])  # RoPE
        k_new.copy_(buf["k"])  # (B, Hkv, S, D) into the cache
        v_new.copy_(buf["v"])
        o = F.scaled_dot_product_attention(buf["q"], k_all, v_all, attn_mask=mask, enable_gqa=Hq != Hkv)
        x = torch.addmm(x, o.transpose(1, 2).reshape(B * S, Hq * D), lw["w_o"])  # x + o_proj(o)
        x = _mlp(x, lw, eps)
    v = torch.addmm(w["b_out"], _rms(x, eps), w["w_out"])  # (B*S, A)
    return v.view(B, S, A)[:, 1:]  # the action tokens' velocities (B, H, A)
