"""Infrastructure every layer shares: where things live, durable writes, canonical JSON, devices, memory.

This module imports nothing from ``dvae_core``, so the metrics, the claims, the run store and the
training loop can all use it without importing one another:

- paths: :data:`REPO_ROOT`, :data:`RESULTS_DIR`, :data:`GENERATED_DIR` and :func:`default_store` (the run store, ``$DVAE_RUNS`` or ``<repo>/runs``);
- atomic writes (:func:`atomic_write_text`, :func:`atomic_torch_save`): a temp file beside the target,
  flushed and ``fsync``-ed, then renamed over it, so a kill or a power loss leaves the old file or the new
  one, never a half-written or empty one;
- :func:`canonical_json`: the sorted JSON that run hashes and checkpoint checks compare;
- :func:`resolve_device`: ``"auto"`` / ``"cpu"`` / ``"cuda[:N]"`` with a clear error;
- :func:`keep_freed_memory`: glibc's allocator setting that makes CPU training steps reuse their buffers;
- :func:`die_with_parent`: a worker process that cannot outlive the process that started it;
- :func:`show_progress`: whether tqdm bars are on (``DVAE_PROGRESS``);
- :func:`short_cause`: a library's error as a short cause for a one-line message, without advice to load a
  file unsafely; :func:`load_torch_file` reads a file this package wrote with it.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import json
import os
import re
import shutil
import signal
import warnings
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "results"            # claims, timings and measurements, by profile
GENERATED_DIR = REPO_ROOT / "book" / "_generated"  # book fragments that code writes (never edited by hand)
RUNS_ENV = "DVAE_RUNS"
PROGRESS_ENV = "DVAE_PROGRESS"

def default_store() -> Path:
    """The run store: ``$DVAE_RUNS``, else ``<repo>/runs``."""
    return Path(os.environ.get(RUNS_ENV, REPO_ROOT / "runs"))


def canonical_json(config_dict: dict[str, Any]) -> str:
    """Sorted JSON, tuples as lists: two equal recipes give the same text, and so the same run hash."""
    return json.dumps(config_dict, sort_keys=True, default=list)


def _replace_durably(tmp: Path, path: Path) -> None:
    """Rename the fsync-ed ``tmp`` over ``path`` and fsync the folder, so the rename itself survives."""
    os.replace(tmp, path)
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # a folder that cannot be opened (some filesystems): the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


#: Free space under which a failed write is reported as a full disk (torch.save then fails with an
#: unhelpful "unexpected pos" RuntimeError instead of ENOSPC).
LOW_DISK_BYTES = 64 << 20


def _atomic_write(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        _replace_durably(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)  # a full disk or a kill leaves no partial file behind
        if isinstance(err, (OSError, RuntimeError)) and _disk_full(err, path.parent):
            raise OSError(errno.ENOSPC, f"no space left on the device while writing {path} (the partial file was "
                                        f"removed): free some disk space and run the same command again") from err
        raise


def _disk_full(err: BaseException, folder: Path) -> bool:
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    try:
        return shutil.disk_usage(folder).free < LOW_DISK_BYTES
    except OSError:
        return False


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically and durably (temp file, fsync, rename)."""
    _atomic_write(path, lambda handle: handle.write(text.encode()))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably (temp file, fsync, rename)."""
    _atomic_write(path, lambda handle: handle.write(data))


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` atomically and durably (temp file, fsync, rename)."""
    _atomic_write(path, lambda handle: torch.save(obj, handle))


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"``: CUDA when torch sees a GPU, else the CPU; otherwise the named device, checked."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu' or 'cuda[:N]'") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA GPU: use device='auto' or 'cpu'")
    return resolved


#: glibc's ``mallopt`` parameters (``<malloc.h>``), and the values :func:`keep_freed_memory` sets.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES, TRIM_THRESHOLD_BYTES = 32 << 20, 128 << 20


@functools.cache
def keep_freed_memory() -> bool:
    """Stop glibc from returning each training step's freed activations to the operating system.

    By default glibc serves a large allocation (over a threshold that starts at 128 KiB) with its own
    ``mmap`` and unmaps it when freed, and trims free memory off the top of its heap, so every CPU
    training step maps its activation buffers afresh and the kernel zero-fills them page by page. With
    allocations under 32 MiB served from the heap, and up to 128 MiB of free heap kept, the buffers are
    reused from step to step. On one thread the book's models trained ×1.0 (VLAE) to ×1.6 (FactorVAE)
    faster, with bit-identical weights: only where memory comes from changes, not what is computed.

    Process-wide and once per process (the sweep's workers and the training loop call it); True if glibc
    took both settings, False where there is no glibc (macOS, musl), where nothing changes.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
            libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    except (OSError, AttributeError):
        return False


#: ``prctl`` option of ``<linux/prctl.h>``: the signal a process gets when its parent dies.
PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> bool:
    """Have Linux SIGKILL this process when its parent dies, and exit now if ``parent`` (the pid that started
    it) is already gone. Sweep workers call it: without it, a ``kill -9`` of a ``--jobs N`` parent left its
    workers training (and holding the parent's stdout and stderr, so a caller reading those hung). True if
    the kernel took the setting; False where there is no ``prctl`` (not Linux), where nothing changes."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        armed = libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent:  # the parent died before the setting took effect
        os._exit(1)
    return armed


def show_progress(progress: bool | None) -> bool:
    """Progress bars are on unless asked off, here or by ``DVAE_PROGRESS=0`` (the reproduce batch sets it
    so bars stay out of committed notebook outputs)."""
    return os.environ.get(PROGRESS_ENV, "1") != "0" if progress is None else progress


#: Words of a library's advice to load a file unsafely (torch's ``weights_only=False``, numpy's ``allow_pickle``):
#: a foreign file loaded that way runs whatever code it holds, so no message of ours may pass that advice on.
UNSAFE_ADVICE = ("weights_only", "allow_pickle", "pickle.load", "safe_globals")


def short_cause(err: BaseException, limit: int = 120) -> str:
    """``err`` as the short cause inside a one-line message: its type and the first sentence of its text (torch's
    unpickler errors: the sentence after ``WeightsUnpickler error:``), at most ``limit`` characters, and only
    the type where that sentence carries advice to load the file unsafely."""
    text = str(err).split("WeightsUnpickler error:", 1)[-1]
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    sentence = re.split(r"(?<=[.!?])\s", " ".join(line.split()), maxsplit=1)[0].rstrip(".")
    name = type(err).__name__
    if name == "error":  # struct.error, zlib.error: the module says what failed
        name = f"{type(err).__module__}.error"
    if not sentence or any(word in sentence for word in UNSAFE_ADVICE):
        return name
    if len(sentence) > limit:
        sentence = sentence[: limit - 1].rstrip() + "…"
    return f"{name}: {sentence}"


def load_torch_file(path: Path, fix: str, what: str = "checkpoint") -> Any:
    """``torch.load`` of a file this package wrote (a checkpoint, a snapshot, a cache), with ``weights_only=True``
    so a foreign pickle runs no code. A file torch cannot read fails with one RuntimeError, ``cannot read <what>
    <path> (<cause>); it is truncated or not a dvae <what>: <fix>``, never with torch's advice to load it with
    ``weights_only=False``; torch's warnings about the bytes of a file it then refuses go with it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises several types for truncated or foreign files
            raise RuntimeError(f"cannot read {what} {path} ({short_cause(err)}); it is truncated or not a dvae "
                               f"{what}: {fix}") from None
    for warning in caught:  # a file that loaded: its warnings are the caller's
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return loaded
