"""A1Processor: the ONE place where raw samples become model batches.

Like a Hugging Face processor or a LeRobot pre-processor, it owns every conversion between "what a
dataset or a camera gives" and "what A1Model.forward / sample_actions expects" (the batch contract
of ``modeling_a1.validate_batch``). Training and the policy both go through it, so the two can
never drift apart:

    raw sample (numpy, from WindowedDataset or a robot observation)
        observation.image           uint8 (H, W, 3)           -> image          float (3, H, W) in [0, 1]
        observation.state           float32 (S,) real units   -> state          (S,) normalised
        action                      float32 (H, A) real units -> actions        (H, A) normalised
        action_is_pad               bool (H,)                 -> action_is_pad  (H,)
        task                        str                       -> lang_tokens / lang_mask (L,) padded to max_text_len
        scene.* arrays              numpy                     -> qa_question_* / qa_answer_* (one QA pair), has_qa
        index_past / index / index_future (global frame indices)
                                                              -> latent_hist (2, C, h, w), latent_future (C, h, w)
                                                                 looked up in the latent cache (training never
                                                                 re-encodes); at inference the frozen image
                                                                 tokenizer encodes frames t-delta and t
        future_is_pad                                         -> has_future = not future_is_pad
        scene.kind / pose / target / goal / camera, state     -> ground_points (G, M, 2), ground_valid (G, M),
                                                                 has_grounding: where each grounding name is in
                                                                 the image (grounding_targets)
        human video (no state, no action)                     -> state = 0, actions = 0, every action row padded,
                                                                 has_action = False (so no action loss, ever)

``process_sample`` converts one sample (cheap, runs in DataLoader workers), ``collate`` stacks
them; ``__call__`` does both. ``observation_batch`` makes a batch of one from a policy observation.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

# SOURCES: a sample's source_id is its position there (also imported from here by notebook 06).
from a1lib.constants import ACTION, IMAGE, IMAGE_PAST, SOURCES, STATE
from a1lib.models.configuration_a1 import A1Config
from a1lib.sim.world import KIND_NAMES

# qa_fn(scene arrays at t, rng) -> (question, answer) or None when the scene offers no question
QAFn = Callable[[dict[str, np.ndarray], np.random.Generator], "tuple[str, str] | None"]


def grounding_targets(names: tuple[str, ...], scene: dict[str, np.ndarray], state: np.ndarray | None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Where each grounding name (``A1Config.grounding``) is in the image: points (G, M, 2) float32 as (x, y) in [0, 1]
    image coordinates, valid (G, M) bool, M = the scene's object slots.

    "gripper" is the state's (x, y) (not in human video: no state); "target" the pose of the slot
    the expert acts on (``scene.target``); "goal" ``scene.goal``; every other name is an object kind
    and gets the pose of each slot of that kind. Table coordinates become image coordinates by
    adding the camera offset (``scene.camera``); points outside the image are not valid."""
    kind = np.asarray(scene["scene.kind"]).reshape(-1)
    M = len(kind)
    points = np.zeros((len(names), M, 2), np.float32)
    valid = np.zeros((len(names), M), bool)
    pose = np.asarray(scene["scene.pose"], np.float32).reshape(M, 3)
    camera = np.asarray(scene.get("scene.camera", np.zeros(2)), np.float32).reshape(2)
    index = {n: g for g, n in enumerate(names)}

    def put(name: str, slot: int, xy) -> None:
        g = index.get(name)
        if g is not None:
            points[g, slot] = np.asarray(xy, np.float32) + camera
            valid[g, slot] = True

    if state is not None:
        put("gripper", 0, np.asarray(state, np.float32)[:2])
    target = int(np.asarray(scene.get("scene.target", [-1])).reshape(-1)[0])
    if 0 <= target < M:
        put("target", 0, pose[target, :2])
    goal = np.asarray(scene.get("scene.goal", [-1.0, -1.0]), np.float32).reshape(2)
    if (goal >= 0).all():
        put("goal", 0, goal)
    for k in range(M):
        if 0 <= kind[k] < len(KIND_NAMES):
            put(KIND_NAMES[kind[k]], k, pose[k, :2])
    valid &= ((points >= 0) & (points <= 1)).all(-1)  # out of view: nothing to find
    return points, valid


class ProcessorError(ValueError):
    """A sample, observation or dataset does not fit the model config; the message names it."""


def image_to_tensor(image: np.ndarray, image_size: int, where: str = IMAGE) -> torch.Tensor:
    """uint8 (H, W, 3) -> float32 (3, H, W) in [0, 1]; the size must be the model's."""
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[-1] != 3:
        raise ProcessorError(f"{where}: expected uint8 (H, W, 3), got {img.dtype} {img.shape}")
    if img.shape[:2] != (image_size, image_size):
        raise ProcessorError(f"{where}: image is {img.shape[0]}x{img.shape[1]}, the model expects "
                             f"{image_size}x{image_size} (A1Config.image_size)")
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float() / 255.0


def lookup_latents(cache: Any, indices: Sequence[int]) -> torch.Tensor:
    """Latents (N, C, h, w) of global frame ``indices`` from a cache: a LatentCache, or anything
    indexable by an int64 array (a tensor in tests)."""
    idx = np.asarray(indices, dtype=np.int64)
    if hasattr(cache, "get") and not isinstance(cache, (torch.Tensor, np.ndarray, dict)):
        out = cache.get(idx)
    else:
        out = cache[torch.from_numpy(idx)] if isinstance(cache, torch.Tensor) else cache[idx]
    return torch.as_tensor(np.asarray(out) if not isinstance(out, torch.Tensor) else out).float()


class A1Processor:
    """Raw samples / observations -> model batches (see the module docstring).

    ``text_tokenizer``: a ``transformers.PreTrainedTokenizerFast`` (anything with ``encode``).
    ``normalizer``: an ``a1lib.data.Normalizer`` with stats for ``observation.state`` and ``action``.
    ``image_tokenizer``: the frozen ``ImageTokenizer`` (needed only at inference).
    ``latents``: source name -> latent cache indexed by that source's global frame index (training).
    ``qa_fn``: picks one scene question/answer from the scene arrays (understanding loss).
    """

    def __init__(self, config: A1Config, text_tokenizer: Any, normalizer: Any = None,
                 image_tokenizer: Any = None, latents: Mapping[str, Any] | None = None,
                 qa_fn: QAFn | None = None, seed: int = 0):
        self.config = config
        self.text_tokenizer = text_tokenizer
        self.normalizer = normalizer
        self.image_tokenizer = image_tokenizer
        self.latents = dict(latents or {})
        self.qa_fn = qa_fn
        self.seed = int(seed)
        self.pad_id = getattr(text_tokenizer, "pad_token_id", None) or 0
        self.eos_id = getattr(text_tokenizer, "eos_token_id", None)
        self._token_cache: dict[tuple[str, bool], tuple[torch.Tensor, torch.Tensor]] = {}
        self.check_tokenizer()

    # ------------------------------------------------------------------------------------------
    # Checks that run before any training starts
    # ------------------------------------------------------------------------------------------
    def check_tokenizer(self) -> None:
        n = len(self.text_tokenizer)
        if n > self.config.vocab_size:
            raise ProcessorError(f"text tokenizer has {n} tokens but A1Config.vocab_size is "
                                 f"{self.config.vocab_size}; retrain the tokenizer or raise vocab_size")

    def check_normalizer(self) -> None:
        c = self.config
        if self.normalizer is None:
            raise ProcessorError("A1Processor: no normalizer (state/action stats) given")
        for key, dim in ((STATE, c.state_dim), (ACTION, c.action_dim)):
            if key not in self.normalizer.params:
                raise ProcessorError(f"normalizer has no stats for {key!r}; has {sorted(self.normalizer.params)}")
            got = self.normalizer.params[key][0].shape
            if got != (dim,):
                raise ProcessorError(f"normalizer stats for {key!r} have shape {got}, the model expects ({dim},)")

    def check_dataset(self, ds: Any, source: str, image_key: str = IMAGE) -> None:
        """The dataset's features agree with the model config; the latent cache covers it."""
        c = self.config
        feats = ds.features
        where = f"{ds.root}"
        if image_key not in feats:
            raise ProcessorError(f"{where}: no feature {image_key!r}; have {sorted(feats)}")
        shape = tuple(feats[image_key]["shape"])
        if shape[:2] != (c.image_size, c.image_size):
            raise ProcessorError(f"{where}: {image_key} is {shape}, the model config has image_size={c.image_size}")
        if source != "human":
            for key, dim, name in ((STATE, c.state_dim, "state_dim"), (ACTION, c.action_dim, "action_dim")):
                if key not in feats:
                    raise ProcessorError(f"{where}: source {source!r} needs feature {key!r} "
                                         "(only human video has none)")
                got = tuple(feats[key]["shape"])
                if got != (dim,):
                    raise ProcessorError(f"{where}: {key} has shape {got}, the model config has {name}={dim}")
        if c.has_generation_expert:
            if source not in self.latents:
                raise ProcessorError(f"no latent cache for source {source!r} (run `a1 tokenizer encode`)")
            cache = self.latents[source]
            n = len(cache)
            if n != len(ds):
                raise ProcessorError(f"latent cache of {source!r} has {n} frames, {where} has {len(ds)}; "
                                     "re-encode it (`a1 tokenizer encode`)")
            lat = tuple(lookup_latents(cache, [0]).shape[1:])
            want = (c.latent_channels, c.latent_size, c.latent_size)
            if lat != want:
                raise ProcessorError(f"latent cache of {source!r} has latents {lat}, the model config expects {want}")

    # ------------------------------------------------------------------------------------------
    # Text
    # ------------------------------------------------------------------------------------------
    def tokenize(self, text: str, append_eos: bool = False, where: str = "task") -> tuple[torch.Tensor, torch.Tensor]:
        """text -> (ids (L,) long, mask (L,) bool), L = max_text_len (truncated / padded). Cached: a
        dataset has a few hundred distinct instructions and answers, seen thousands of times."""
        key = (str(text), bool(append_eos))
        hit = self._token_cache.get(key)
        if hit is None:
            hit = self._token_cache[key] = self._tokenize(str(text), append_eos, where)
        return hit[0].clone(), hit[1].clone()

    def _tokenize(self, text: str, append_eos: bool, where: str) -> tuple[torch.Tensor, torch.Tensor]:
        L = self.config.max_text_len
        ids = list(self.text_tokenizer.encode(str(text), add_special_tokens=False))
        if append_eos and self.eos_id is not None:
            ids = ids[: L - 1] + [self.eos_id]
        ids = ids[:L]
        if not ids:
            raise ProcessorError(f"{where}: {text!r} has no tokens")
        out = torch.full((L,), self.pad_id, dtype=torch.long)
        out[: len(ids)] = torch.tensor(ids, dtype=torch.long)
        mask = torch.zeros(L, dtype=torch.bool)
        mask[: len(ids)] = True
        return out, mask

    # ------------------------------------------------------------------------------------------
    # Training samples
    # ------------------------------------------------------------------------------------------
    def process_sample(self, s: dict[str, Any]) -> dict[str, torch.Tensor]:
        """One WindowedDataset sample (with ``observation.image`` of frame t) -> unbatched tensors."""
        c = self.config
        source = str(s.get("source", "sim"))
        out: dict[str, torch.Tensor] = {"image": image_to_tensor(s[IMAGE], c.image_size,
                                                                 f"{source}[{int(s.get('index', -1))}] {IMAGE}")}
        out["lang_tokens"], out["lang_mask"] = self.tokenize(s["task"])
        has_action = bool(s.get("has_action", ACTION in s))
        if has_action:
            state = np.asarray(s[STATE], dtype=np.float32)
            action = np.asarray(s[ACTION], dtype=np.float32)
            if self.normalizer is not None:
                state = self.normalizer.normalize(STATE, state)
                action = self.normalizer.normalize(ACTION, action)
            out["state"] = torch.from_numpy(np.ascontiguousarray(state, dtype=np.float32))  # (S,)
            out["actions"] = torch.from_numpy(np.ascontiguousarray(action, dtype=np.float32))  # (H, A)
            out["action_is_pad"] = torch.as_tensor(np.asarray(s["action_is_pad"], dtype=bool))  # (H,)
        else:  # human video: no state, no action; everything padded so no action loss can leak
            out["state"] = torch.zeros(c.state_dim)
            out["actions"] = torch.zeros(c.chunk_size, c.action_dim)
            out["action_is_pad"] = torch.ones(c.chunk_size, dtype=torch.bool)
        if out["actions"].shape != (c.chunk_size, c.action_dim):
            raise ProcessorError(f"{source}: action chunk {tuple(out['actions'].shape)}, the model expects "
                                 f"({c.chunk_size}, {c.action_dim}); window horizon must equal chunk_size")
        out["has_action"] = torch.tensor(has_action)
        if c.has_generation_expert:
            if source not in self.latents:
                raise ProcessorError(f"no latent cache for source {source!r}")
            idx = [int(s["index_past"]), int(s["index"]), int(s["index_future"])]
            lat = lookup_latents(self.latents[source], idx)  # (3, C, h, w)
            out["latent_hist"] = lat[:2]
            out["latent_future"] = lat[2]
            out["has_future"] = torch.tensor(not bool(s.get("future_is_pad", False)))
        else:
            out["has_future"] = torch.tensor(False)
        self._add_qa(s, out, source)
        if c.grounding:
            scene = {k: np.asarray(v) for k, v in s.items() if k.startswith("scene.")}
            if "scene.kind" in scene:
                points, valid = grounding_targets(c.grounding, scene, s.get(STATE) if has_action else None)
            else:  # a dataset without a scene description: nothing to ground
                points = np.zeros((c.num_grounding, 1, 2), np.float32)
                valid = np.zeros((c.num_grounding, 1), bool)
            out["ground_points"], out["ground_valid"] = torch.from_numpy(points), torch.from_numpy(valid)
            out["has_grounding"] = torch.tensor(bool(valid.any()))
        out["source_id"] = torch.tensor(SOURCES.index(source) if source in SOURCES else -1)
        out["index"] = torch.tensor(int(s.get("index", -1)))
        return out

    def _add_qa(self, s: dict[str, Any], out: dict[str, torch.Tensor], source: str) -> None:
        L = self.config.max_text_len
        qa = None
        if self.qa_fn is not None and self.config.lambda_und > 0:
            # the same frame always gets the same question: a seed per (seed, source, frame). A QA pass
            # costs a second pass through the understanding expert, so only a share of frames gets one
            # (decided by a cheap hash of the same triple; the generator is made only when needed).
            key = (self.seed, SOURCES.index(source) if source in SOURCES else 9, int(s.get("index", 0)))
            if (key[0] * 1_000_003 + key[1] * 7_919 + key[2] * 2_654_435_761) % 9_973 < self.config.qa_fraction * 9_973:
                scene = {k: np.asarray(v) for k, v in s.items() if k.startswith("scene.")}
                qa = self.qa_fn(scene, np.random.default_rng(list(key))) if scene else None
        if qa is None:
            zeros = torch.zeros(L, dtype=torch.long)
            out["qa_question_tokens"], out["qa_answer_tokens"] = zeros, zeros.clone()
            out["qa_question_mask"] = torch.zeros(L, dtype=torch.bool)
            out["qa_answer_mask"] = torch.zeros(L, dtype=torch.bool)
            out["has_qa"] = torch.tensor(False)
            return
        q, a = qa
        out["qa_question_tokens"], out["qa_question_mask"] = self.tokenize(q, where="question")
        out["qa_answer_tokens"], out["qa_answer_mask"] = self.tokenize(a, append_eos=True, where="answer")
        out["has_qa"] = torch.tensor(True)

    @staticmethod
    def collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Stack per-sample tensors into a batch (every key gets a leading B)."""
        if not items:
            raise ProcessorError("collate: empty batch")
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return self.collate([self.process_sample(s) for s in samples])

    # ------------------------------------------------------------------------------------------
    # Inference
    # ------------------------------------------------------------------------------------------
    def observation_batch(self, obs: dict[str, Any]) -> dict[str, torch.Tensor]:
        """A policy observation (see a1lib.policy_protocol) -> a batch of one for sample_actions / imagine."""
        c = self.config
        for key in (IMAGE, STATE, "task"):
            if key not in obs:
                raise ProcessorError(f"observation: missing key {key!r}; has {sorted(obs)}")
        image = image_to_tensor(obs[IMAGE], c.image_size, IMAGE)
        state = np.asarray(obs[STATE], dtype=np.float32).reshape(-1)
        if state.shape != (c.state_dim,):
            raise ProcessorError(f"observation: {STATE} has shape {state.shape}, the model expects ({c.state_dim},)")
        if not np.isfinite(state).all():
            raise ProcessorError(f"observation: {STATE} contains NaN/inf: {state.tolist()}")
        if self.normalizer is not None:
            state = self.normalizer.normalize(STATE, state)
        tokens, mask = self.tokenize(obs["task"])
        batch = {"image": image[None], "state": torch.from_numpy(np.asarray(state, np.float32))[None],
                 "lang_tokens": tokens[None], "lang_mask": mask[None]}
        if c.has_generation_expert:
            if self.image_tokenizer is None:
                raise ProcessorError("the model has a generation expert: inference needs the image tokenizer")
            past = obs.get(IMAGE_PAST)
            past = image if past is None else image_to_tensor(past, c.image_size, IMAGE_PAST)
            lat = self.image_tokenizer.encode(torch.stack([past, image]))  # (2, C, h, w)
            want = (2, c.latent_channels, c.latent_size, c.latent_size)
            if tuple(lat.shape) != want:
                raise ProcessorError(f"image tokenizer gives latents {tuple(lat.shape)}, the model expects {want}")
            batch["latent_hist"] = lat.float()[None]
        return batch

    def unnormalize_actions(self, actions: torch.Tensor) -> np.ndarray:
        """Normalised (..., H, A) -> float32 numpy in real units."""
        a = actions.detach().float().cpu().numpy()
        if self.normalizer is not None:
            a = self.normalizer.unnormalize(ACTION, a)
        return np.asarray(a, dtype=np.float32)
