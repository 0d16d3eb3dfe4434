"""Training a genotype from scratch: CIFAR-10 (Table 1) and ImageNet mobile (Table 2).

DARTS's evaluation recipe, which the paper inherits (Sec. 4.1.2-4.1.3): SGD with momentum, a cosine
(CIFAR) or poly (ImageNet) learning-rate schedule, an auxiliary tower weighted 0.4, drop-path
increased linearly to its final value, cutout, gradient clipping, label smoothing for ImageNet.
On CUDA the step runs under autocast (bf16 where supported, else fp16 with a gradient scaler) on
channels_last tensors, and ``compile`` wraps the network in ``torch.compile``.

Runs use the same directory layout, checkpoints and exact resume as search (:mod:`egs.engine.loop`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from egs.engine import distributed
from egs.conv.macs import fit_width, width_fitted
from egs.conv.network import count_parameters
from egs.core.errors import EGSError
from egs.core.files import write_json
from egs.arch.genotype import Genotype, save_genotype
from egs.engine.loop import EpochLoop
from egs.engine.memory import allocate_network
from egs.profiles.experiments import TrainSettings


def build_network(genotype: Genotype, cfg: TrainSettings, num_classes: int) -> nn.Module:
    """The evaluation network of ``genotype`` at the settings' size (auxiliary tower if weighted)."""
    from egs.conv.evalnet import eval_network
    return eval_network(genotype, cfg.dataset, cfg.C, cfg.layers, num_classes, auxiliary=cfg.auxiliary_weight > 0)


EVAL_BATCH = 256  # images per evaluation batch (validation and test)
DATA_SEED = 0  # which images the subsets hold: the same for every training seed (seeds vary the training only)


def build_data(cfg: TrainSettings, device: torch.device, root=None, shard: tuple[int, int] = (0, 1)):
    """Training, validation and test batches: CIFAR-10 train/test sets, or ImageNet train/val folders.

    ``val_size`` > 0 holds that many (class-balanced) images out of the training set for the per-epoch
    validation; the training subset (``train_size``) is drawn from the rest, the test subset
    (``test_size``) from the test set, all with :data:`DATA_SEED`, so every training seed sees the same
    images. ``shard`` is ``(rank, world)`` of a data-parallel run: each rank gets its rows of every
    training batch and every ``world``-th evaluation batch (see :mod:`egs.engine.distributed`). Returns
    ``(train, val or None, test)``.
    """
    if cfg.dataset == "imagenet":
        from egs.data.imagenet import FolderBatches, locate_imagenet
        folder = locate_imagenet(root)  # the ILSVRC-2012 val folder is the test set; val_size comes out of train/
        kw = dict(seed=cfg.seed, image_size=cfg.image_size, workers=cfg.workers, device=device)
        train = FolderBatches(folder / "train", cfg.batch_size, train=True, size=cfg.train_size, shard=shard,
                              hold_out=cfg.val_size, hold_out_seed=DATA_SEED + 1, **kw)
        return (train, train.held_out(cfg.batch_size, deal=shard) if cfg.val_size else None,
                FolderBatches(folder / "val", cfg.batch_size, train=False, size=cfg.test_size, deal=shard, **kw))
    from egs.data.cifar import TensorBatches, load_cifar10, subset
    images, labels = load_cifar10(train=True, root=root)
    rest = torch.arange(len(images))
    val_idx = subset(rest, cfg.val_size, DATA_SEED + 1, labels=labels, what="val_size",
                     pool="CIFAR-10 training images") if cfg.val_size else None
    if val_idx is not None:
        rest = rest[~torch.isin(rest, val_idx)]
    train_idx = subset(rest, cfg.train_size, DATA_SEED, labels=labels, what="train_size",
                       pool="CIFAR-10 training images outside the validation slice") if cfg.train_size else rest
    test_images, test_labels = load_cifar10(train=False, root=root)
    test_idx = subset(torch.arange(len(test_images)), cfg.test_size, DATA_SEED, labels=test_labels,
                      what="test_size", pool="CIFAR-10 test images") if cfg.test_size else torch.arange(len(test_images))
    kw = dict(seed=cfg.seed, image_size=cfg.image_size, device=device)
    train = TensorBatches(images[train_idx], labels[train_idx], cfg.batch_size, augment=True, cutout=cfg.cutout,
                          shard=shard, channels_last=cfg.channels_last and device.type == "cuda", **kw)
    # Evaluation (eval mode: no BatchNorm statistics, so the batch changes nothing but speed) in batches of
    # EVAL_BATCH, channels-last on CPU too: 3-4x faster there than the training batch in NCHW (benchmarks/README.md)
    fast = device.type == "cpu" or cfg.channels_last
    evaluation = dict(augment=False, drop_last=False, deal=shard, channels_last=fast, **kw)
    val = TensorBatches(images[val_idx], labels[val_idx], EVAL_BATCH, **evaluation) if val_idx is not None else None
    return train, val, TensorBatches(test_images[test_idx], test_labels[test_idx], EVAL_BATCH, **evaluation)


def _logits(out: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Split a network's output into (logits, auxiliary logits or None)."""
    return (out[0], out[1]) if isinstance(out, tuple) else (out, None)


class Trainer(EpochLoop):
    """Train ``genotype`` from scratch in a run directory (resumable), then report test error."""

    label, settings_type, experiment = "train", TrainSettings, "train_cifar"
    cfg: TrainSettings

    def __init__(self, cfg: TrainSettings, genotype: Genotype, run_dir: str | Path, resume: bool = False,
                 data_root=None, progress: bool = True) -> None:
        self.genotype = genotype
        if isinstance(cfg, TrainSettings) and not width_fitted(genotype, cfg):  # before config.json records C
            fitted = fit_width(genotype, cfg).C  # (raises the clear error when no width fits)
            raise EGSError(f"C={cfg.C} is not the width that max_madds={cfg.max_madds:,} fits (C={fitted}): train "
                           f"egs.conv.macs.fit_width(genotype, cfg), as `egs train` does, or set max_madds=0 to "
                           f"train C={cfg.C}.")
        super().__init__(cfg, run_dir, resume, progress, record={"genotype": genotype.to_dict()})
        self.train, self.val, self.test = build_data(cfg, self.device, data_root, (self.dist.rank, self.dist.world))
        classes = getattr(self.train, "num_classes", 10)
        torch.manual_seed(cfg.seed)
        model = allocate_network(lambda: build_network(genotype, cfg, classes), self.device, cfg,
                                 "evaluation network", key=("train", genotype, cfg.dataset, cfg.C, cfg.layers,
                                                            classes, cfg.auxiliary_weight > 0))
        if self.device.type == "cuda" and cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        # Training runs through DDP (several processes); evaluation on the plain module, since each
        # rank evaluates its own share of the test batches.
        ddp = distributed.wrap(model, self.dist, self.device)
        forward = torch.compile(ddp) if cfg.compile else ddp
        self.eval_forward = forward if ddp is model else (torch.compile(model) if cfg.compile else model)
        lr, lr_min = (distributed.scaled_lr(v, cfg.batch_size, cfg.lr_reference_batch) for v in (cfg.lr, cfg.lr_min))
        self.opt = torch.optim.SGD(model.parameters(), lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        if cfg.schedule == "cosine":
            self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, cfg.epochs, eta_min=lr_min)
        else:
            self.sched = torch.optim.lr_scheduler.LambdaLR(
                self.opt, lambda e: max(0.0, 1 - e / cfg.epochs) ** cfg.poly_power)
        self.start(model, {"opt": self.opt, "sched": self.sched}, forward)
        if self.dist.main:
            save_genotype(genotype, self.dir / "genotype.json")

    def steps_per_epoch(self) -> int:
        return len(self.train)

    def batches(self, epoch: int, start_step: int) -> Iterator[Any]:
        return self.train.batches(epoch, start_step)

    def begin_epoch(self) -> None:
        self.model.drop_prob = self.cfg.drop_path * self.epoch / self.cfg.epochs  # DARTS: linear increase

    def _loss(self, x: torch.Tensor, y: torch.Tensor):
        logits, aux = _logits(self.forward(x, with_aux=True))
        loss = F.cross_entropy(logits, y, label_smoothing=self.cfg.label_smoothing)
        if aux is not None:
            loss = loss + self.cfg.auxiliary_weight * F.cross_entropy(aux, y, label_smoothing=self.cfg.label_smoothing)
        return loss, logits

    def train_step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, Any]:
        x, y = batch
        self.model.train()
        self.opt.zero_grad(set_to_none=True)
        value, logits = self.backward((x, y), self._loss)
        self.update([self.opt], clip=self.model.parameters())
        correct, n = (logits.argmax(1) == y).sum(), len(y)  # tensors: read only when logged
        return {"loss": value * n, "correct": correct, "n": n, "log": {"loss": value, "acc": correct / n}}

    @torch.no_grad()
    def evaluate(self, split: str = "test") -> dict[str, float]:
        """Loss, top-1 and top-5 error on ``split`` ("val" or "test") of the current weights (eval mode: no
        aux, no drop-path); under torchrun each rank evaluates every N-th batch and the sums are added."""
        self.model.eval()
        loss_sum, top1, top5, n = 0.0, 0, 0, 0
        for x, y in getattr(self, split).batches(0):  # under torchrun, this rank's share of the batches
            with self.precision.autocast():
                logits, _ = _logits(self.eval_forward(x))
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").item()
            best = logits.topk(min(5, logits.shape[1]), dim=1).indices
            top1 += int((best[:, 0] == y).sum())
            top5 += int((best == y[:, None]).any(1).sum())
            n += len(y)
        self.model.train()
        loss_sum, top1, top5, n = distributed.all_sum([loss_sum, top1, top5, n], self.dist, self.device)
        return {f"{split}_loss": loss_sum / n, f"{split}_top1_err": 1 - top1 / n, f"{split}_top5_err": 1 - top5 / n}

    def end_epoch(self) -> dict[str, Any]:
        """The epoch's training sums and its validation (the held-out slice; without one, the test set, as
        DARTS logs it)."""
        s = self.sums
        record = {"train_loss": s["loss"] / s["n"], "train_acc": s["correct"] / s["n"],
                  "lr": self.sched.get_last_lr()[0], "drop_prob": self.model.drop_prob,
                  **self.evaluate("val" if self.val is not None else "test")}
        self.sched.step()
        return record

    def finish(self) -> dict[str, Any]:
        """The test set evaluated once, at the end; the last epoch's validation beside it."""
        epochs = [r for r in self.log.read() if r["type"] == "epoch"]
        final = self.evaluate("test")
        summary = self.cost() | {
            "dataset": self.cfg.dataset, "genotype": str(self.dir / "genotype.json"),
            "test_top1_err": final["test_top1_err"], "test_top5_err": final["test_top5_err"],
            **({"val_top1_err": epochs[-1]["val_top1_err"]} if self.val is not None and epochs else {}),
            "params": count_parameters(self.model, exclude=("auxiliary",)),
            "params_with_aux": count_parameters(self.model),
            "batch_per_process": self.cfg.batch_size // self.dist.world,
            "lr": distributed.scaled_lr(self.cfg.lr, self.cfg.batch_size, self.cfg.lr_reference_batch),
        }
        if self.dist.main:
            write_json(self.dir / "summary.json", summary)
        return summary


def train(cfg: TrainSettings, genotype: Genotype, run_dir: str | Path, resume: bool = False,
          data_root=None, progress: bool = True) -> dict[str, Any]:
    """Train ``genotype`` from scratch with settings ``cfg`` in ``run_dir`` (or resume it there), with data from
    ``data_root`` (default: the data dir) and a progress bar if ``progress``; return the run's summary."""
    return Trainer(cfg, genotype, run_dir, resume=resume, data_root=data_root, progress=progress).run()

