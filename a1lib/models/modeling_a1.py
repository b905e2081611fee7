"""A1Model: the InternVLA-A1 Mixture-of-Transformers, small enough for a laptop CPU.

Three experts, one sequence. Each expert is a stack of Qwen3 decoder layers (from `transformers`)
with its own norms, Q/K/V/O projections and SwiGLU MLP:

    understanding expert  <- image patches of frame t + instruction tokens   (prefix)
    generation expert     <- latents of frames t-delta and t                  (middle)
    action expert         <- state token + H noisy action tokens              (suffix)

At every layer each expert projects ITS tokens to queries/keys/values, the Q/K/V of all tokens are
concatenated, and ONE attention (shared RoPE, the blockwise-causal mask of token_layout.py) mixes
them. Each expert then applies its own output projection and MLP to its own tokens. So the experts
must agree on depth, head count and head size, but not on width. This is the MoT layer
(``_mot_layer`` below), the heart of the model.

Outputs and losses:
* action expert -> velocity of the flow (flow_matching.py); loss MSE(v, noise - actions).
* generation expert -> the latent of frame t+delta: tokens averaged over the two input frames,
  a transposed conv back to the latent grid, LayerNorm + Linear to C channels; loss MSE x lambda_gen.
* understanding expert -> a language-model head. Understanding is trained by a SEPARATE pass
  through the understanding expert only: [image, question] bidirectional, then [answer-start,
  answer tokens] causal; next-token cross-entropy on the answer tokens, weighted by lambda_und.
  (The original co-trains on VQA the same way: its understanding expert is a plain VLM.)

Inference (``sample_actions``) mirrors the original (and openpi's pi0): the prefix runs once into a
KV cache, the middle runs once appending to it, then each Euler step runs only the suffix through
the action expert, reading the cache. Because nothing before the suffix can see the suffix, this is
exact. The steps run either through the same run_experts code as training (``fused=False``) or,
by default, through fused_sampler.py: the same function with ~3x fewer torch ops (a speed switch,
tested equal to the readable path).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn
from transformers import Qwen3Config
from transformers.models.qwen3.modeling_qwen3 import (
    Qwen3DecoderLayer,
    Qwen3RMSNorm,
    Qwen3RotaryEmbedding,
    apply_rotary_pos_emb,
)

from a1lib.io import atomic_save_safetensors, atomic_write_text
from a1lib.models import flow_matching as fm
from a1lib.models import fused_sampler
from a1lib.models.configuration_a1 import A1Config
from a1lib.models.token_layout import action_layout, understanding_layout
from a1lib.models.vision import grounding_loss, keypoints, make_vision, random_shift

CONFIG_NAME = "config.json"
KEYPOINT_SCALE = 4.0  # keypoint offsets (fractions of the image) x 4: O(1) inputs for the state token
WEIGHTS_NAME = "model.safetensors"

KVCache = list  # per layer: (key, value), each (B, num_kv_heads, N_cached, head_dim), after RoPE


def rms_norm(norm: Qwen3RMSNorm, x: torch.Tensor) -> torch.Tensor:
    """Qwen3RMSNorm's math (x / rms(x) * weight, in float32 here) as ONE fused torch op, reading the
    module's own weight and eps. The module's Python forward launches ~8 small kernels; at batch 1
    that launch overhead, not arithmetic, dominates the latency. tests/eager_reference.py calls the
    modules themselves, and the tests check both agree."""
    return F.rms_norm(x, norm.weight.shape, norm.weight, norm.variance_epsilon)


def qwen3_config(config: A1Config, hidden: int, mlp: int) -> Qwen3Config:
    """The Qwen3 config of one expert: shared geometry, own widths."""
    return Qwen3Config(
        vocab_size=config.vocab_size, hidden_size=hidden, intermediate_size=mlp,
        num_hidden_layers=config.num_layers, num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_kv_heads, head_dim=config.head_dim,
        rms_norm_eps=config.rms_norm_eps, rope_theta=config.rope_theta, attention_bias=False,
        max_position_embeddings=4096,
    )


class Expert(nn.Module):
    """One expert: ``num_layers`` Qwen3 decoder layers (we call their submodules, see _mot_layer)
    plus a final RMSNorm."""

    def __init__(self, config: A1Config, hidden: int, mlp: int):
        super().__init__()
        qcfg = qwen3_config(config, hidden, mlp)
        self.hidden_size = hidden
        self.layers = nn.ModuleList(Qwen3DecoderLayer(qcfg, i) for i in range(config.num_layers))
        self.norm = Qwen3RMSNorm(hidden, eps=config.rms_norm_eps)


class HistoryEmbed(nn.Module):
    """Latents of frames t-delta and t (B, 2, C, h, w) -> middle tokens (B, 2 * (h/p)^2, gen_hidden).
    A 1x1 conv lifts the channels, a p x p stride-p conv cuts the grid into tokens (the original:
    8x8 stride 8 on a 32x32 latent; ours: 2x2 stride 2 on 8x8)."""

    def __init__(self, config: A1Config):
        super().__init__()
        self.lift = nn.Conv2d(config.latent_channels, config.gen_lift_channels, 1)
        self.patchify = nn.Conv2d(config.gen_lift_channels, config.gen_hidden, config.gen_patch,
                                  stride=config.gen_patch)

    def forward(self, latent_hist: torch.Tensor) -> torch.Tensor:
        B, T, C, h, w = latent_hist.shape
        x = self.patchify(self.lift(latent_hist.reshape(B * T, C, h, w)))  # (B*T, D, h/p, w/p)
        x = x.flatten(2).transpose(1, 2)  # (B*T, n, D)
        return x.reshape(B, T * x.shape[1], x.shape[2])  # frame t-delta tokens, then frame t


class FuturePredictionHead(nn.Module):
    """Generation-expert outputs (B, 2n, D) -> predicted latent of frame t+delta (B, C, h, w):
    average over the two frames, transposed conv back to the latent grid, LayerNorm + Linear.
    With ``future_residual`` the model adds this to the latent of frame t (A1Model.predict_future):
    most of a frame does not move in half a second, so the expert only has to imagine the change."""

    def __init__(self, config: A1Config):
        super().__init__()
        self.grid = config.latent_size // config.gen_patch
        self.upsample = nn.ConvTranspose2d(config.gen_hidden, config.gen_lift_channels, config.gen_patch,
                                           stride=config.gen_patch)
        self.norm = nn.LayerNorm(config.gen_lift_channels)
        self.out = nn.Linear(config.gen_lift_channels, config.latent_channels)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        B, N, D = tokens.shape
        x = tokens.reshape(B, 2, N // 2, D).mean(1)  # (B, n, D): average of the two input frames
        x = x.transpose(1, 2).reshape(B, D, self.grid, self.grid)  # (B, D, h/p, w/p)
        x = self.upsample(x).permute(0, 2, 3, 1)  # (B, h, w, lift)
        return self.out(self.norm(x)).permute(0, 3, 1, 2)  # (B, C, h, w)


class ActionEmbed(nn.Module):
    """State inputs (B, state_input_dim) -> 1 state token; noisy actions (B, H, A) and time (B,) -> H
    action tokens: [action embedding, sinusoidal time embedding] -> Linear -> SiLU -> Linear (pi0),
    with the state inputs added inside that MLP (``state_to_actions``). WHY: the state inputs hold
    the grounding keypoints, and each action's velocity is nearly a function of them (where the
    target is from the gripper); through the state token alone they reach the action tokens only by
    attention, which learned far more slowly at our budget (as Diffusion Policy conditions every
    denoising step on the observation features)."""

    def __init__(self, config: A1Config):
        super().__init__()
        d = config.act_hidden
        self.config = config
        self.state_proj = nn.Linear(config.state_input_dim, d)
        self.action_in = nn.Linear(config.action_dim, d)
        self.time_mlp_in = nn.Linear(2 * d, d)
        self.time_mlp_out = nn.Linear(d, d)
        if config.state_to_actions:
            self.state_to_actions = nn.Linear(config.state_input_dim, d, bias=False)

    def forward(self, state: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        c = self.config
        H = x_t.shape[1]
        temb = fm.sinusoidal_embedding(t, c.act_hidden, c.time_min_period, c.time_max_period)  # (B, d)
        a = self.action_in(x_t)  # (B, H, d)
        a = torch.cat([a, temb[:, None, :].to(a.dtype).expand(-1, H, -1)], dim=-1)  # (B, H, 2d)
        h = self.time_mlp_in(a)  # (B, H, d)
        if c.state_to_actions:
            h = h + self.state_to_actions(state)[:, None, :]
        a = self.time_mlp_out(F.silu(h))  # (B, H, d)
        return torch.cat([self.state_proj(state)[:, None, :], a], dim=1)  # (B, 1 + H, d)


class A1Model(nn.Module):
    """The three-expert model. Public API: forward(batch) -> losses, sample_actions(batch),
    imagine(batch), answer(image, question), save_pretrained(dir), from_pretrained(dir),
    param_counts(). The batch contract is in ARCHITECTURE.md and validate_batch below."""

    def __init__(self, config: A1Config):
        super().__init__()
        self.config = config
        with torch.random.fork_rng(devices=[]):  # deterministic init without touching global RNG
            torch.manual_seed(config.seed)
            self.experts = nn.ModuleDict({"und": Expert(config, config.und_hidden, config.und_mlp)})
            if config.has_generation_expert:
                self.experts["gen"] = Expert(config, config.gen_hidden, config.gen_mlp)
            self.experts["act"] = Expert(config, config.act_hidden, config.act_mlp)
            self.rotary = Qwen3RotaryEmbedding(qwen3_config(config, config.und_hidden, config.und_mlp))
            # understanding expert: vision path, text embeddings, language-model head
            self.vision = make_vision(config)
            self.text_embed = nn.Embedding(config.vocab_size, config.und_hidden)
            self.answer_start = nn.Parameter(torch.zeros(1, 1, config.und_hidden))
            self.lm_head = nn.Linear(config.und_hidden, config.vocab_size, bias=False)
            # generation expert: history in, future out ("no_future_loss": no head at all)
            if config.has_generation_expert:
                self.history_embed = HistoryEmbed(config)
            if config.generation == "full":
                self.future_head = FuturePredictionHead(config)
            # action expert
            self.action_embed = ActionEmbed(config)
            self.action_out = nn.Linear(config.act_hidden, config.action_dim)
            self._init_weights()
        self._fused_cache = None  # (weight-version key, prepared weights): fused_sampler.fused_weights

    def _init_weights(self) -> None:
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif "norm" in name.rsplit(".", 1)[0].rsplit(".", 1)[-1] and p.ndim == 1:
                continue  # RMSNorm / LayerNorm gains stay 1
            else:
                nn.init.normal_(p, std=self.config.init_std)

    # ------------------------------------------------------------------------------------------
    # The MoT layer
    # ------------------------------------------------------------------------------------------
    def _mot_layer(self, i: int, groups: list[tuple[Expert, torch.Tensor]], cos, sin,
                   mask: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None):
        """Layer i for all groups. groups: [(expert, x (B, n_e, d_e))], contiguous in sequence
        order; mask (B, 1, N, N_past + N) bool; past: cached (key, value) of earlier tokens.
        Returns the new hidden states and this layer's full (key, value)."""
        D = self.config.head_dim
        qs, ks, vs = [], [], []
        for expert, x in groups:  # per-expert projections
            layer = expert.layers[i]
            attn = layer.self_attn
            B, n, _ = x.shape
            h = rms_norm(layer.input_layernorm, x)
            qs.append(rms_norm(attn.q_norm, attn.q_proj(h).view(B, n, -1, D)).transpose(1, 2))  # (B, Hq, n, D)
            ks.append(rms_norm(attn.k_norm, attn.k_proj(h).view(B, n, -1, D)).transpose(1, 2))  # (B, Hkv, n, D)
            vs.append(attn.v_proj(h).view(B, n, -1, D).transpose(1, 2))  # (B, Hkv, n, D)
        one = len(groups) == 1
        q = qs[0] if one else torch.cat(qs, 2)  # (B, Hq, N, D)
        k = ks[0] if one else torch.cat(ks, 2)
        v = vs[0] if one else torch.cat(vs, 2)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)  # shared RoPE over the joint sequence
        if past is not None:
            k = torch.cat([past[0], k], 2)  # (B, Hkv, N_past + N, D)
            v = torch.cat([past[1], v], 2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                             enable_gqa=self.config.num_heads != self.config.num_kv_heads)
        out = out.transpose(1, 2).flatten(2)  # (B, N, Hq * D)
        new, start = [], 0
        for expert, x in groups:  # per-expert output projection and MLP
            layer = expert.layers[i]
            n = x.shape[1]
            x = x + layer.self_attn.o_proj(out[:, start:start + n])
            x = x + layer.mlp(rms_norm(layer.post_attention_layernorm, x))
            new.append(x)
            start += n
        return new, (k, v)

    def run_experts(self, groups: list[tuple[str, torch.Tensor]], mask: torch.Tensor,
                    position_ids: torch.Tensor, past: KVCache | None = None):
        """All layers. groups: [(expert name, embeddings (B, n, d))]; mask (B, 1, N, N_past + N);
        position_ids (B, N). Returns ([final-normed outputs per group], KV cache incl. past)."""
        experts = [self.experts[name] for name, _ in groups]
        xs = [x for _, x in groups]
        cos, sin = self.rotary(xs[0], position_ids)  # (B, N, D)
        cache = []
        for i in range(self.config.num_layers):
            xs, kv = self._mot_layer(i, list(zip(experts, xs)), cos, sin, mask, None if past is None else past[i])
            cache.append(kv)
        return [rms_norm(e.norm, x) for e, x in zip(experts, xs)], cache

    # ------------------------------------------------------------------------------------------
    # Embeddings
    # ------------------------------------------------------------------------------------------
    def embed_prefix(self, image: torch.Tensor, lang_tokens: torch.Tensor, lang_mask: torch.Tensor) -> torch.Tensor:
        """(B, n_img + L, und_hidden): image tokens, then instruction tokens."""
        return torch.cat([self.vision(image, lang_tokens, lang_mask)[0], self.text_embed(lang_tokens)], dim=1)

    def prefix_pass(self, image: torch.Tensor, lang_tokens: torch.Tensor, layout) -> dict[str, Any]:
        """The understanding expert alone over the prefix (it sees nothing after it, so this is exact,
        and it is what the KV cache holds): {"cache": per-layer (key, value) of the prefix, "logits":
        grounding heat-maps (B, G, h, w) or None, "image_tokens": (B, n_img, und_hidden)}."""
        lang_mask = layout.pad_masks[:, layout.segments["text"]]
        image_tokens, logits = self.vision(image, lang_tokens, lang_mask)
        prefix = torch.cat([image_tokens, self.text_embed(lang_tokens)], dim=1)
        n = layout.segments["prefix"].stop
        _, cache = self.run_experts([("und", prefix)], layout.att_2d()[:, None, :n, :n], layout.position_ids()[:, :n])
        return {"cache": cache, "logits": logits, "image_tokens": image_tokens}

    def state_inputs(self, state: torch.Tensor, logits: torch.Tensor | None) -> torch.Tensor:
        """What the state token reads: proprioception (B, S), then per grounding name its keypoint
        relative to the gripper's (the gripper's own: absolute), x KEYPOINT_SCALE, and its presence.
        Relative positions are what the actions depend on, and a shifted camera does not change them."""
        if not self.config.keypoints_in_state or logits is None:
            return state
        kp, presence = keypoints(logits)  # (B, G, 2), (B, G)
        rel = torch.cat([kp[:, :1], kp[:, 1:] - kp[:, :1]], 1) * KEYPOINT_SCALE
        return torch.cat([state, rel.flatten(1), presence], -1)

    def embed_middle(self, latent_hist: torch.Tensor) -> torch.Tensor:
        return self.history_embed(latent_hist)  # (B, 2n, gen_hidden)

    def predict_future(self, gen_out: torch.Tensor, latent_hist: torch.Tensor) -> torch.Tensor:
        """Generation-expert outputs -> the predicted latent of frame t+delta (B, C, h, w)."""
        delta = self.future_head(gen_out)
        return latent_hist[:, 1] + delta if self.config.future_residual else delta

    def rest_pass(self, batch, layout, cache, state_in=None, x_t=None, t=None, upto: str = "suffix"):
        """Middle (generation expert) and, with ``x_t``, the suffix (action expert) after the prefix,
        reading its KV ``cache``. Returns ([outputs per group: gen?, act?], cache incl. these tokens)."""
        groups = []
        if self.config.has_generation_expert:
            groups.append(("gen", self.embed_middle(batch["latent_hist"])))
        if x_t is not None:
            groups.append(("act", self.action_embed(state_in, x_t, t)))
        n0, n1 = layout.segments["prefix"].stop, layout.segments[upto].stop
        if not groups:
            return [], cache
        return self.run_experts(groups, layout.att_2d()[:, None, n0:n1, :n1], layout.position_ids()[:, n0:n1],
                                past=cache)

    def suffix_velocity(self, cache, state_in, x_t, t, mask, position_ids) -> torch.Tensor:
        """Velocity (B, H, A) of the flow at (x_t, t): the suffix (state + H action tokens) alone
        through the action expert, attending to the cached keys/values of prefix + middle.
        mask (B, 1, S, N) and position_ids (B, S): the suffix rows of the action layout."""
        groups = [("act", self.action_embed(state_in, x_t, t))]  # (B, S, act_hidden)
        (out,), _ = self.run_experts(groups, mask, position_ids, past=cache)
        return self.action_out(out[:, 1:])  # skip the state token

    def _layout(self, batch):
        c = self.config
        return action_layout(c.num_image_tokens, batch["lang_mask"], c.num_gen_tokens, c.chunk_size)

    # ------------------------------------------------------------------------------------------
    # Training
    # ------------------------------------------------------------------------------------------
    def forward(self, batch: dict[str, torch.Tensor], noise: torch.Tensor | None = None,
                time: torch.Tensor | None = None, generator: torch.Generator | None = None, draws: int = 1) -> dict:
        """Losses of one batch. Returns per-sample "action", "generation", "understanding" (B,),
        zero where the loss does not apply, and "loss", the weighted total, each term averaged over
        the samples where it exists. ``draws``: flow-matching (noise, time) draws per sample; the
        action loss averages over them. ``noise`` (B draws, H, A) and ``time`` (B draws,) fix them
        (else drawn from ``generator`` / the global RNG)."""
        c = self.config
        validate_batch(c, batch, "train")
        B = batch["image"].shape[0]
        dev = batch["image"].device
        actions = batch["actions"]
        has_action = batch.get("has_action", torch.ones(B, dtype=torch.bool, device=dev)).bool()
        has_future = batch.get("has_future", torch.ones(B, dtype=torch.bool, device=dev)).bool()
        action_is_pad = batch.get("action_is_pad", torch.zeros(B, c.chunk_size, dtype=torch.bool, device=dev))
        if draws > 1:  # sample b's draws are rows b * draws ... (b + 1) * draws - 1
            actions, action_is_pad = actions.repeat_interleave(draws, 0), action_is_pad.repeat_interleave(draws, 0)
        if noise is None:
            noise = torch.randn(actions.shape, generator=generator, device=dev, dtype=actions.dtype)
        if time is None:
            time = fm.sample_time(B * draws, c.time_beta_alpha, generator=generator, device=dev).to(actions.dtype)
        x_t, u_target = fm.interpolate(actions, noise, time)

        # --- the action pass: the prefix first (its grounding feeds the state token), then the middle
        # and suffix reading its KV cache; the mask makes this the same as one joint pass ----------
        image, points = batch["image"], batch.get("ground_points")
        if self.training and c.shift_augment > 0:
            image, points = random_shift(image, points, c.shift_augment, generator)
        layout = self._layout(batch)
        pre = self.prefix_pass(image, batch["lang_tokens"], layout)
        ground_logits, image_tokens = pre["logits"], pre["image_tokens"]
        state_in = self.state_inputs(batch["state"], ground_logits)
        if draws == 1:
            outs, _ = self.rest_pass(batch, layout, pre["cache"], state_in, x_t, time)
            v = self.action_out(outs[-1][:, 1:])  # (B, H, A): skip the state token
        else:  # the middle once; the suffix alone for every draw, reading the cache repeated per draw
            outs, cache = self.rest_pass(batch, layout, pre["cache"], upto="middle")
            sfx = layout.segments["suffix"]

            def rep(x):
                return x.repeat_interleave(draws, 0)

            v = self.suffix_velocity([(rep(k), rep(val)) for k, val in cache], rep(state_in), x_t, time,
                                     rep(layout.att_2d()[:, None, sfx, :sfx.stop]), rep(layout.position_ids()[:, sfx]))
        valid = (~action_is_pad.bool()).to(v.dtype)[:, :, None]  # (B draws, H, 1)
        per_draw = ((v - u_target) ** 2 * valid).sum((1, 2)) / (valid.sum((1, 2)) * c.action_dim).clamp(min=1)
        per_sample = per_draw.view(B, draws).mean(1)
        loss_action = torch.where(has_action, per_sample, torch.zeros_like(per_sample))

        loss_gen = torch.zeros(B, device=dev, dtype=v.dtype)
        if c.generation == "full":
            pred = self.predict_future(outs[0], batch["latent_hist"])  # (B, C, h, w)
            mse = ((pred - batch["latent_future"]) ** 2).mean((1, 2, 3))
            loss_gen = torch.where(has_future, mse, loss_gen)

        loss_ground = torch.zeros(B, device=dev, dtype=v.dtype)
        has_ground = torch.zeros(B, dtype=torch.bool, device=dev)
        if ground_logits is not None and ground_logits.requires_grad and c.lambda_ground > 0 and points is not None:
            has_ground = batch["ground_valid"].flatten(1).any(1)
            loss_ground = torch.where(has_ground, grounding_loss(ground_logits, points, batch["ground_valid"]),
                                      loss_ground)

        loss_und = torch.zeros(B, device=dev, dtype=v.dtype)
        has_qa = torch.zeros(B, dtype=torch.bool, device=dev)
        if c.lambda_und > 0 and "qa_question_tokens" in batch:
            has_qa = batch.get("has_qa", torch.ones(B, dtype=torch.bool, device=dev)).bool()
            rows = has_qa.nonzero().squeeze(1)
            if len(rows):
                logits = self._answer_logits(image_tokens[rows], batch["qa_question_tokens"][rows],
                                             batch["qa_question_mask"][rows], batch["qa_answer_tokens"][rows],
                                             batch["qa_answer_mask"][rows])  # (b, La, V)
                target = batch["qa_answer_tokens"][rows]
                amask = batch["qa_answer_mask"][rows].to(logits.dtype)
                ce = F.cross_entropy(logits.transpose(1, 2), target, reduction="none")  # (b, La)
                ce = (ce * amask).sum(1) / amask.sum(1).clamp(min=1)
                loss_und = loss_und.index_put((rows,), ce)

        def mean_over(x, m):  # average of x over the samples where the loss exists
            return (x * m).sum() / m.sum().clamp(min=1)

        total = mean_over(loss_action, has_action)
        if c.generation == "full":
            total = total + c.lambda_gen * mean_over(loss_gen, has_future)
        if c.lambda_und > 0:
            total = total + c.lambda_und * mean_over(loss_und, has_qa)
        if has_ground.any():
            total = total + c.lambda_ground * mean_over(loss_ground, has_ground)
        return {"loss": total, "action": loss_action, "generation": loss_gen, "understanding": loss_und,
                "grounding": loss_ground}

    # ------------------------------------------------------------------------------------------
    # Understanding: answer scene questions
    # ------------------------------------------------------------------------------------------
    def _answer_logits(self, image_tokens, q_tokens, q_mask, a_tokens, a_mask) -> torch.Tensor:
        """Teacher-forced answer logits (B, La, V): position k predicts answer token k."""
        layout = understanding_layout(self.config.num_image_tokens, q_mask, a_mask)
        B = image_tokens.shape[0]
        # (* 1.0: the parameter's gradient is then its own tensor, not a slice of the cat's, as DDP's buckets want)
        answer_in = torch.cat([self.answer_start.expand(B, -1, -1) * 1.0, self.text_embed(a_tokens[:, :-1])], 1)
        x = torch.cat([image_tokens, self.text_embed(q_tokens), answer_in], 1)
        (out,), _ = self.run_experts([("und", x)], layout.att_2d()[:, None], layout.position_ids())
        return self.lm_head(out[:, layout.segments["answer"]])

    @torch.inference_mode()
    def answer(self, image: torch.Tensor, q_tokens: torch.Tensor, q_mask: torch.Tensor,
               max_new_tokens: int | None = None, eos_id: int | None = None) -> torch.Tensor:
        """Greedy answer tokens (B, max_new_tokens) (no cache: answers are short). Tokens after
        ``eos_id`` are left as they come; the caller's tokenizer cuts at EOS."""
        n = max_new_tokens or self.config.max_text_len
        B = image.shape[0]
        image_tokens = self.vision(image)[0]  # (no instruction here: FiLM only shapes the heat-maps)
        tokens = torch.zeros(B, 0, dtype=torch.long, device=image.device)
        for _ in range(n):
            a_tok = torch.cat([tokens, tokens.new_zeros(B, 1)], 1)  # the last one is a placeholder
            logits = self._answer_logits(image_tokens, q_tokens, q_mask, a_tok,
                                         torch.ones_like(a_tok, dtype=torch.bool))
            tokens = torch.cat([tokens, logits[:, -1].argmax(-1, keepdim=True)], 1)
        return tokens

    # ------------------------------------------------------------------------------------------
    # Inference
    # ------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def imagine(self, batch: dict[str, torch.Tensor], decode: Callable | None = None) -> dict:
        """Predicted latent of frame t+delta {"latent": (B, C, h, w)}, plus {"pixels": decode(latent)}
        when a decode callable (e.g. the image tokenizer's decoder) is given. Runs prefix + middle only."""
        if self.config.generation != "full":
            raise ValueError(f"imagine() needs generation='full', this model has {self.config.generation!r}")
        validate_batch(self.config, batch, "imagine")
        layout = self._layout(batch)
        pre = self.prefix_pass(batch["image"], batch["lang_tokens"], layout)
        outs, _ = self.rest_pass(batch, layout, pre["cache"], upto="middle")
        latent = self.predict_future(outs[0], batch["latent_hist"])
        result = {"latent": latent}
        if decode is not None:
            result["pixels"] = decode(latent)
        return result

    @torch.inference_mode()
    def sample_actions(self, batch: dict[str, torch.Tensor], num_steps: int | None = None,
                       use_cache: bool = True, noise: torch.Tensor | None = None,
                       generator: torch.Generator | None = None, fused: bool = True) -> torch.Tensor:
        """Action chunk (B, H, A) by ``num_steps`` Euler steps from noise (t=1) to actions (t=0).

        use_cache=True (as pi0): the prefix once into a KV cache (its grounding gives the state
        token's inputs), the middle once appended to it, then per step only the suffix (state + H
        action tokens) through the action expert, reading the cache. fused=False runs those steps
        through run_experts (suffix_velocity), the code training runs; fused=True (the default:
        several times faster at batch 1, bench/bench_model.py) through fused_sampler.euler_steps,
        the same function in fewer torch ops. use_cache=False: the whole sequence, prefix
        included, every step (the reference the tests hold the cached paths to)."""
        c = self.config
        validate_batch(c, batch, "infer")
        steps = num_steps or c.num_inference_steps
        B = batch["image"].shape[0]
        dev = batch["image"].device
        if noise is None:
            noise = torch.randn(B, c.chunk_size, c.action_dim, generator=generator, device=dev)
        elif noise.shape != (B, c.chunk_size, c.action_dim):
            raise ValueError(f"noise: expected shape {(B, c.chunk_size, c.action_dim)}, got {tuple(noise.shape)}")
        layout = self._layout(batch)
        dt = -1.0 / steps
        if not use_cache:
            x = noise
            for i in range(steps):
                t = torch.full((B,), 1.0 + i * dt, device=dev)
                pre = self.prefix_pass(batch["image"], batch["lang_tokens"], layout)
                state_in = self.state_inputs(batch["state"], pre["logits"])
                outs, _ = self.rest_pass(batch, layout, pre["cache"], state_in, x, t)
                x = x + dt * self.action_out(outs[-1][:, 1:])
            return x

        pre = self.prefix_pass(batch["image"], batch["lang_tokens"], layout)
        state_in = self.state_inputs(batch["state"], pre["logits"])
        _, cache = self.rest_pass(batch, layout, pre["cache"], upto="middle")  # + the middle's keys/values
        if fused:
            return fused_sampler.euler_steps(self, layout, cache, state_in, noise, steps)
        sfx = layout.segments["suffix"]
        mask = layout.att_2d()[:, None, sfx, :sfx.stop]  # (B, 1, S, N): the suffix rows
        pos = layout.position_ids()[:, sfx]  # (B, S)
        x = noise
        for i in range(steps):
            t = torch.full((B,), 1.0 + i * dt, device=dev)
            x = x + dt * self.suffix_velocity(cache, state_in, x, t, mask, pos)
        return x

    # ------------------------------------------------------------------------------------------
    # Persistence: model.safetensors + config.json, nothing else touched in the directory
    # ------------------------------------------------------------------------------------------
    def param_counts(self) -> dict[str, int]:
        """Parameters per part: und (expert + vision + text + lm head), gen, act, total."""
        counts = {"und": 0, "gen": 0, "act": 0}
        for name, p in self.named_parameters():
            if name.startswith("experts."):
                part = name.split(".")[1]
            elif name.startswith(("history_embed", "future_head")):
                part = "gen"
            elif name.startswith(("action_embed", "action_out")):
                part = "act"
            else:
                part = "und"
            counts[part] += p.numel()
        counts["total"] = sum(counts.values())
        return counts

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        atomic_save_safetensors(state, directory / WEIGHTS_NAME, metadata={"format": "pt"})
        atomic_write_text(directory / CONFIG_NAME, self.config.to_json())

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, map_location: str = "cpu") -> "A1Model":
        directory = Path(directory)
        cfg_path, w_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
        for p in (cfg_path, w_path):
            if not p.is_file():
                raise FileNotFoundError(f"{p}: not found (expected {CONFIG_NAME} and {WEIGHTS_NAME})")
        try:
            cfg_dict = json.loads(cfg_path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{cfg_path}: not valid JSON: {e}") from e
        config = A1Config.from_dict(cfg_dict, where=str(cfg_path))
        model = cls(config)
        state = load_file(str(w_path), device=map_location)
        expected = model.state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        shapes = [f"{k}: file {tuple(state[k].shape)} vs config {tuple(expected[k].shape)}"
                  for k in sorted(set(state) & set(expected)) if state[k].shape != expected[k].shape]
        if missing or unexpected or shapes:
            parts = []
            for title, items in (("missing keys", missing), ("unexpected keys", unexpected),
                                 ("shape mismatches", shapes)):
                if items:
                    more = f" (+{len(items) - 10} more)" if len(items) > 10 else ""
                    parts.append(f"{title} ({len(items)}): {items[:10]}{more}")
            raise ValueError(f"{w_path} does not match {cfg_path}: " + "; ".join(parts))
        model.load_state_dict(state, strict=True)
        return model.to(map_location)


# ----------------------------------------------------------------------------------------------
# Input validation: wrong inputs fail loudly, naming the key, expected and got
# ----------------------------------------------------------------------------------------------
def validate_batch(config: A1Config, batch: dict[str, Any], mode: str) -> None:
    """mode: "train" (losses), "infer" (sample_actions), "imagine"."""
    c = config
    if not isinstance(batch, dict):
        raise ValueError(f"batch: expected a dict of tensors, got {type(batch).__name__}")
    need = ["image", "lang_tokens", "lang_mask"]
    if c.has_generation_expert:
        need.append("latent_hist")
    if mode in ("train", "infer"):
        need.append("state")
    if mode == "train":
        need.append("actions")
        if c.generation == "full":
            need.append("latent_future")
    missing = [k for k in need if k not in batch]
    if missing:
        raise ValueError(f"batch: missing key(s) {missing} (mode {mode!r}, generation {c.generation!r})")
    for k, v in batch.items():
        if k in need and not isinstance(v, torch.Tensor):
            raise ValueError(f"batch['{k}']: expected a torch.Tensor, got {type(v).__name__}")
    image = batch["image"]
    if image.ndim != 4:
        raise ValueError(f"batch['image']: expected shape (B, 3, {c.image_size}, {c.image_size}), "
                         f"got {tuple(image.shape)}")
    B = image.shape[0]

    def check(key, shape, dtype_kind=None, finite=False):
        if key not in batch:
            return
        v = batch[key]
        if not isinstance(v, torch.Tensor):
            raise ValueError(f"batch['{key}']: expected a torch.Tensor, got {type(v).__name__}")
        if tuple(v.shape) != tuple(shape):
            raise ValueError(f"batch['{key}']: expected shape {tuple(shape)}, got {tuple(v.shape)}")
        if dtype_kind == "float" and not v.is_floating_point():
            raise ValueError(f"batch['{key}']: expected a float tensor, got {v.dtype}")
        if dtype_kind == "long" and v.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"batch['{key}']: expected integer token ids, got {v.dtype}")
        if dtype_kind == "bool" and v.dtype != torch.bool:
            raise ValueError(f"batch['{key}']: expected a bool tensor, got {v.dtype}")
        if finite and not torch.isfinite(v).all():
            bad = (~torch.isfinite(v)).reshape(B, -1).any(1).nonzero().flatten().tolist()
            raise ValueError(f"batch['{key}']: contains NaN/inf (samples {bad})")

    check("image", (B, 3, c.image_size, c.image_size), "float", finite=True)
    if image.min() < 0 or image.max() > 1:
        raise ValueError(f"batch['image']: expected values in [0, 1], "
                         f"got [{float(image.min()):.3g}, {float(image.max()):.3g}]")
    L = batch["lang_tokens"].shape[1] if batch["lang_tokens"].ndim == 2 else -1
    check("lang_tokens", (B, L), "long")
    check("lang_mask", (B, L), "bool")
    if L > c.max_text_len or L < 1:
        raise ValueError(f"batch['lang_tokens']: expected 1..{c.max_text_len} tokens (max_text_len), got {L}")
    empty = (~batch["lang_mask"].any(1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"batch['lang_mask']: empty instruction (no real token) in sample(s) {empty}")
    tok = batch["lang_tokens"]
    if (tok < 0).any() or (tok >= c.vocab_size).any():
        raise ValueError(f"batch['lang_tokens']: ids must be in [0, {c.vocab_size}), "
                         f"got min {int(tok.min())} max {int(tok.max())}")
    lat = (c.latent_channels, c.latent_size, c.latent_size)
    if c.has_generation_expert:
        check("latent_hist", (B, 2, *lat), "float", finite=True)
    check("latent_future", (B, *lat), "float", finite=True)
    check("state", (B, c.state_dim), "float", finite=True)
    check("actions", (B, c.chunk_size, c.action_dim), "float", finite=True)
    check("action_is_pad", (B, c.chunk_size), "bool")
    for k in ("has_action", "has_future", "has_qa", "has_grounding"):
        check(k, (B,), "bool")
    if "ground_points" in batch and c.grounding:
        gp = batch["ground_points"]
        M = gp.shape[2] if gp.ndim == 4 else -1
        check("ground_points", (B, c.num_grounding, M, 2), "float", finite=True)
        check("ground_valid", (B, c.num_grounding, M), "bool")
    qa = ["qa_question_tokens", "qa_question_mask", "qa_answer_tokens", "qa_answer_mask"]
    present = [k for k in qa if k in batch]
    if present and mode == "train":
        if len(present) != len(qa):
            raise ValueError(f"batch: QA keys must come together; have {present}, "
                             f"missing {sorted(set(qa) - set(present))}")
        for prefix in ("qa_question", "qa_answer"):
            t = batch[f"{prefix}_tokens"]
            n = t.shape[1] if t.ndim == 2 else -1
            check(f"{prefix}_tokens", (B, n), "long")
            check(f"{prefix}_mask", (B, n), "bool")
            if (t < 0).any() or (t >= c.vocab_size).any():
                raise ValueError(f"batch['{prefix}_tokens']: ids must be in [0, {c.vocab_size})")


def random_batch(config: A1Config, batch_size: int = 2, seed: int = 0, text_len: int | None = None,
                 qa: bool = True) -> dict[str, torch.Tensor]:
    """A synthetic batch that satisfies the batch contract (tests, benchmarks, notebooks).
    Sample 0 has a half-padded instruction so padding is always exercised."""
    c = config
    g = torch.Generator().manual_seed(seed)
    B, L = batch_size, text_len or c.max_text_len
    lang_mask = torch.ones(B, L, dtype=torch.bool)
    lang_mask[0, max(1, L // 2):] = False
    lat = (c.latent_channels, c.latent_size, c.latent_size)
    batch = {
        "image": torch.rand(B, 3, c.image_size, c.image_size, generator=g),
        "lang_tokens": torch.randint(0, c.vocab_size, (B, L), generator=g),
        "lang_mask": lang_mask,
        "latent_hist": torch.randn(B, 2, *lat, generator=g),
        "latent_future": torch.randn(B, *lat, generator=g),
        "state": torch.randn(B, c.state_dim, generator=g),
        "actions": torch.randn(B, c.chunk_size, c.action_dim, generator=g),
        "action_is_pad": torch.zeros(B, c.chunk_size, dtype=torch.bool),
        "has_action": torch.ones(B, dtype=torch.bool),
        "has_future": torch.ones(B, dtype=torch.bool),
    }
    if qa:
        Lq, La = max(2, L // 2), max(2, L // 4)
        q_mask = torch.ones(B, Lq, dtype=torch.bool)
        q_mask[0, Lq - 1:] = False
        a_mask = torch.ones(B, La, dtype=torch.bool)
        a_mask[0, La - 1:] = False
        batch.update(qa_question_tokens=torch.randint(0, c.vocab_size, (B, Lq), generator=g), qa_question_mask=q_mask,
                     qa_answer_tokens=torch.randint(0, c.vocab_size, (B, La), generator=g), qa_answer_mask=a_mask,
                     has_qa=torch.ones(B, dtype=torch.bool))
    return batch
