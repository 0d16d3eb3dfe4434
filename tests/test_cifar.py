"""CIFAR-10 tensor pipeline: split, subsets, batches, augmentation, determinism and exact resume."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from egs.data.cifar import CIFAR_MEAN, CIFAR_STD, TensorBatches, load_cifar10, search_split, subset
from egs.core.errors import EGSError

MEAN = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def train(data_root):
    return load_cifar10(True, root=data_root)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Undo the normalisation exactly (the values came from uint8 pixels)."""
    return (x * STD * 255 + MEAN * 255).round().to(torch.uint8)


def test_load(data_root, train):
    images, labels = train
    assert images.shape == (50000, 3, 32, 32) and images.dtype == torch.uint8
    assert labels.shape == (50000,) and labels.dtype == torch.int64
    assert torch.bincount(labels).tolist() == [5000] * 10
    test_images, test_labels = load_cifar10(False, root=data_root)
    assert test_images.shape == (10000, 3, 32, 32) and len(test_labels) == 10000


def test_load_reads_exactly_torchvisions_arrays_without_importing_it(data_root, train):
    """The batch files read directly give torchvision's dataset bit for bit (its HWC array, channel-major here)."""
    import numpy as np
    from egs.data.fetch import cifar10
    for ours, ds in ((train, cifar10(train=True, root=data_root)),
                     (load_cifar10(False, root=data_root), cifar10(train=False, root=data_root))):
        assert np.array_equal(ours[0].permute(0, 2, 3, 1).numpy(), ds.data)
        assert ours[1].tolist() == list(ds.targets)


def test_load_names_a_damaged_batch_file(data_root, tmp_path):
    import shutil
    folder = tmp_path / "cifar10"
    shutil.copytree(data_root / "cifar10", folder, symlinks=True)  # links: no 180 MB copy
    batch = folder / "cifar-10-batches-py" / "test_batch"
    batch.unlink()
    batch.write_bytes(b"\x80\x04not a pickle")
    with pytest.raises(EGSError, match=r"test_batch is damaged \(\w+\); fetch it again"):
        load_cifar10(False, root=tmp_path)


def test_search_split():
    a, b = search_split(50000, seed=0)
    assert len(a) == len(b) == 25000
    assert torch.equal(torch.cat([a, b]).sort().values, torch.arange(50000))  # disjoint and covering
    assert torch.equal(a, search_split(50000, seed=0)[0])
    assert not torch.equal(a, search_split(50000, seed=1)[0])
    c, d = search_split(11, seed=3, portion=0.3)
    assert (len(c), len(d)) == (3, 8) and not set(c.tolist()) & set(d.tolist())


def test_subset(train):
    pool, _ = search_split(50000, seed=0)
    small, large = subset(pool, 100, seed=4), subset(pool, 1000, seed=4)
    assert len(small) == 100 and len(set(small.tolist())) == 100
    assert set(small.tolist()) <= set(large.tolist()) <= set(pool.tolist())  # nested, from the pool
    assert not torch.equal(small, subset(pool, 100, seed=5))
    balanced = subset(pool, 1003, seed=4, labels=train[1])
    counts = torch.bincount(train[1][balanced], minlength=10)
    assert counts.sum() == 1003 and counts.max() - counts.min() <= 1
    assert set(balanced.tolist()) <= set(pool.tolist())


def test_batch_shapes_and_normalisation(train):
    images, labels = train
    tb = TensorBatches(images[:10000], labels[:10000], 1000, augment=False, seed=0, drop_last=False)
    assert len(tb) == 10
    batches = list(tb.batches(0))
    x = torch.cat([b[0] for b in batches])
    assert x.dtype == torch.float32 and x.shape == (10000, 3, 32, 32)
    assert torch.equal(torch.cat([b[1] for b in batches]), labels[:10000])  # no shuffle, index order
    mean, std = x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3))
    assert torch.allclose(mean, torch.zeros(3), atol=0.05) and torch.allclose(std, torch.ones(3), atol=0.05)
    assert torch.equal(to_uint8(x), images[:10000])
    ragged = TensorBatches(images[:100], labels[:100], 64, augment=False, seed=0, drop_last=False)
    assert [len(y) for _, y in ragged.batches(0)] == [64, 36]
    cl = TensorBatches(images[:100], labels[:100], 64, augment=True, seed=0, channels_last=True)
    x, y = next(cl.batches(0))
    assert len(cl) == 1 and x.shape == (64, 3, 32, 32) and y.dtype == torch.int64
    assert x.is_contiguous(memory_format=torch.channels_last)


def test_determinism_and_resume(train):
    images, labels = train
    make = lambda seed: TensorBatches(images[:640], labels[:640], 64, augment=True, seed=seed, cutout=8)
    tb = make(7)
    full = list(tb.batches(2))
    again = list(make(7).batches(2))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(full, again))
    resumed = list(tb.batches(2, start_step=3))
    assert len(resumed) == len(full) - 3
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(resumed, full[3:]))
    assert list(tb.batches(2, start_step=len(tb))) == []
    assert not torch.equal(full[0][0], next(tb.batches(3))[0])  # another epoch, other batches
    assert not torch.equal(full[0][0], next(make(8).batches(2))[0])  # another seed too
    order = torch.cat([y for _, y in full])
    assert not torch.equal(order, labels[:640])  # shuffled ...
    assert sorted(order.tolist()) == sorted(labels[:640].tolist())  # ... a permutation


def crop_flip_candidates(images: torch.Tensor, pad: int) -> torch.Tensor:
    """Every crop of the zero-padded images, unflipped and flipped: (N, 2 * (2*pad+1)^2, 3, S, S)."""
    s, d = images.shape[-1], 2 * pad + 1
    padded = F.pad(images, (pad, pad, pad, pad))
    crops = torch.stack([padded[..., i:i + s, j:j + s] for i in range(d) for j in range(d)], dim=1)
    return torch.cat([crops, crops.flip(-1)], dim=1)


@pytest.mark.parametrize("image_size", [32, 16])
def test_augmentation_is_exactly_crop_and_flip(train, image_size):
    n, pad = 96, image_size // 8
    images, ids = train[0][:n], torch.arange(n)  # labels = image ids: each output names its source
    plain = TensorBatches(images, ids, n, augment=False, seed=0, image_size=image_size)
    cand = crop_flip_candidates(to_uint8(next(plain.batches(0))[0]), pad)
    tb = TensorBatches(images, ids, n, augment=True, seed=1, image_size=image_size)
    x, y = next(tb.batches(0))
    assert x.shape == (n, 3, image_size, image_size) and sorted(y.tolist()) == list(range(n))
    match = (cand[y] == to_uint8(x)[:, None]).flatten(2).all(-1)  # (n, candidates)
    assert match.any(1).all(), "an augmented image is no crop/flip of its source"
    first = match.float().argmax(1)
    d = 2 * pad + 1
    flips, dy, dx = first // (d * d), first % (d * d) // d, first % d
    assert set(flips.tolist()) == {0, 1}
    assert set(dy.tolist()) == set(range(d)) and set(dx.tolist()) == set(range(d))
    assert (dy != pad).any() and len(set(zip(dy.tolist(), dx.tolist()))) > d * d // 2


def test_cutout_zeroes_a_clipped_square():
    n, size, length = 400, 32, 8
    images = torch.full((n, 3, size, size), 200, dtype=torch.uint8)
    tb = TensorBatches(images, torch.zeros(n, dtype=torch.int64), 100, augment=True, seed=0, cutout=length)
    full_squares = 0
    for x, _ in tb.batches(0):
        zero = x == 0
        assert torch.equal(zero, zero[:, :1].expand_as(zero))  # the same square on every channel
        for z in zero[:, 0]:
            rows, cols = z.any(1).nonzero().flatten(), z.any(0).nonzero().flatten()
            h, w = len(rows), len(cols)
            assert length // 2 <= h <= length and length // 2 <= w <= length
            assert rows[-1] - rows[0] == h - 1 and cols[-1] - cols[0] == w - 1  # contiguous
            assert z.sum() == h * w  # a full rectangle, nothing else zeroed
            full_squares += h == w == length
    assert full_squares > n // 2


def test_downscale(train):
    images = train[0][:64]
    tb = TensorBatches(images, train[1][:64], 64, augment=False, seed=0, image_size=16)
    x, _ = next(tb.batches(0))
    assert x.shape == (64, 3, 16, 16) and tb.pad == 2
    expected = F.avg_pool2d(images.float(), 2).round().to(torch.uint8)
    assert torch.equal(to_uint8(x), expected)
    odd = TensorBatches(images, train[1][:64], 64, augment=True, seed=0, image_size=24)
    assert next(odd.batches(0))[0].shape == (64, 3, 24, 24) and odd.pad == 3


def test_bad_inputs():
    images, labels = torch.zeros(10, 3, 32, 32, dtype=torch.uint8), torch.zeros(10, dtype=torch.int64)
    bad = [
        dict(batch_size=0), dict(image_size=7), dict(image_size=40), dict(cutout=-1), dict(cutout=33),
        dict(cutout=4, augment=False), dict(batch_size=11), dict(seed=1.5),
        dict(labels=labels[:9]), dict(images=images.float()), dict(images=images[:, :1]),
    ]
    for change in bad:
        kwargs = dict(images=images, labels=labels, batch_size=4, augment=True, seed=0) | change
        with pytest.raises(EGSError):
            TensorBatches(**kwargs)
    tb = TensorBatches(images, labels, 4, augment=True, seed=0)
    for epoch, start in [(-1, 0), (0, -1), (0, 3)]:
        with pytest.raises(EGSError):
            next(tb.batches(epoch, start_step=start))
    for args in [(1, 0), (10, 0, 0.0), (10, 0, 1.0), (10, 0, 0.05)]:
        with pytest.raises(EGSError):
            search_split(*args)
    with pytest.raises(EGSError, match="size=11"):
        subset(torch.arange(10), 11, seed=0)
