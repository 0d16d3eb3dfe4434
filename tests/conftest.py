"""Shared fixtures: the local data mirror and a data folder fetched from it."""
from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

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
    from egs.data import fetch as data
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


def make_image_folder(root: Path, classes: int = 3, per_class: int = 4, size: int = 40) -> Path:
    """A tiny ImageNet-like tree ``root/imagenet/{train,val}/<class>/*.png`` of random images."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in range(classes):
            folder = root / "imagenet" / split / f"n{c:08d}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def smoke_reproduction(tmp_path_factory, data_root):
    """One ``egs.repro.reproduce`` of every notebook at `smoke` (two at a time), shared by the tests.

    Results (tables, executed notebooks, runs, README.md) and figures land in a temporary folder;
    notebook 04 gets a tiny ImageFolder tree so that its training path runs too.
    """
    from egs.repro.reproduce import reproduce
    root = tmp_path_factory.mktemp("reproduce")
    extra = {"04": {"imagenet_dir": str(make_image_folder(root / "imagenet_root"))}}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EGS_DATA_DIR", str(data_root))
        report = reproduce("smoke", jobs=2, results=root / "results", extra=extra)
    results = root / "results"
    return SimpleNamespace(report=report, results=results, tables=results / "tables", figures=results / "figures",
                           extra=extra)
