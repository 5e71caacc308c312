"""Atomic writes: nothing half-written, the permissions a plain open() would give (or the replaced file's),
nothing but regular files replaced, one clear error for an unwritable path; locks on outputs."""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import fill_filesystem, special_output_paths

from ofa_nni._artifacts import atomic_write, atomic_write_json, exclusive_lock
from ofa_nni.errors import OutputError, OutputInUseError
from ofa_nni.training.checkpoint import atomic_torch_save

REPO = Path(__file__).resolve().parents[1]


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


# ----------------------------------------------------------------- what may be replaced
def test_a_replaced_file_keeps_its_permissions(tmp_path):
    target = tmp_path / "shared.json"
    target.write_text("{}")
    os.chmod(target, 0o640)
    atomic_write_json(target, {"a": 1})
    assert _mode(target) == 0o640 and json.loads(target.read_text()) == {"a": 1}


def test_special_targets_are_refused_never_replaced(tmp_path):
    cases = special_output_paths(tmp_path)
    for path, message in cases.items():
        with pytest.raises(OutputError, match=re.escape(message)):
            atomic_write_json(path, {"a": 1})
    link, fifo, _, folder = cases
    elsewhere = tmp_path / "elsewhere.json"
    assert link.is_symlink() and elsewhere.read_text() == "keep"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and folder.is_dir()
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (elsewhere, link, fifo, folder))


def test_full_and_read_only_file_systems_give_one_error_and_leave_nothing(small_filesystem):
    folder, remount = small_filesystem
    (folder / "old.pt").write_bytes(b"old")
    fill_filesystem(folder)
    big = {"w": torch.zeros(100_000)}  # 400 KB: more than the file system holds
    with pytest.raises(OutputError, match=r"cannot write '.*new\.pt': No space left on device \(free some space"):
        atomic_torch_save(big, folder / "new.pt")
    with pytest.raises(OutputError, match="No space left on device"):
        atomic_torch_save(big, folder / "old.pt")
    assert sorted(p.name for p in folder.iterdir()) == [".filler", "old.pt"]
    assert (folder / "old.pt").read_bytes() == b"old"
    (folder / ".filler").unlink()
    remount("ro")
    with pytest.raises(OutputError, match=r"cannot write '.*new\.json': Read-only file system") as raised:
        atomic_write_json(folder / "new.json", {"a": 1})
    assert raised.value.errno == errno.EROFS
    assert sorted(p.name for p in folder.iterdir()) == ["old.pt"]


# ----------------------------------------------------------------------------- locks
_HOLD_LOCK = """
import sys, time
from ofa_nni._artifacts import exclusive_lock
with exclusive_lock(sys.argv[1], "run directory"):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_a_second_process_is_refused_at_once_naming_the_holder(tmp_path):
    run_dir = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(run_dir)], stdout=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        with pytest.raises(OutputInUseError, match=rf"run directory '.*run' is in use by another ofa-nni process "
                                                   rf"\(PID {holder.pid}; lock file"):
            with exclusive_lock(run_dir, "run directory"):
                pass
    finally:
        holder.kill()
        holder.wait()
    # The kernel dropped the dead holder's lock: the path is free again, and the lock file goes on release.
    with exclusive_lock(run_dir, "run directory"):
        assert (tmp_path / ".run.lock").read_text() == f"{os.getpid()}\n"
    assert not (tmp_path / ".run.lock").exists()


def test_an_artefact_of_another_space_family_is_named_by_family():
    """An OFA-ResNet table given to an OFA-MobileNetV3 search listed ~700 characters of constructor
    fields; a file of another family now says which family it is for, and which this one is."""
    from ofa_nni._artifacts import require_same_space
    from ofa_nni.arch import ArchSpace, proxyless_arch_space
    from ofa_nni.resnet_arch import ResNetArchSpace

    mobilenet, proxyless, resnet = ArchSpace(), proxyless_arch_space(), ResNetArchSpace()
    for stored, space, found, wanted in ((resnet, mobilenet, "OFA-ResNet50", "OFA-MobileNetV3"),
                                         (mobilenet, resnet, "OFA-MobileNetV3", "OFA-ResNet50"),
                                         (proxyless, mobilenet, "OFA-ProxylessNAS", "OFA-MobileNetV3")):
        with pytest.raises(ValueError) as error:
            require_same_space(stored.signature(), space, artefact="latency table t.json")
        assert str(error.value) == (f"latency table t.json was built for another search space: an {found} space, "
                                    f"not this {wanted} one")
    # The same family with other choices: the fields that differ.
    with pytest.raises(ValueError, match=r"t\.json was built for another search space \(num_classes: file has 10, "
                                         r"space has 1000\)$"):
        require_same_space(ArchSpace(num_classes=10).signature(), mobilenet, artefact="t.json")
    require_same_space(mobilenet.signature(), ArchSpace(), artefact="t.json")  # the same space passes


def test_a_search_over_fewer_resolutions_is_of_the_same_supernet():
    """``export`` refused a search of the released tutorial predictor (resolutions 160-224) on the
    supernet it came from (128-224): 'built for another search space'. Its subnets are the supernet's."""
    import pytest

    from ofa_nni._artifacts import require_same_space
    from ofa_nni.arch import ArchSpace
    from ofa_nni.errors import InvalidInputError

    supernet = ArchSpace(width_mult=1.2)
    searched = ArchSpace(width_mult=1.2, resolutions=(160, 176, 192, 208, 224)).signature()
    require_same_space(searched, supernet, artefact="search.json", allow_fewer_resolutions=True)
    with pytest.raises(InvalidInputError, match=r"resolutions: file has \[160, 176"):
        require_same_space(searched, supernet, artefact="search.json")
    wider = ArchSpace(width_mult=1.2, resolutions=(128, 240)).signature()
    with pytest.raises(InvalidInputError, match="resolutions: file has"):
        require_same_space(wider, supernet, artefact="search.json", allow_fewer_resolutions=True)
    with pytest.raises(InvalidInputError, match="width_mult: file has 1.0"):
        require_same_space(ArchSpace(resolutions=(160,)).signature(), supernet, artefact="search.json",
                           allow_fewer_resolutions=True)
