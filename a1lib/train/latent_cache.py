"""The latent cache: every dataset frame encoded ONCE by the frozen image tokenizer.

The generation expert's inputs (frames t-delta and t) and target (frame t+delta) are image
latents. The tokenizer is frozen, so encoding a frame always gives the same latent: we do it once
per dataset instead of three times per training sample per epoch.

Layout, one pair of files per source dataset (``sim``, ``lab``, ``human``)::

    artifacts/latents/<source>.safetensors   {"latents": float32 (N_frames, C, h, w)}
    artifacts/latents/<source>.json          tokenizer fingerprint + config, dataset path,
                                             dataset fingerprint, frame count, latent shape

Row ``i`` is the latent of the frame whose global LeRobot ``index`` is ``i`` (the dataset's
frames are stored in index order, so that is also its position). The JSON lets a reader detect a
stale cache (tokenizer retrained, dataset regenerated) and fail with a clear error instead of
silently training on latents of other images. Both files are written atomically.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from tqdm.auto import tqdm

from a1lib.constants import IMAGE
from a1lib.io import atomic_save_safetensors, atomic_write_json
from a1lib.models.image_tokenizer import META_FILE, ImageTokenizer
from a1lib.progress import ProgressLines

TENSOR_NAME = "latents"


class StaleCacheError(RuntimeError):
    """The cache on disk was made with another tokenizer or from another version of the dataset."""


def dataset_fingerprint(ds: Any, probes: int = 8) -> str:
    """A cheap identity for a dataset: frame count, episode bounds and the pixels of a few frames."""
    h = hashlib.sha256()
    n = len(ds)
    h.update(str(n).encode())
    for ep in getattr(ds, "episodes", []) or []:
        h.update(f"{ep.get('dataset_from_index')}:{ep.get('dataset_to_index')};".encode())
    if n:
        idx = np.unique(np.linspace(0, n - 1, min(probes, n)).round().astype(np.int64))
        h.update(np.ascontiguousarray(ds.get_frames(IMAGE, idx)).tobytes())
    return h.hexdigest()[:16]


def sidecar_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def encode_dataset(
    ds: Any,
    tokenizer: ImageTokenizer,
    out_path: str | Path,
    dataset_root: str | Path | None = None,
    batch_size: int = 256,
    progress: bool = True,
) -> Path:
    """Encode every frame of ``ds`` into ``out_path`` (.safetensors) + its JSON sidecar.

    ``progress``: a tqdm bar; False: plain progress lines (``a1lib.progress``) for logs."""
    out_path = Path(out_path)
    n = len(ds)
    c, h, w = tokenizer.latent_shape()
    latents = torch.empty((n, c, h, w), dtype=torch.float32)  # (N_frames, C, h, w)
    lines = ProgressLines(f"encode {out_path.stem}", n, unit="frame", enabled=not progress)
    for start in tqdm(range(0, n, batch_size), desc=f"encode {out_path.stem}", unit="batch", disable=not progress):
        idx = np.arange(start, min(start + batch_size, n))
        frames = ds.get_frames(IMAGE, idx)  # uint8 (B, H, W, 3)
        z = tokenizer.encode(frames)  # (B, C, h', w')
        if z.shape[1:] != latents.shape[1:]:
            raise ValueError(
                f"{dataset_root or 'dataset'}: frames of size {frames.shape[1:3]} give latents "
                f"{tuple(z.shape[1:])}, but the tokenizer was trained for {tuple(latents.shape[1:])}"
            )
        latents[start : start + len(idx)] = z
        lines.update(len(idx))
    meta = {
        "tokenizer_fingerprint": tokenizer.fingerprint(),
        "tokenizer_config": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(tokenizer.config).items()},
        "scaling_factor": tokenizer.scaling_factor,
        "shift_factor": tokenizer.shift_factor,
        "dataset_path": str(dataset_root) if dataset_root is not None else None,
        "dataset_fingerprint": dataset_fingerprint(ds),
        "num_frames": n,
        "latent_shape": [c, h, w],
    }
    atomic_save_safetensors({TENSOR_NAME: latents.contiguous()}, out_path, metadata={"a1lib": json.dumps(meta)})
    atomic_write_json(sidecar_path(out_path), meta)
    return out_path


class LatentCache:
    """Read side: ``cache[indices] -> float32 (len(indices), C, h, w)``, rows = global frame index.

    Pass ``tokenizer`` (an ImageTokenizer or its fingerprint string) and/or ``num_frames`` /
    ``dataset_fingerprint`` to check the cache is not stale; a mismatch raises StaleCacheError.
    """

    def __init__(
        self,
        path: str | Path,
        tokenizer: ImageTokenizer | str | None = None,
        num_frames: int | None = None,
        dataset_fingerprint: str | None = None,
    ):
        self.path = Path(path)
        meta_path = sidecar_path(self.path)
        for p in (self.path, meta_path):
            if not p.exists():
                raise FileNotFoundError(f"{p}: latent cache file not found (run `a1 tokenizer encode`)")
        try:
            self.meta: dict[str, Any] = json.loads(meta_path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{meta_path}: not valid JSON: {e}") from e
        with safe_open(str(self.path), framework="pt") as f:
            if TENSOR_NAME not in f.keys():
                raise ValueError(f"{self.path}: no tensor named {TENSOR_NAME!r}; has {list(f.keys())}")
            file_meta = json.loads((f.metadata() or {}).get("a1lib", "{}"))
        if file_meta.get("tokenizer_fingerprint") != self.meta.get("tokenizer_fingerprint") or file_meta.get(
            "dataset_fingerprint"
        ) != self.meta.get("dataset_fingerprint"):
            raise StaleCacheError(f"{self.path}: does not match its sidecar {meta_path.name} (half-written cache?)")
        expected_tok = tokenizer.fingerprint() if isinstance(tokenizer, ImageTokenizer) else tokenizer
        if expected_tok is not None and expected_tok != self.meta["tokenizer_fingerprint"]:
            raise StaleCacheError(
                f"{self.path}: made with image tokenizer {self.meta['tokenizer_fingerprint']}, but the current "
                f"tokenizer is {expected_tok}; re-run `a1 tokenizer encode`"
            )
        if num_frames is not None and num_frames != self.meta["num_frames"]:
            raise StaleCacheError(
                f"{self.path}: holds {self.meta['num_frames']} frames but the dataset has {num_frames}; "
                f"the dataset changed, re-run `a1 tokenizer encode`"
            )
        if dataset_fingerprint is not None and dataset_fingerprint != self.meta["dataset_fingerprint"]:
            raise StaleCacheError(
                f"{self.path}: made from another version of {self.meta.get('dataset_path')} "
                f"(fingerprint {self.meta['dataset_fingerprint']} != {dataset_fingerprint}); "
                "re-run `a1 tokenizer encode`"
            )
        self._latents: torch.Tensor | None = None  # loaded on first use

    @classmethod
    def for_dataset(cls, path: str | Path, tokenizer: ImageTokenizer | str | None, ds: Any) -> "LatentCache":
        """Open ``path`` and check it against the dataset ``ds`` (frame count and fingerprint)."""
        return cls(path, tokenizer, num_frames=len(ds), dataset_fingerprint=dataset_fingerprint(ds))

    @property
    def latents(self) -> torch.Tensor:
        if self._latents is None:
            with safe_open(str(self.path), framework="pt") as f:
                self._latents = f.get_tensor(TENSOR_NAME)  # (N_frames, C, h, w)
        return self._latents

    def __len__(self) -> int:
        return int(self.meta["num_frames"])

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return tuple(self.meta["latent_shape"])

    def __getitem__(self, indices: Any) -> torch.Tensor:
        if isinstance(indices, slice):
            return self.latents[indices]
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        if idx.numel() and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"{self.path}: frame index out of range [0, {len(self)}): {idx.min()}..{idx.max()}")
        return self.latents[idx]


def resolve_image_tokenizer_dir(path: str | Path) -> Path:
    """Accept either artifacts/tokenizer (with image/ inside) or the image/ directory itself."""
    path = Path(path)
    if (path / "image" / META_FILE).exists():
        return path / "image"
    return path
