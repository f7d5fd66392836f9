"""tinlib.io: atomic writes keep the previous file whole and leave no temporary file behind,
whatever goes wrong mid-write, including a full disk or a file-size limit."""
import errno
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from tinlib.errors import UserError
from tinlib.io import (
    DiskFullError,
    atomic_torch_save,
    atomic_write,
    atomic_write_json,
    atomic_write_text,
    check_output_dir,
    check_output_file,
)


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_atomic_write_json_roundtrip(tmp_path):
    path = atomic_write_json(tmp_path / "sub" / "m.json", {"top1": 0.5})
    assert json.loads(path.read_text()) == {"top1": 0.5}


def test_text_is_written_as_utf8(tmp_path):
    path = atomic_write_text(tmp_path / "zoo.md", "– / 8x4 ²\n")
    assert path.read_bytes() == "– / 8x4 ²\n".encode()


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "m.json"
    atomic_write_json(target, {"v": 1})

    def boom(handle):
        handle.write(b"partial")
        raise RuntimeError("the writer failed")

    with pytest.raises(RuntimeError, match="the writer failed"):
        atomic_write(target, boom)
    assert json.loads(target.read_text()) == {"v": 1}
    assert _names(tmp_path) == ["m.json"]


def test_interrupt_mid_write_keeps_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "m.json"
    atomic_write_json(target, {"v": 1})

    def interrupted(handle):
        handle.write(b"{\"v\": ")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, interrupted)
    assert json.loads(target.read_text()) == {"v": 1}
    assert _names(tmp_path) == ["m.json"]


def _write_that_hits_a_full_disk(handle):
    """A writer whose second write finds the disk full, as the file system reports it."""
    handle.write(b"x" * 1000)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_is_one_line_naming_the_file_and_keeps_the_old_one(tmp_path):
    target = tmp_path / "latest.pth"
    atomic_write(target, lambda f: f.write(b"previous checkpoint"))
    with pytest.raises(DiskFullError) as info:
        atomic_write(target, _write_that_hits_a_full_disk)
    message = str(info.value)
    assert isinstance(info.value, UserError)
    assert "\n" not in message and str(target) in message and "disk is full" in message
    assert "previous latest.pth is unchanged" in message
    assert target.read_bytes() == b"previous checkpoint"
    assert _names(tmp_path) == ["latest.pth"]


def test_full_disk_without_a_previous_file_says_none_was_written(tmp_path):
    with pytest.raises(DiskFullError, match="no metrics.json was written"):
        atomic_write(tmp_path / "metrics.json", _write_that_hits_a_full_disk)
    assert _names(tmp_path) == []


def test_full_disk_inside_torch_save_is_recognised(tmp_path, monkeypatch):
    """torch.save reports a failed write of its zip writer without the errno; the error is still
    recognised as a full disk because the writer's own write raised ENOSPC."""
    target = tmp_path / "latest.pth"
    atomic_torch_save(target, {"w": torch.zeros(3)})
    real_fdopen = os.fdopen

    class FillsUp:
        def __init__(self, handle, room):
            self.handle, self.room = handle, room

        def write(self, data):
            if len(data) > self.room:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.room -= len(data)
            return self.handle.write(data)

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.handle.__exit__(*exc)

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: FillsUp(real_fdopen(fd, mode), room=2000))
    with pytest.raises(DiskFullError, match="disk is full"):
        atomic_torch_save(target, {"w": torch.randn(10_000)})
    monkeypatch.undo()
    assert torch.equal(torch.load(target, weights_only=True)["w"], torch.zeros(3))
    assert _names(tmp_path) == ["latest.pth"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX resource limits")
def test_file_size_limit_in_a_real_process(tmp_path):
    """A process under a 64 KiB file-size limit (RLIMIT_FSIZE; the kernel refuses larger writes
    with EFBIG) saves a 1 MB checkpoint over a small one: one clear error, the small one intact."""
    target = tmp_path / "latest.pth"
    torch.save({"w": torch.zeros(10)}, target)
    script = textwrap.dedent(f"""
        import resource, sys, torch
        from tinlib.io import DiskFullError, atomic_torch_save
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
        try:
            atomic_torch_save({str(target)!r}, {{"w": torch.randn(250_000)}})
        except DiskFullError as err:
            print(err)
            sys.exit(3)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 3, proc.stderr
    message = proc.stdout.strip()
    assert "\n" not in message and str(target) in message and "file-size limit" in message
    assert torch.equal(torch.load(target, weights_only=True)["w"], torch.zeros(10))
    assert _names(tmp_path) == ["latest.pth"]


def test_folder_is_synced_after_the_rename(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.path.isdir(f"/proc/self/fd/{fd}") if sys.platform.startswith("linux") else None)
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    atomic_write_json(tmp_path / "m.json", {"v": 1})
    assert len(synced) == (2 if os.name == "posix" else 1)  # the file, then (POSIX) its folder
    if sys.platform.startswith("linux"):
        assert synced == [False, True]


@pytest.mark.skipif(os.name != "posix", reason="kill -9")
def test_kill_9_mid_write_keeps_the_previous_file_and_the_next_write_clears_the_leftover(tmp_path):
    """A process killed while it saves a checkpoint leaves the previous one loadable; its
    temporary file (it could not remove it) is removed by the next save of the same file."""
    import signal
    import time

    target = tmp_path / "latest.pth"
    atomic_torch_save(target, {"epoch": 1, "w": torch.zeros(4)})
    script = textwrap.dedent(f"""
        import torch
        from tinlib.io import atomic_torch_save
        big = torch.randn(8_000_000)  # 32 MB per save
        while True:
            atomic_torch_save({str(target)!r}, {{"epoch": 2, "w": big}})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 120
        while not any(p.name.endswith(".tmp") and p.stat().st_size > 0 for p in tmp_path.glob(".latest.pth.*")):
            assert proc.poll() is None and time.monotonic() < deadline, "the writer never started a save"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    loaded = torch.load(target, weights_only=True)  # the file is whole: epoch 1, or a completed epoch 2
    assert loaded["epoch"] in (1, 2) and loaded["w"].numel() in (4, 8_000_000)
    # (the killed process could not remove its temporary file, unless the kill fell between two saves)
    atomic_torch_save(target, {"epoch": 3, "w": torch.zeros(4)})
    assert _names(tmp_path) == ["latest.pth"]
    assert torch.load(target, weights_only=True)["epoch"] == 3


@pytest.mark.skipif(os.name != "posix", reason="process ids")
def test_only_temp_files_of_dead_processes_of_this_host_are_removed(tmp_path):
    from tinlib.io import _temp_prefix

    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)
    dead_pid, live_pid = int(finished.stdout), os.getppid()
    prefix = _temp_prefix(tmp_path / "m.json")
    dead = tmp_path / f"{prefix}{dead_pid}.abc.tmp"
    live = tmp_path / f"{prefix}{live_pid}.abc.tmp"
    other_host = tmp_path / f".m.json.elsewhere-{dead_pid}.{dead_pid}.abc.tmp"
    for leftover in (dead, live, other_host):
        leftover.write_bytes(b"half")
    atomic_write_json(tmp_path / "m.json", {"v": 1})
    assert not dead.exists() and live.exists() and other_host.exists()


# --------------------------------------------------------------------------------------------
# File modes: what the umask gives, as for open() and torch.save
# --------------------------------------------------------------------------------------------
MODES_SCRIPT = textwrap.dedent("""
    import json, os, stat, sys
    from pathlib import Path
    import nbformat, torch
    from tinlib.checkpoint import save_checkpoint
    from tinlib.io import atomic_write_json
    from tinlib.report.html import build_run_report

    out = Path(sys.argv[1])
    out.mkdir()
    with open(out / "plain.txt", "w") as handle:  # what a plain open() gives under this umask
        handle.write("x")
    torch.save({}, out / "torch_save.pth")
    save_checkpoint(out / "latest.pth", torch.nn.Linear(2, 2))
    atomic_write_json(out / "metrics.json", {"top1_acc": 50.0})
    notebooks = out / "notebooks"
    notebooks.mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("hi")]), notebooks / "a.ipynb")
    build_run_report(notebooks, out / "report.html", title="modes")
    print(json.dumps({p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir() if p.is_file()}))
""")


def test_atomically_written_files_get_the_mode_the_umask_gives(tmp_path):
    """Under umask 022 and 077 (each in its own process, both at once): a checkpoint, metrics.json
    and an HTML report get the mode of a file written with open() (0666 & ~umask: 0644, 0600)."""
    procs = {mask: subprocess.Popen([sys.executable, "-c", MODES_SCRIPT, str(tmp_path / f"umask{mask:03o}")],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    preexec_fn=lambda mask=mask: os.umask(mask))
             for mask in (0o022, 0o077)}
    for mask, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        modes = json.loads(out)
        assert modes["plain.txt"] == 0o666 & ~mask == {0o022: 0o644, 0o077: 0o600}[mask]
        assert modes["torch_save.pth"] == modes["plain.txt"]
        for name in ("latest.pth", "metrics.json", "report.html"):
            assert modes[name] == modes["plain.txt"], (oct(mask), name, oct(modes[name]))


# --------------------------------------------------------------------------------------------
# Output places checked before the work
# --------------------------------------------------------------------------------------------
def test_output_folder_checks_create_nothing(tmp_path):
    target = tmp_path / "a" / "b"
    assert check_output_dir(target, "--out") == target
    assert check_output_file(tmp_path / "c" / "x.onnx", "OUT") == tmp_path / "c" / "x.onnx"
    check_output_dir(tmp_path, "--out")
    assert _names(tmp_path) == []  # no folder created, no probe file left


def test_output_folder_that_is_a_file_or_below_one_is_refused(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(UserError, match=rf"^--results-dir {afile} is a file, not a folder"):
        check_output_dir(afile, "--results-dir")
    with pytest.raises(UserError, match=rf"^work dir {afile}/a/b cannot be created: {afile} is a file, not a folder"):
        check_output_dir(afile / "a" / "b", "work dir")
    with pytest.raises(UserError, match=rf"^OUT {tmp_path} is a folder, not a file"):
        check_output_file(tmp_path, "OUT")
    with pytest.raises(UserError, match=rf"^OUT {afile}/x.onnx cannot be created: {afile} is a file"):
        check_output_file(afile / "x.onnx", "OUT")
    assert afile.read_text() == "x"


def _unwritable_folder(tmp_path):
    """A folder whose writes really fail: without write permission (not root), or sysfs (root)."""
    if os.geteuid() != 0:
        folder = tmp_path / "read_only"
        folder.mkdir()
        folder.chmod(0o500)
        return folder
    for candidate in ("/sys/kernel", "/sys"):
        try:
            check_output_dir(candidate, "probe")
        except UserError:
            return candidate
    pytest.skip("running as root and no folder here refuses writes")


def test_unwritable_output_folder_is_refused_by_a_real_write(tmp_path):
    folder = _unwritable_folder(tmp_path)
    with pytest.raises(UserError, match=rf"^--out {folder} cannot be written \(.+\); give a place you can write"):
        check_output_dir(folder, "--out")
    with pytest.raises(UserError, match=rf"^--out {folder}/new/sub cannot be created: {folder} is not writable"):
        check_output_dir(f"{folder}/new/sub", "--out")
    with pytest.raises(UserError, match=rf"^OUT {folder}/x.json cannot be written \("):
        check_output_file(f"{folder}/x.json", "OUT")
