"""Atomic writes: the one place that writes a file or a directory so that a crash never leaves half of it.

Everything is first written to a temp sibling in the same directory (so the final ``os.replace`` is
a rename on one filesystem, which is atomic) and then renamed over the target:

* a file ``name`` is written as ``.name.tmp-<pid>`` (``.stem.tmp-<pid>.suffix`` with
  ``keep_suffix=True``, for writers that pick the format from the extension: images, GIFs);
* a directory ``name`` is built in ``.name.tmp-<pid>`` and swapped in (``atomic_directory``); the
  previous one is moved to ``.name.old-<pid>`` for the swap and then removed.

A temp file is removed if writing it fails; the target is then left as it was. ``fsync=True``
flushes the file to disk before the rename and the directory after it, for writers that must
survive a power cut, not just a killed process (the durable dataset writer, training checkpoints).

The bytes written are exactly what ``write_fn`` writes: no helper here adds or reformats anything
beyond what its docstring says. This module imports nothing from a1lib and no heavy library at
import time (torch / safetensors are imported by the two functions that need them), so every
layer, the dataset writer included, can use it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping


def temp_path(path: str | os.PathLike, keep_suffix: bool = False) -> Path:
    """The temp sibling ``path`` is written to before the rename (see the module docstring)."""
    path = Path(path)
    if keep_suffix:
        return path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def fsync_directory(directory: str | os.PathLike) -> None:
    """Make the renames inside ``directory`` durable (a no-op where a directory cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write_fn: Callable[[Path], Any], fsync: bool = False,
                 keep_suffix: bool = False) -> Path:
    """``write_fn(tmp)`` writes the temp file, which then replaces ``path``. Returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path, keep_suffix)
    try:
        write_fn(tmp)
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        fsync_directory(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str, fsync: bool = False) -> Path:
    """Write ``text`` as it is (``Path.write_text``: no newline added)."""
    return atomic_write(path, lambda p: p.write_text(text), fsync)


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2, sort_keys: bool = False,
                      fsync: bool = False) -> Path:
    """Write ``json.dumps(obj, indent=indent, sort_keys=sort_keys)`` plus a trailing newline."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=sort_keys) + "\n", fsync)


def atomic_save_safetensors(tensors: Mapping[str, Any], path: str | os.PathLike,
                            metadata: dict[str, str] | None = None) -> Path:
    """``safetensors.torch.save_file(tensors, path, metadata)``, atomically."""
    from safetensors.torch import save_file  # lazy: keeps torch out of `import a1lib.io` (the data writer uses it)

    return atomic_write(path, lambda p: save_file(dict(tensors), str(p), metadata=metadata))


def atomic_torch_save(obj: Any, path: str | os.PathLike, fsync: bool = False) -> Path:
    """``torch.save(obj, path)`` through an open file (the archive's inner folder is ``archive/``), atomically."""
    import torch  # lazy: keeps torch out of `import a1lib.io` (the data writer uses it)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            torch.save(obj, f)

    return atomic_write(path, write, fsync)


def swap_directory(new: str | os.PathLike, directory: str | os.PathLike, old: str | os.PathLike) -> Path:
    """Rename the finished directory ``new`` to ``directory``; an existing ``directory`` is first
    moved to ``old`` (a directory cannot be replaced by a rename unless empty), then removed.

    Between the two renames only ``old`` and ``new`` exist: a reader that finds ``directory``
    missing can say how to recover. If the second rename fails, ``old`` is put back.
    """
    new, directory, old = Path(new), Path(directory), Path(old)
    if directory.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(directory, old)
    try:
        os.replace(new, directory)
    except BaseException:
        if old.exists() and not directory.exists():
            os.replace(old, directory)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return directory


@contextlib.contextmanager
def atomic_directory(directory: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temp directory next to ``directory``; on success it replaces ``directory``.

    On error the temp directory is removed and an existing ``directory`` is left untouched.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(directory)
    shutil.rmtree(tmp, ignore_errors=True)  # left by a killed run of the same pid: never complete
    tmp.mkdir()
    try:
        yield tmp
        swap_directory(tmp, directory, directory.parent / f".{directory.name}.old-{os.getpid()}")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
