"""Token layout and attention mask of A1: the ONE place where both are defined.

An action pass lays the tokens of one sample out in three groups, each processed by its expert:

    [ prefix: image tokens of frame t, instruction tokens ]      -> understanding expert
    [ middle: generation tokens of frames t-delta and t ]        -> generation expert
    [ suffix: 1 state token, H noisy action tokens ]             -> action expert

Who sees whom follows the big_vision / openpi ``make_att_2d_masks`` rule. Every token carries a
flag; 1 means "a new block starts here". With ``c = cumsum(flags)``, token i may attend to token j
iff ``c[j] <= c[i]`` and neither is padding. The flags are

    prefix  [0, 0, ..., 0]   one bidirectional block (images + text see each other)
    middle  [1, 0, ..., 0]   one block: sees the prefix and itself, not the suffix
    state   [1]              sees prefix + middle + itself
    actions [1, 0, ..., 0]   see everything before them and each other

so information flows only forward: prefix -> middle -> state -> actions. That is what makes the
KV cache exact: the prefix and middle never depend on the (changing) noisy actions.

Padding: instructions have variable length, so ``lang_mask`` marks real tokens. A padded token
is invisible to every real token. Its own query row would be empty (softmax of nothing = NaN), so
we let a pad token see itself only: its output is garbage but finite, and nobody reads it.
Positions (for RoPE) count real tokens only: ``position = cumsum(pad_mask) - 1``, so padding in
the middle of the sequence does not shift anything.

The understanding pass (scene question answering) reuses the same rule:
    [ image patches, question tokens ] flags 0  (bidirectional)
    [ answer-start, answer tokens    ] flags 1 each (causal, like a language model)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def make_att_2d_masks(pad_masks: torch.Tensor, att_flags: torch.Tensor) -> torch.Tensor:
    """The blockwise-causal rule. pad_masks, att_flags: (B, N) -> (B, N, N) bool, [query, key].

    Pad tokens additionally see themselves (see the module docstring); no real token sees them.
    """
    if pad_masks.shape != att_flags.shape or pad_masks.ndim != 2:
        raise ValueError(f"pad_masks {tuple(pad_masks.shape)} and att_flags {tuple(att_flags.shape)} "
                         "must both be (B, N)")
    cum = torch.cumsum(att_flags.long(), dim=1)  # (B, N)
    att = cum[:, None, :] <= cum[:, :, None]  # (B, Nq, Nk): key block <= query block
    pad = pad_masks.bool()
    att = att & pad[:, None, :] & pad[:, :, None]
    eye = torch.eye(pad.shape[1], dtype=torch.bool, device=pad.device)
    return att | (eye & ~pad[:, :, None])


def position_ids(pad_masks: torch.Tensor) -> torch.Tensor:
    """RoPE positions: (B, N) long, counting real tokens only (pads repeat their left neighbour)."""
    return (torch.cumsum(pad_masks.long(), dim=1) - 1).clamp(min=0)


@dataclass
class Layout:
    """The tokens of one pass: which are real, which start a block, and where each group sits."""

    pad_masks: torch.Tensor  # (B, N) bool, True = real token
    att_flags: torch.Tensor  # (B, N) bool, True = starts a new block
    segments: dict[str, slice]  # group name -> slice along N, in order

    @property
    def num_tokens(self) -> int:
        return self.pad_masks.shape[1]

    def att_2d(self) -> torch.Tensor:
        return make_att_2d_masks(self.pad_masks, self.att_flags)

    def position_ids(self) -> torch.Tensor:
        return position_ids(self.pad_masks)


def _flags(batch: int, n: int, first: bool, device) -> torch.Tensor:
    flags = torch.zeros(batch, n, dtype=torch.bool, device=device)
    if first and n:
        flags[:, 0] = True
    return flags


def action_layout(num_image_tokens: int, lang_mask: torch.Tensor, num_gen_tokens: int,
                  chunk_size: int) -> Layout:
    """Layout of the action pass: prefix (image + text), middle (generation), suffix (state + actions).

    lang_mask: (B, L) bool. num_gen_tokens = 0 gives the pi0-style layout without a middle.
    """
    B, L = lang_mask.shape
    dev = lang_mask.device
    ones = lambda n: torch.ones(B, n, dtype=torch.bool, device=dev)  # noqa: E731
    pads = [ones(num_image_tokens), lang_mask.bool(), ones(num_gen_tokens), ones(1), ones(chunk_size)]
    flags = [
        _flags(B, num_image_tokens + L, False, dev),  # prefix [0, ...]
        _flags(B, num_gen_tokens, True, dev),  # middle [1, 0, ...]
        _flags(B, 1, True, dev),  # state [1]
        _flags(B, chunk_size, True, dev),  # actions [1, 0, ...]
    ]
    n_prefix = num_image_tokens + L
    segments = {
        "image": slice(0, num_image_tokens),
        "text": slice(num_image_tokens, n_prefix),
        "prefix": slice(0, n_prefix),
        "middle": slice(n_prefix, n_prefix + num_gen_tokens),
        "state": slice(n_prefix + num_gen_tokens, n_prefix + num_gen_tokens + 1),
        "actions": slice(n_prefix + num_gen_tokens + 1, n_prefix + num_gen_tokens + 1 + chunk_size),
        "suffix": slice(n_prefix + num_gen_tokens, n_prefix + num_gen_tokens + 1 + chunk_size),
    }
    return Layout(torch.cat(pads, 1), torch.cat(flags, 1), segments)


def understanding_layout(num_image_tokens: int, question_mask: torch.Tensor,
                         answer_mask: torch.Tensor) -> Layout:
    """Layout of the question-answering pass: [image, question] bidirectional, then
    [answer-start, answer_0 .. answer_{n-2}] causal (flag 1 each). The answer inputs are shifted by
    one (teacher forcing), so the pad mask of input k is answer_mask[k-1] (the start is real)."""
    B, Lq = question_mask.shape
    La = answer_mask.shape[1]
    dev = question_mask.device
    ans_in_mask = torch.cat([torch.ones(B, 1, dtype=torch.bool, device=dev), answer_mask[:, :-1].bool()], 1)
    pads = torch.cat([torch.ones(B, num_image_tokens, dtype=torch.bool, device=dev),
                      question_mask.bool(), ans_in_mask], 1)
    flags = torch.cat([torch.zeros(B, num_image_tokens + Lq, dtype=torch.bool, device=dev),
                       torch.ones(B, La, dtype=torch.bool, device=dev)], 1)
    n_prefix = num_image_tokens + Lq
    segments = {"image": slice(0, num_image_tokens), "question": slice(num_image_tokens, n_prefix),
                "prefix": slice(0, n_prefix), "answer": slice(n_prefix, n_prefix + La)}
    return Layout(pads, flags, segments)


def mask_for_plot(config, lang_len: int | None = None, num_real_text: int | None = None):
    """The action-pass attention mask of one sample, for plotting.

    Returns (mask (N, N) bool numpy [query, key], segments {name: slice}, token_labels [str]).
    ``num_real_text`` < ``lang_len`` shows padding (trailing pad tokens).
    """
    lang_len = config.max_text_len if lang_len is None else lang_len
    num_real_text = lang_len if num_real_text is None else num_real_text
    lang_mask = torch.zeros(1, lang_len, dtype=torch.bool)
    lang_mask[0, :num_real_text] = True
    layout = action_layout(config.num_image_tokens, lang_mask, config.num_gen_tokens, config.chunk_size)
    mask = layout.att_2d()[0].numpy()
    labels = []
    for name in ("image", "text", "middle", "state", "actions"):
        sl = layout.segments[name]
        labels += [f"{name}{i}" for i in range(sl.stop - sl.start)]
    for i in range(num_real_text, lang_len):
        labels[config.num_image_tokens + i] = f"pad{i}"
    segments = {k: layout.segments[k] for k in ("image", "text", "middle", "state", "actions")}
    return mask, segments, labels
