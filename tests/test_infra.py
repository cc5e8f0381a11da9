"""Durable writes: fsync before the rename, nothing partial left behind, a full disk named as such."""

from __future__ import annotations

import errno
import os
from collections import namedtuple

import pytest
import torch

from dvae_core import infra

Usage = namedtuple("Usage", "total used free")


def test_atomic_writes_fsync_the_file_and_its_folder_before_and_after_the_rename(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(infra.os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")),
                                                       real_fsync(fd)))
    infra.atomic_write_text(tmp_path / "a.json", "{}")
    infra.atomic_torch_save({"x": torch.ones(2)}, tmp_path / "b.pt")
    assert synced == [str(tmp_path / "a.json.tmp"), str(tmp_path), str(tmp_path / "b.pt.tmp"), str(tmp_path)]
    assert (tmp_path / "a.json").read_text() == "{}"
    assert torch.equal(torch.load(tmp_path / "b.pt", weights_only=True)["x"], torch.ones(2))


def test_a_full_disk_leaves_the_old_file_and_no_partial_one_and_says_so(tmp_path, monkeypatch):
    target = tmp_path / "checkpoint.pt"
    infra.atomic_torch_save({"step": 1}, target)

    def torch_save_on_a_full_disk(obj, handle):
        handle.write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 123 vs 456")

    monkeypatch.setattr(infra.torch, "save", torch_save_on_a_full_disk)
    monkeypatch.setattr(infra.shutil, "disk_usage", lambda path: Usage(100, 100, 0))
    with pytest.raises(OSError, match=f"no space left on the device while writing {target}.*free some disk space") as info:
        infra.atomic_torch_save({"step": 2}, target)
    assert info.value.errno == errno.ENOSPC
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]
    monkeypatch.undo()
    assert torch.load(target, weights_only=True) == {"step": 1}


def test_other_write_errors_pass_through_unchanged(tmp_path, monkeypatch):
    monkeypatch.setattr(infra.shutil, "disk_usage", lambda path: Usage(100, 0, 100 << 30))
    with pytest.raises(AttributeError):  # not a string: a caller's bug, reported as such
        infra.atomic_write_text(tmp_path / "a.json", None)
    assert list(tmp_path.iterdir()) == []
