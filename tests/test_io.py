import json

import pytest

from tinlib.io import atomic_write, atomic_write_json


def test_atomic_write_json_roundtrip(tmp_path):
    path = atomic_write_json(tmp_path / "sub" / "m.json", {"top1": 0.5})
    assert json.loads(path.read_text()) == {"top1": 0.5}


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "m.json"
    atomic_write_json(target, {"v": 1})

    def boom(handle):
        handle.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]
