"""Shared test set-up."""
import numpy as np
import pytest
import torch
from PIL import Image


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny networks gain nothing from threads and lose a lot when another process competes
    for the two cores (a 10x slowdown was measured), so tests run on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Each test gets its own feature-classifier cache: nothing is written to the home directory."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("GANFORGE_CACHE", str(folder))
    return folder


@pytest.fixture(autouse=True)
def reference_machine(monkeypatch):
    """`ganforge train --time-budget` times what the budget buys on this machine and scales the
    budget rules by it; tests pin the rate to the reference machine's, so what a command chooses
    does not depend on the machine the suite runs on (test_time_budget times it for real)."""
    from ganforge.resolve import REFERENCE_STEP_RATE
    monkeypatch.setattr("ganforge.bench.reference_step_rate", lambda config, **_: REFERENCE_STEP_RATE)


@pytest.fixture
def unlabelled_folder(tmp_path):
    """Twelve 16x16 gray noise images with no class sub-folders."""
    folder = tmp_path / "pictures"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8), "L").save(folder / f"{i:02d}.png")
    return folder
