"""Shared fixtures: the local data mirror and a data folder fetched from it."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def mirror_path() -> Path | None:
    candidates = [os.environ.get("EGS_DATA_MIRROR"), ROOT.parent / "shared" / "data"]
    for c in candidates:
        if c and (Path(c) / "ptb" / "train.txt").is_file():
            return Path(c).resolve()
    return None


@pytest.fixture(scope="session")
def mirror() -> Path:
    path = mirror_path()
    if path is None:
        pytest.skip("no data mirror: set EGS_DATA_MIRROR to a folder with the standard layout")
    return path


@pytest.fixture(scope="session")
def data_root(tmp_path_factory, mirror) -> Path:
    """A data folder with every dataset linked from the mirror (fetched once per session)."""
    from egs import data
    root = tmp_path_factory.mktemp("data")
    for name in data.DATASETS:
        data.fetch(name, root=root, mirror=mirror, progress=False)
    return root


@pytest.fixture
def one_thread():
    """Run a test with one torch thread (fast, contention-free model building on 2 cores)."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
