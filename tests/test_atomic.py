"""Atomic writes: several writers of one file never share a temporary file, and a failed
write leaves the target and its folder as they were."""
import threading

import pytest

from ganforge import atomic


def test_concurrent_writers_of_one_file_never_collide(tmp_path):
    target, errors = tmp_path / "config.yaml", []

    def write(text):
        try:
            for _ in range(50):
                atomic.write_text(target, text)
        except OSError as error:  # a shared temporary name fails here (renamed away by another)
            errors.append(error)

    threads = [threading.Thread(target=write, args=(f"writer {i}\n",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert target.read_text() in {f"writer {i}\n" for i in range(4)}
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]


def test_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "eval.json"
    atomic.write_json(target, {"fid": 1.0})
    with pytest.raises(RuntimeError):
        with atomic.replacing(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == '{\n  "fid": 1.0\n}'
    assert [p.name for p in tmp_path.iterdir()] == ["eval.json"]
