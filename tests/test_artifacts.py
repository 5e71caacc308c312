"""Atomic writes: nothing half-written, and the permissions a plain open() would give."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from ofa_nni._artifacts import atomic_write, atomic_write_json
from ofa_nni.training.checkpoint import atomic_torch_save


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_atomic_files_get_the_umask_permissions_not_owner_only(tmp_path, umask):
    previous = os.umask(umask)
    try:
        atomic_write_json(tmp_path / "table.json", {"a": 1})
        atomic_torch_save({"w": torch.zeros(2)}, tmp_path / "supernet.pt")
        open(tmp_path / "plain.txt", "w").close()
    finally:
        os.umask(previous)
    expected = _mode(tmp_path / "plain.txt")
    assert expected == 0o666 & ~umask
    assert _mode(tmp_path / "table.json") == expected
    assert _mode(tmp_path / "supernet.pt") == expected


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "results.json"
    atomic_write_json(target, {"version": 1})

    def fail_halfway(stream):
        stream.write(b'{"version": 2, "trunc')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, fail_halfway)
    assert target.read_text().strip().replace(" ", "").replace("\n", "") == '{"version":1}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]
