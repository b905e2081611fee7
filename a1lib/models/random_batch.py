"""A random but well-formed model batch, for notebooks and benchmarks that study the architecture
(shapes, masks, timing) without needing a dataset. Training uses real batches from A1Processor."""

from __future__ import annotations

import torch

from a1lib.models.configuration_a1 import A1Config


def random_batch(config: A1Config, batch_size: int = 1, seed: int = 0, text_len: int | None = None) -> dict:
    """Every key of the batch contract (see modeling_a1.validate_batch), drawn from ``seed``.

    ``text_len`` real instruction tokens (the rest of max_text_len is padding); default: all real.
    """
    c = config
    g = torch.Generator().manual_seed(seed)
    B, L = batch_size, c.max_text_len
    n_text = L if text_len is None else text_len
    lang_mask = torch.zeros(B, L, dtype=torch.bool)
    lang_mask[:, :n_text] = True
    qa_mask = torch.zeros(B, L, dtype=torch.bool)
    qa_mask[:, : max(1, L // 2)] = True
    ans_mask = torch.zeros(B, 4, dtype=torch.bool)
    ans_mask[:, :2] = True
    latent = (B, c.latent_channels, c.latent_size, c.latent_size)
    return {
        "image": torch.rand(B, 3, c.image_size, c.image_size, generator=g),
        "lang_tokens": torch.randint(1, c.vocab_size, (B, L), generator=g) * lang_mask,
        "lang_mask": lang_mask,
        "latent_hist": torch.randn(B, 2, *latent[1:], generator=g),
        "latent_future": torch.randn(*latent, generator=g),
        "state": torch.randn(B, c.state_dim, generator=g),
        "actions": torch.randn(B, c.chunk_size, c.action_dim, generator=g),
        "action_is_pad": torch.zeros(B, c.chunk_size, dtype=torch.bool),
        "has_action": torch.ones(B, dtype=torch.bool),
        "has_future": torch.ones(B, dtype=torch.bool),
        "qa_question_tokens": torch.randint(1, c.vocab_size, (B, L), generator=g) * qa_mask,
        "qa_question_mask": qa_mask,
        "qa_answer_tokens": torch.randint(1, c.vocab_size, (B, 4), generator=g) * ans_mask,
        "qa_answer_mask": ans_mask,
        "has_qa": torch.ones(B, dtype=torch.bool),
    }
