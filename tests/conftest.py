"""Shared test set-up."""
import pytest
import torch


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
