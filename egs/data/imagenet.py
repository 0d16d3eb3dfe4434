"""ImageNet as an ImageFolder tree (``data/imagenet/{train,val}/<class>/*``), in seeded batches.

ImageNet cannot be downloaded automatically (it needs a licence), so a missing folder gives one
clear message. Augmentation follows DARTS's ImageNet recipe: random-resized crop, horizontal flip
and colour jitter for training; resize to 8/7 of the crop and centre crop for validation. The
order of each epoch is a function of ``(seed, epoch)``, so a resumed run sees the same batches in
the same order; the random augmentations themselves are drawn in DataLoader workers and are not
reproduced bit for bit.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Iterator

import torch

from egs.core.errors import EGSError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def locate_imagenet(root: str | os.PathLike | None = None) -> Path:
    """``data/imagenet`` (or ``<root>/imagenet``) with ``train/`` and ``val/`` class folders."""
    from egs.data.fetch import data_dir
    folder = data_dir(root) / "imagenet"
    for split in ("train", "val"):
        if not (folder / split).is_dir() or not any((folder / split).iterdir()):
            raise EGSError(f"ImageNet not found: {folder / split} is missing or empty. ImageNet needs a "
                           "licence and cannot be fetched automatically; place the ILSVRC-2012 train and val "
                           f"images as {folder}/{{train,val}}/<class>/*.JPEG (or point EGS_DATA_DIR at a folder "
                           "that holds imagenet/).")
    return folder


def _transform(train: bool, size: int):
    import torchvision.transforms as T
    normalize = T.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    if train:
        return T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(),
                          T.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.2),
                          T.ToTensor(), normalize])
    return T.Compose([T.Resize(size * 8 // 7), T.CenterCrop(size), T.ToTensor(), normalize])


class FolderBatches:
    """Batches of an ImageFolder split with a seeded, resumable order (``TensorBatches``'s interface,
    ``shard`` and ``deal`` included).

    ``hold_out`` > 0 sets that many class-balanced images of the folder aside (chosen from ``hold_out_seed``
    only, so every training seed holds out the same ones; :func:`egs.data.cifar.subset`): the ``size``
    subset is drawn from the rest, and :meth:`held_out` serves them as evaluation batches.
    """

    def __init__(self, folder: str | os.PathLike, batch_size: int, *, train: bool, seed: int,
                 image_size: int = 224, size: int = 0, workers: int = 4,
                 device: str | torch.device = "cpu", shard: tuple[int, int] = (0, 1),
                 deal: tuple[int, int] = (0, 1), hold_out: int = 0, hold_out_seed: int = 0) -> None:
        import torchvision
        self.dataset = torchvision.datasets.ImageFolder(str(folder), transform=_transform(train, image_size))
        self.train, self.seed, self.batch_size, self.workers = train, seed, batch_size, workers
        self.image_size = image_size
        rank, world = shard
        if world > 1 and (batch_size % world or not train):
            raise EGSError(f"batch_size={batch_size} must split evenly over {world} processes to shard the "
                           f"training batches; use a multiple of {world}.")
        self.rank, self.world, self.deal = rank, world, deal
        self.device = torch.device(device)
        pool = torch.arange(len(self.dataset))
        self.held = pool[:0]
        if hold_out:
            from egs.data.cifar import subset
            self.held = subset(pool, hold_out, hold_out_seed, labels=torch.tensor(self.dataset.targets),
                               what="val_size", pool=f"images in {folder}")
            pool = pool[~torch.isin(pool, self.held)]
        keep = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))[:size] if size else None
        self.indices = pool[keep.sort().values] if keep is not None else pool
        self.num_classes = len(self.dataset.classes)
        if len(self) == 0:
            raise EGSError(f"{folder} has {len(self.indices)} images, fewer than one batch of {batch_size}; "
                           "lower the batch size.")

    def held_out(self, batch_size: int, deal: tuple[int, int] = (0, 1)) -> FolderBatches:
        """The ``hold_out`` images as evaluation batches (the validation transform, every image, whole batches
        dealt by ``deal``), sharing this folder's file list."""
        if not len(self.held):
            raise EGSError("this split holds no images out (hold_out=0); pass hold_out > 0 to validate on some.")
        held = copy.copy(self)
        held.dataset = copy.copy(self.dataset)
        held.dataset.transform = _transform(False, self.image_size)
        held.train, held.batch_size, held.indices, held.held = False, batch_size, self.held, self.held[:0]
        held.rank, held.world, held.deal = 0, 1, deal
        return held

    def __len__(self) -> int:
        n = len(self.indices)
        return n // self.batch_size if self.train else -(-n // self.batch_size)

    def batches(self, epoch: int, start_step: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        from torch.utils.data import DataLoader, Subset
        order = self.indices
        if self.train:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = order[torch.randperm(len(order), generator=g)][: len(self) * self.batch_size]
        order = order[start_step * self.batch_size:]
        if self.deal[1] > 1:  # whole batches dealt round-robin (evaluation), decoded by one rank only
            chunks = order.split(self.batch_size)
            order = torch.cat([c for i, c in enumerate(chunks) if (start_step + i) % self.deal[1] == self.deal[0]]
                              or [order[:0]])
        part = self.batch_size // self.world  # this rank's rows of every global batch
        order = order.view(-1, self.batch_size)[:, self.rank * part:(self.rank + 1) * part].reshape(-1) \
            if self.world > 1 else order
        loader = DataLoader(Subset(self.dataset, order.tolist()), batch_size=part, shuffle=False,
                            num_workers=self.workers, pin_memory=self.device.type == "cuda")
        for x, y in loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
