"""kill -9 at random moments, resumed each time: the run ends bit for bit where an
uninterrupted one does, and no checkpoint is ever torn (benchmarks/fault_drill.py, small)."""
from pathlib import Path

import pytest

from helpers import load_benchmark

DRILL = Path(__file__).resolve().parents[1] / "benchmarks" / "fault_drill.py"


def load_drill():
    return load_benchmark(DRILL)


@pytest.mark.slow
def test_kill_nine_three_times_then_resume_is_exact(tmp_path):
    drill = load_drill()
    small = ["model.g_width=8", "model.d_width=8", "data.resolution=16", "train.batch_size=16"]
    result = drill.drill(kills=3, steps=150, extra=small, seed=1, work=tmp_path)
    assert result["kills"] >= 1, result        # at least one kill landed before the run ended
    assert result["steps"] == 150
    assert result["torn"] == [] and result["different_tensors"] == [], result
