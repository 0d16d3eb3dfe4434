"""CIFAR-10 as tensors: loading, the search split, subsets and fast, resumable batches.

Everything stays a tensor: images are held once as uint8 ``(N, 3, H, W)`` (on the training
device), and each batch is augmented in one vectorised gather and normalised to float32. There are
no DataLoader workers and no per-item PIL calls, which is what a 2-core CPU needs.

Determinism and exact resume: the whole randomness of epoch ``e`` (the shuffle, crop offsets,
flips and cutout centres) is drawn up front from a CPU ``torch.Generator`` seeded by
``(seed, e)``, so the batch at step ``s`` is a pure function of ``(seed, e, s)`` and of the data,
whatever step the iteration started from and whatever the device.

Augmentation follows DARTS (Liu et al., 2019, ``utils._data_transforms_cifar10``): random crop with
zero padding of 4 pixels (``image_size // 8`` for downscaled images), random horizontal flip,
normalisation, then optional cutout (DeVries & Taylor, 2017), which zeroes a square *after*
normalisation, i.e. paints it with the dataset mean, as DARTS does.
"""
from __future__ import annotations

import hashlib
import math
import os
import pickle
from numbers import Real
from typing import Iterator

import torch
import torch.nn.functional as F

from egs.core.checks import check_int
from egs.core.errors import EGSError

# Per-channel mean and std of the CIFAR-10 training images, as used by DARTS
# (https://github.com/quark0/darts, cnn/utils.py, CIFAR_MEAN / CIFAR_STD).
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
MIN_IMAGE_SIZE = 8


def load_cifar10(train: bool, root: str | os.PathLike | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10's train (50,000) or test (10,000) set: uint8 images ``(N, 3, 32, 32)``, int64 labels ``(N,)``.

    Read straight from the python batch files (rows of 3 x 32 x 32 bytes, channel-major): the arrays
    :func:`egs.data.fetch.cifar10` (torchvision's dataset) holds, without importing torchvision, which took
    2.6 s of a 40 s ``cpu`` training (benchmarks/README.md).
    """
    import numpy as np
    from egs.data.fetch import locate
    folder = locate("cifar10", root) / "cifar-10-batches-py"  # names a missing file itself
    rows, labels = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]:
        try:
            with open(folder / name, "rb") as f:
                batch = pickle.load(f, encoding="latin1")
            data, targets = np.asarray(batch["data"], dtype=np.uint8), batch["labels"]
            if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(targets):
                raise ValueError("not a CIFAR-10 batch")
        except (pickle.UnpicklingError, EOFError, ValueError, KeyError, TypeError, AttributeError, OSError,
                OverflowError, MemoryError, SystemError, IndexError) as err:  # what unpickling damaged bytes raises
            raise EGSError(f"{folder / name} is damaged ({type(err).__name__}); fetch it "
                           "again with `egs data fetch cifar10 --force`.") from None
        rows.append(data)
        labels.extend(targets)
    images = torch.from_numpy(np.concatenate(rows).reshape(-1, 3, 32, 32))
    return images, torch.as_tensor(labels, dtype=torch.int64)


def search_split(n: int, seed: int, portion: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Split indices ``0..n-1`` at random into search-train and search-val (DARTS's 50/50 split).

    Search-train gets ``floor(portion * n)`` indices, search-val the rest; both are returned sorted.
    The two are disjoint, cover ``0..n-1`` and depend only on ``(n, seed, portion)``.
    """
    n = check_int(n, "n", 2, "pass the number of training images to split")
    if isinstance(portion, bool) or not isinstance(portion, Real) or not 0.0 < portion < 1.0 or not 1 <= math.floor(portion * n) <= n - 1:
        raise EGSError(f"portion={portion!r} is invalid for n={n}: it must lie strictly between 0 and 1 and "
                       "leave both parts non-empty (DARTS uses 0.5).")
    k = math.floor(portion * n)
    perm = torch.randperm(n, generator=_generator(seed, "split"))
    return perm[:k].sort().values, perm[k:].sort().values


def subset(indices: torch.Tensor, size: int, seed: int, labels: torch.Tensor | None = None,
           what: str = "size", pool: str = "indices") -> torch.Tensor:
    """``size`` of ``indices``, chosen at random from ``seed`` and returned sorted.

    Without ``labels``: the first ``size`` of a seeded permutation. With ``labels`` (the dataset's
    label tensor, indexed by the values of ``indices``): class-balanced, i.e. the classes are taken
    round-robin from per-class seeded permutations, so class counts differ by at most one (unless a
    class runs out). Either way, for a fixed seed a smaller subset is contained in a larger one. Errors name the
    setting ``what`` (e.g. ``train_size``) and what ``pool`` the indices are (e.g. "images of the search's half").
    """
    indices = torch.as_tensor(indices).reshape(-1)
    size = check_int(size, what, 1, "ask for at least one image")
    if size > len(indices):
        raise EGSError(f"{what}={size} is more than the {len(indices)} {pool} to choose from; set {what} <= "
                       f"{len(indices)}, or 0 for all of them.")
    perm = torch.randperm(len(indices), generator=_generator(seed, "subset"))
    if labels is not None:
        lab = torch.as_tensor(labels)[indices[perm]]
        by_class = torch.sort(lab, stable=True)  # within a class, keeps the seeded order
        start = torch.searchsorted(by_class.values, by_class.values, side="left")
        rank = torch.empty_like(perm)
        rank[by_class.indices] = torch.arange(len(perm)) - start  # rank within its class
        perm = perm[torch.sort(rank, stable=True).indices]
    return indices[perm[:size]].sort().values


def _generator(seed: int, *salt: object) -> torch.Generator:
    """A CPU generator seeded by a hash of ``(seed, *salt)``: distinct streams, no arithmetic clashes."""
    seed = check_int(seed, "seed", None, "pass an integer seed")
    # "egs.cifar", the module's name before the subpackages, stays the salt: the same seed keeps the same images
    digest = hashlib.sha256(repr(("egs.cifar", int(seed), *salt)).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def downscale(images: torch.Tensor, size: int, chunk: int = 8192) -> torch.Tensor:
    """uint8 images resized to ``size x size``: area averaging for integer factors, else antialiased bilinear."""
    h = images.shape[-1]
    out = torch.empty((*images.shape[:2], size, size), dtype=torch.uint8, device=images.device)
    for i in range(0, len(images), chunk):
        x = images[i:i + chunk].float()
        if h % size == 0:
            x = F.interpolate(x, size=(size, size), mode="area")
        else:
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[i:i + chunk] = x.round_().clamp_(0, 255).to(torch.uint8)
    return out


class TensorBatches:
    """Seeded, resumable mini-batches of CIFAR-like uint8 images, augmented and normalised on the fly.

    ``augment=True`` shuffles each epoch and applies DARTS's crop + flip (+ cutout if ``cutout > 0``);
    ``augment=False`` only normalises, in index order (``shuffle`` overrides the order either way).
    ``image_size`` below the stored size downscales all images once, up front (the ``cpu`` profile).
    ``shard=(rank, world)`` yields only rank's contiguous ``batch_size / world`` rows of every (global)
    batch, for data-parallel training under torchrun; the global batches are those of one process.
    ``deal=(rank, world)`` yields whole batches instead, every ``world``-th from ``rank`` on (data-parallel
    evaluation: each batch, and its BatchNorm statistics, is the one a single process would see).
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, *, augment: bool,
                 seed: int, image_size: int | None = None, cutout: int = 0, drop_last: bool = True,
                 device: str | torch.device = "cpu", channels_last: bool = False,
                 shuffle: bool | None = None, shard: tuple[int, int] = (0, 1),
                 deal: tuple[int, int] = (0, 1)) -> None:
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4 \
                or images.shape[1] != 3 or images.shape[2] != images.shape[3]:
            got = f"{images.dtype} tensor of shape {tuple(images.shape)}" if isinstance(images, torch.Tensor) \
                else type(images).__name__
            raise EGSError(f"images must be a uint8 tensor (N, 3, H, H) of square RGB images, got a {got}; "
                           "use load_cifar10() or convert with .permute(0, 3, 1, 2).to(torch.uint8).")
        labels = torch.as_tensor(labels)
        if labels.dim() != 1 or len(labels) != len(images) or labels.is_floating_point():
            raise EGSError(f"labels must be an integer tensor (N,) with one label per image; got shape "
                           f"{tuple(labels.shape)} for {len(images)} images.")
        if len(images) == 0:
            raise EGSError("images is empty; pass at least one image.")
        self.batch_size = check_int(batch_size, "batch_size", 1, "the DARTS search uses 64")
        stored = images.shape[-1]
        size = stored if image_size is None else check_int(image_size, "image_size", MIN_IMAGE_SIZE,
                                                       f"use a size in {MIN_IMAGE_SIZE}..{stored}")
        if size > stored:
            raise EGSError(f"image_size={size} is larger than the stored {stored}x{stored} images; images are "
                           f"only downscaled, so use a size in {MIN_IMAGE_SIZE}..{stored} (or None).")
        self.cutout = check_int(cutout, "cutout", 0, f"use 0 (off) up to image_size={size}; DARTS uses 16")
        if self.cutout > size:
            raise EGSError(f"cutout={cutout} exceeds image_size={size}; use 0 (off) up to {size}.")
        if self.cutout and not augment:
            raise EGSError(f"cutout={cutout} is training augmentation and needs augment=True; "
                           "pass cutout=0 for evaluation batches.")
        self.augment, self.seed, self.drop_last = bool(augment), seed, bool(drop_last)
        rank, world = shard
        if world > 1 and (self.batch_size % world or not self.drop_last):
            raise EGSError(f"batch_size={batch_size} must split evenly over {world} processes (and drop_last=True) "
                           f"to shard it; use a multiple of {world}.")
        part = self.batch_size // world
        self._rows = (rank * part, (rank + 1) * part)
        self._deal = deal
        _generator(seed)  # validates the seed now rather than at the first epoch
        self.shuffle = self.augment if shuffle is None else bool(shuffle)
        self.image_size, self.pad = size, size // 8
        self.device = torch.device(device)
        self.channels_last = bool(channels_last)
        self._n = len(images)
        if len(self) == 0:
            raise EGSError(f"{len(images)} images make no full batch of batch_size={batch_size} with "
                           "drop_last=True; lower batch_size or pass drop_last=False.")
        images = images.to(self.device)
        self.images = downscale(images, size) if size != stored else images.contiguous()
        self.labels = labels.to(self.device, torch.int64)
        mean = torch.tensor(CIFAR_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(CIFAR_STD, device=self.device).view(1, 3, 1, 1)
        self._scale, self._shift = 1.0 / (255.0 * std), -mean / std  # x/255 normalised in one fma

    @property
    def num_samples(self) -> int:
        return self._n

    def __len__(self) -> int:
        """Steps per epoch."""
        n, b = self._n, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def batches(self, epoch: int, start_step: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(images float32 (B, 3, S, S), labels int64 (B,))`` for steps ``start_step..len-1`` of ``epoch``.

        Step ``s``'s batch depends only on ``(seed, epoch, s)``: resuming at ``start_step=s`` gives
        exactly the batches an uninterrupted epoch would have given from step ``s`` on.
        """
        epoch = check_int(epoch, "epoch", 0, "epochs count from 0")
        start_step = check_int(start_step, "start_step", 0, f"use 0..{len(self)} (steps per epoch)")
        if start_step > len(self):
            raise EGSError(f"start_step={start_step} is past the end of the epoch; use 0..{len(self)} "
                           "(steps per epoch).")
        plan = self._plan(epoch)
        lo, hi = self._rows
        rank, world = self._deal
        for step in range(start_step, len(self)):
            if step % world != rank:
                continue
            first = step * self.batch_size
            yield self._batch(plan, slice(first + lo, first + hi))

    def _plan(self, epoch: int) -> dict[str, torch.Tensor]:
        """All of an epoch's random draws, from the generator of ``(seed, epoch)``, on the device."""
        n, g = self._n, _generator(self.seed, "epoch", epoch)
        plan = {"order": torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)}
        if self.augment:
            plan["offset"] = torch.randint(0, 2 * self.pad + 1, (n, 2), generator=g)
            plan["flip"] = torch.rand(n, generator=g) < 0.5
            plan["centre"] = torch.randint(0, self.image_size, (n, 2), generator=g)
        return {k: v.to(self.device) for k, v in plan.items()}

    def _batch(self, plan: dict[str, torch.Tensor], window: slice) -> tuple[torch.Tensor, torch.Tensor]:
        idx = plan["order"][window]
        x = self._crop_flip(idx, plan["offset"][window], plan["flip"][window]) if self.augment \
            else self.images[idx]
        x = x.float().mul_(self._scale).add_(self._shift)
        if self.cutout:
            x.mul_(self._cutout_mask(plan["centre"][window]))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, self.labels[idx]

    def _crop_flip(self, idx: torch.Tensor, offset: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
        """Random crop of the zero-padded image, then flip, as one gather (no padded copy is made).

        Output pixel ``(r, c)`` reads source pixel ``(r + dy - pad, c' + dx - pad)`` with
        ``c' = S-1-c`` when flipped; reads that fall into the padding give 0.
        """
        s, ar = self.image_size, torch.arange(self.image_size, device=self.device)
        rows = offset[:, :1] - self.pad + ar  # (B, S)
        cols = offset[:, 1:] - self.pad + torch.where(flip[:, None], s - 1 - ar, ar)
        inside = ((rows >= 0) & (rows < s))[:, None, :, None] & ((cols >= 0) & (cols < s))[:, None, None, :]
        planes = (idx[:, None] * 3 + torch.arange(3, device=self.device)) * (s * s)  # (B, 3)
        flat = planes[:, :, None, None] + (rows.clamp(0, s - 1) * s)[:, None, :, None] \
            + cols.clamp(0, s - 1)[:, None, None, :]
        return self.images.view(-1)[flat] * inside

    def _cutout_mask(self, centre: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) float mask, 0 on a ``cutout``-wide square at ``centre`` clipped at the borders.

        The square spans ``[c - cutout//2, c - cutout//2 + cutout)`` per axis, DARTS's
        ``[c - L//2, c + L//2)`` for the even lengths it uses.
        """
        ar = torch.arange(self.image_size, device=self.device)
        lo = centre - self.cutout // 2  # (B, 2)
        rows = (ar >= lo[:, :1]) & (ar < lo[:, :1] + self.cutout)
        cols = (ar >= lo[:, 1:]) & (ar < lo[:, 1:] + self.cutout)
        return (~(rows[:, None, :, None] & cols[:, None, None, :])).float()
