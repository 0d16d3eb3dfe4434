"""What recurrent search (:mod:`egs.rnn.search`) and language-model training (:mod:`egs.rnn.train`) share.

The corpus streams of a run (:class:`LMData`), the hidden state carried across BPTT windows and saved with the
checkpoint (:class:`Carried`), the loss of one window (:func:`lm_loss`, with DARTS's TAR:
:func:`temporal_activation_reg`), summed negative log-likelihoods over a stream (:func:`nll_sums`) and
:func:`perplexity`.

Under torchrun (:mod:`egs.engine.distributed`) the ``batch_size`` streams of the training stream are
split over the ranks (each carries the hidden state of its own streams) and DDP averages the
gradients; evaluation splits the ``eval_batch_size`` streams likewise and adds the sums.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F

from egs.core.errors import EGSError
from egs.data.corpus import Corpus, batchify, epoch_windows, get_batch
from egs.engine import distributed
from egs.profiles.experiments import LMSettings


class Carried:
    """The hidden state (1, streams, nhid) carried from step to step, saved with the checkpoint.

    Under torchrun each rank carries its own streams; the checkpoint holds all of them in stream
    order, and a resuming rank takes its own share, whatever the number of processes.
    """

    def __init__(self, value: torch.Tensor, ctx: distributed.Context) -> None:
        self.value, self.ctx = value, ctx

    def state_dict(self) -> torch.Tensor:
        return torch.cat([v.to(self.value.device) for v in distributed.gather_object(self.value.cpu(), self.ctx)], 1)

    def load_state_dict(self, state: torch.Tensor) -> None:
        self.value = state[:, distributed.shard(state.shape[1], self.ctx)].to(self.value.device)


_TOKENS = {"train": "train_tokens", "valid": "val_tokens", "test": "test_tokens"}  # the setting that sizes each split


def _stream(corpus: Corpus, split: str, tokens: int, batch_size: int, device: torch.device) -> torch.Tensor:
    data = corpus.split(split)
    if tokens > len(data):
        what = _TOKENS.get(split, "tokens")
        raise EGSError(f"{what}={tokens} is more than the {len(data)} tokens of the {split} split; set {what} <= "
                       f"{len(data)}, or 0 for all of them.")
    return batchify(data[:tokens] if tokens else data, batch_size, device)


@torch.no_grad()
def nll_sums(forward: Callable, data: torch.Tensor, bptt: int, hidden: torch.Tensor) -> tuple[float, int]:
    """Summed negative log-likelihood and token count over a batchified stream, hidden carried across windows."""
    total, count = 0.0, 0
    for i in range(0, len(data) - 1, bptt):
        x, y = get_batch(data, i, bptt)
        logp, hidden = forward(x, hidden)
        total += F.nll_loss(logp.reshape(-1, logp.shape[-1]), y.reshape(-1), reduction="sum").item()
        count += y.numel()
    return total, count


def perplexity(nll):
    """Perplexity of a mean NLL (a float, or a tensor without reading it to the host), capped at exp(50)."""
    if isinstance(nll, torch.Tensor):
        return nll.clamp(max=50.0).exp()
    return math.exp(min(nll, 50.0))


class LMData:
    """A language-model run's corpus and streams: this rank's share of the training streams, the
    validation streams, the epoch's BPTT windows and the evaluation of a model on a stream."""

    def __init__(self, cfg: LMSettings, ctx: distributed.Context, device: torch.device, data_root=None,
                 variable_bptt: bool = False) -> None:
        self.cfg, self.ctx, self.device, self.variable_bptt = cfg, ctx, device, variable_bptt
        self.corpus = Corpus(cfg.corpus, root=data_root)
        self.local_batch = distributed.local_batch(cfg.batch_size, ctx)
        train = self.stream("train", cfg.train_tokens, cfg.batch_size)
        self.train = train[:, distributed.shard(cfg.batch_size, ctx)]  # this rank's streams
        self.val = self.stream("valid", cfg.val_tokens, cfg.eval_batch_size)
        if len(self.train) < 3:
            raise EGSError(f"train_tokens={cfg.train_tokens} gives {len(self.train)} rows at batch_size="
                           f"{cfg.batch_size}; use more tokens or a smaller batch.")
        self.lr = distributed.scaled_lr(cfg.lr, cfg.batch_size, cfg.lr_reference_batch)

    @property
    def ntoken(self) -> int:
        return len(self.corpus.vocab)

    def stream(self, split: str, tokens: int, batch_size: int) -> torch.Tensor:
        """``tokens`` (0: all) of ``split`` as ``batch_size`` streams, (T, B) on the run's device."""
        return _stream(self.corpus, split, tokens, batch_size, self.device)

    def windows(self, epoch: int) -> list[tuple[int, int]]:
        return epoch_windows(len(self.train), self.cfg.bptt, self.cfg.seed, epoch, variable=self.variable_bptt)

    def batches(self, epoch: int, start_step: int) -> Iterator[Any]:
        for i, length in self.windows(epoch)[start_step:]:
            yield (*get_batch(self.train, i, length), length)

    def nll(self, forward: Callable, data: torch.Tensor, init_hidden: Callable[[int], torch.Tensor],
            split: bool = True) -> float:
        """Mean NLL per token of ``data`` (batchified); under torchrun each rank takes some of its streams
        (``split``), or all ranks evaluate all of them (batch-normalised search cells, whose statistics
        are taken across the streams)."""
        if not split:
            total, count = nll_sums(forward, data, self.cfg.bptt, init_hidden(data.shape[1]))
            return total / count
        streams = torch.tensor_split(torch.arange(data.shape[1]), self.ctx.world)[self.ctx.rank]
        total, count = nll_sums(forward, data[:, streams.to(data.device)], self.cfg.bptt,
                                init_hidden(len(streams))) if len(streams) else (0.0, 0)
        total, count = distributed.all_sum([total, count], self.ctx, self.device)
        return total / count


def temporal_activation_reg(h: torch.Tensor, beta: float) -> torch.Tensor:
    """Temporal activation regularisation (Merity et al., 2018, AWD-LSTM; DARTS's ``--beta``, quark0/darts
    rnn/train.py and rnn/train_search.py): ``beta * mean((h[1:] - h[:-1])^2)`` over the raw cell outputs h
    (T, B, nhid) of the (one) layer; 0 for a window of one step, which has no difference."""
    return beta * (h[1:] - h[:-1]).pow(2).mean() if len(h) > 1 else h.new_zeros(())


def lm_loss(forward: Callable, x: torch.Tensor, y: torch.Tensor, hidden: torch.Tensor, tar_beta: float = 0.0,
            **kw: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean next-token NLL of ``forward(x, hidden, **kw)`` against ``y``, and the new hidden state (tokens
    not re-checked: they come from the corpus's own vocabulary).

    ``tar_beta`` > 0 adds DARTS's TAR (:func:`temporal_activation_reg`, on ``forward``'s raw outputs, ``return_h``)
    to the gradient as ``tar - tar.detach()``: the value stays exactly the NLL, which DARTS logs (``raw_loss``) and
    the perplexities read. ``tar_beta`` 0 runs the plain NLL (no ``return_h``)."""
    if not tar_beta:
        logp, hidden = forward(x, hidden, check_tokens=False, **kw)
        return F.nll_loss(logp.reshape(-1, logp.shape[-1]), y.reshape(-1)), hidden
    logp, hidden, h = forward(x, hidden, check_tokens=False, return_h=True, **kw)
    tar = temporal_activation_reg(h, tar_beta)
    return F.nll_loss(logp.reshape(-1, logp.shape[-1]), y.reshape(-1)) + (tar - tar.detach()), hidden
