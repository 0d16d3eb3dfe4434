"""Dataset fetching (mirror and download paths), verification, loading and the missing-data error."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import tarfile
from pathlib import Path

import pytest

from egs.data import fetch as data
from egs.core.errors import EGSError


def test_mirror_fetch_links_and_verifies(data_root, mirror):
    for name, s in data.DATASETS.items():
        folder = data_root / s.dirname
        manifest = json.loads((folder / data.MANIFEST).read_text())
        assert manifest["source"] == f"mirror:{mirror}" and manifest["verified"] is True
        for rel in s.files:
            assert (folder / rel).is_symlink()
            assert (folder / rel).resolve() == (mirror / s.dirname / rel).resolve()
    assert set(data.status(data_root).values()) == {f"ready (mirror:{mirror})"}


def test_mirror_checksums_are_the_mirrors_own(mirror):
    sums = data.mirror_checksums(mirror)
    # The mirror's CIFAR-10 batches are reconstructions: its list differs from the canonical md5s.
    assert "cifar10/cifar-10-batches-py/data_batch_1" in sums
    assert "ptb/train.txt" in sums and "wikitext-2/test.txt" in sums


def test_copy_and_idempotent_fetch(tmp_path, mirror):
    folder = data.fetch("ptb", root=tmp_path, mirror=mirror, copy=True, progress=False)
    train = folder / "train.txt"
    assert not train.is_symlink() and train.stat().st_size == (mirror / "ptb/train.txt").stat().st_size
    stamp = (folder / data.MANIFEST).stat().st_mtime_ns
    data.fetch("ptb", root=tmp_path, mirror=mirror, progress=False)  # already there: left alone
    assert (folder / data.MANIFEST).stat().st_mtime_ns == stamp


def test_corrupt_mirror_file_is_rejected(tmp_path, mirror):
    fake = tmp_path / "mirror"
    (fake / "ptb").mkdir(parents=True)
    for split in ("train", "valid", "test"):
        (fake / "ptb" / f"{split}.txt").write_bytes((mirror / "ptb" / f"{split}.txt").read_bytes())
    with open(fake / "ptb" / "valid.txt", "ab") as f:
        f.write(b"tampered\n")
    with pytest.raises(EGSError, match=r"checksum mismatch for .*valid\.txt"):
        data.fetch("ptb", root=tmp_path / "data", mirror=fake, progress=False)
    # With no checksum list in the mirror the canonical checksums apply; --no-verify accepts it.
    data.fetch("ptb", root=tmp_path / "data", mirror=fake, verify=False, progress=False)


def test_mirror_missing_files_and_bad_mirror(tmp_path):
    (tmp_path / "m" / "ptb").mkdir(parents=True)
    with pytest.raises(EGSError, match="lacks ptb/train.txt"):
        data.fetch("ptb", root=tmp_path / "d", mirror=tmp_path / "m", progress=False)
    with pytest.raises(EGSError, match="is not a folder"):
        data.fetch("ptb", root=tmp_path / "d", mirror=tmp_path / "nope", progress=False)


def test_missing_dataset_names_both_ways(tmp_path):
    with pytest.raises(EGSError) as err:
        data.cifar10(root=tmp_path)
    msg = str(err.value)
    assert "python -m egs data fetch cifar10" in msg and "--mirror DIR" in msg and "EGS_DATA_DIR" in msg
    with pytest.raises(EGSError, match="unknown dataset 'mnist'"):
        data.fetch("mnist", root=tmp_path)


def test_download_path_extracts_and_verifies(tmp_path, mirror, monkeypatch):
    """The download code path, fed a local archive through a file:// URL (no network here)."""
    archive = tmp_path / "simple-examples.tgz"
    with tarfile.open(archive, "w:gz") as t:
        for split in ("train", "valid", "test"):
            t.add(mirror / "ptb" / f"{split}.txt", arcname=f"./simple-examples/data/ptb.{split}.txt")
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    spec = dataclasses.replace(data.DATASETS["ptb"], url=archive.as_uri(), archive_md5=md5)
    monkeypatch.setitem(data.DATASETS, "ptb", spec)
    monkeypatch.delenv("EGS_DATA_MIRROR", raising=False)
    folder = data.fetch("ptb", root=tmp_path / "data", progress=False)
    assert (folder / "train.txt").read_bytes() == (mirror / "ptb/train.txt").read_bytes()
    assert json.loads((folder / data.MANIFEST).read_text())["source"] == archive.as_uri()
    # A corrupted archive fails its checksum and leaves nothing behind.
    monkeypatch.setitem(data.DATASETS, "ptb", dataclasses.replace(spec, archive_md5="0" * 32))
    with pytest.raises(EGSError, match="checksum mismatch"):
        data.fetch("ptb", root=tmp_path / "data2", progress=False)
    assert not (tmp_path / "data2" / "ptb" / "train.txt").exists()


def test_unreachable_download_is_a_clear_error(tmp_path, monkeypatch):
    spec = dataclasses.replace(data.DATASETS["ptb"], url=(tmp_path / "absent.tgz").as_uri())
    monkeypatch.setitem(data.DATASETS, "ptb", spec)
    monkeypatch.delenv("EGS_DATA_MIRROR", raising=False)
    with pytest.raises(EGSError, match="could not download .* --mirror DIR"):
        data.fetch("ptb", root=tmp_path, progress=False)


def test_cifar10_loads_through_torchvision(data_root):
    train, test = data.cifar10(train=True, root=data_root), data.cifar10(train=False, root=data_root)
    assert len(train) == 50_000 and len(test) == 10_000
    # The first ten training images of CIFAR-10 (original order): frog, truck, truck, deer, car, car,
    # bird, horse, ship, cat.
    assert [train.targets[i] for i in range(10)] == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    image, label = train[0]
    assert image.size == (32, 32) and label == 6


def test_corpus_files(data_root):
    files = data.corpus_files("ptb", root=data_root)
    tokens = sum(len(line.split()) + 1 for line in files["train"].read_text().splitlines())
    assert tokens == 929_589  # PTB train tokens with <eos>, as counted by AWD-LSTM/DARTS
    with pytest.raises(EGSError, match="image dataset"):
        data.corpus_files("cifar10", root=data_root)


def test_data_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("EGS_DATA_DIR", str(tmp_path))
    assert data.data_dir() == tmp_path.resolve()
    monkeypatch.delenv("EGS_DATA_DIR")
    assert data.data_dir() == Path(__file__).resolve().parent.parent / "data"
