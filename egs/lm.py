"""Recurrent cell search on Penn Treebank and language-model training (Sec. 4.2).

* :class:`RNNSearch`: EGS search over the recurrent cell (:class:`egs.rnn.RNNSupernet`) with DARTS's
  PTB search recipe: SGD (lr 20) on the weights, Adam on the logits, joint (Eq. 9) or first-order
  bilevel updates, fixed-length BPTT windows, the hidden state carried across windows.
* :class:`LMTrainer`: a genotype's language model (:class:`egs.rnn.RNNModel`) trained from scratch
  with AWD-LSTM/DARTS's recipe: variable-length BPTT with the learning rate scaled by the window
  length, gradient clipping, NT-ASGD (switch from SGD to averaged SGD once validation stops
  improving; the averaged weights are evaluated), no fine-tuning.

Both run in a run directory with exact resume (:mod:`egs.loop`); the carried hidden state, the
window position and the optimizer kind are part of the checkpoint.

Under torchrun (:mod:`egs.distributed`) the ``batch_size`` streams of the training stream are
split over the ranks (each carries the hidden state of its own streams) and DDP averages the
gradients; evaluation splits the ``eval_batch_size`` streams likewise and adds the sums.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F

from egs import distributed
from egs.corpus import Corpus, batchify, epoch_windows, get_batch
from egs.diagnostics import alpha_zero_genotype, normalised_entropy
from egs.errors import EGSError
from egs.files import write_json
from egs.genotype import Genotype, save_genotype
from egs.archsearch import ArchitectureSearch, mean_active_ops
from egs.loop import EpochLoop
from egs.runtime import batch_statistics
from egs.profiles import LMSettings, LMTrainSettings, RNNSearchSettings
from egs.rnn import RNNModel, RNNSupernet
from egs.space import get_space

PAPER_EVAL = {"ptb": 850, "wikitext2": 700}  # embedding = hidden size of the paper-size models


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


def _stream(corpus: Corpus, split: str, tokens: int, batch_size: int, device: torch.device) -> torch.Tensor:
    data = corpus.split(split)
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


def _ppl(nll):
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


def lm_loss(forward: Callable, x: torch.Tensor, y: torch.Tensor, hidden: torch.Tensor,
            **kw: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean next-token NLL of ``forward(x, hidden, **kw)`` against ``y``, and the new hidden state (tokens
    not re-checked: they come from the corpus's own vocabulary)."""
    logp, hidden = forward(x, hidden, check_tokens=False, **kw)
    return F.nll_loss(logp.reshape(-1, logp.shape[-1]), y.reshape(-1)), hidden


def _supernet(cfg: RNNSearchSettings, ntoken: int) -> RNNSupernet:
    return RNNSupernet(ntoken, cfg.emb, cfg.emb, M=cfg.M, lam=cfg.lam, tau=cfg.tau_start, dropout=cfg.dropout,
                       dropouth=cfg.dropouth, dropoutx=cfg.dropoutx, dropouti=cfg.dropouti, dropoute=cfg.dropoute,
                       space=cfg.space, effectiveness=cfg.effectiveness)


class RNNSearch(ArchitectureSearch):
    """EGS search over the recurrent cell on PTB (or WikiText-2)."""

    label, settings_type, experiment = "rnn search", RNNSearchSettings, "rnn_search"
    score_name = "minus search-val NLL per token (perplexity = exp(-score))"  # what :meth:`score` measures
    cfg: RNNSearchSettings
    model: RNNSupernet

    def __init__(self, cfg: RNNSearchSettings, run_dir: str | Path, resume: bool = False, data_root=None,
                 progress: bool = True) -> None:
        super().__init__(cfg, run_dir, resume, progress)
        self.data = d = LMData(cfg, self.dist, self.device, data_root)
        self.search_val = d.stream("valid", cfg.val_tokens, cfg.batch_size)[:, distributed.shard(cfg.batch_size, self.dist)]
        torch.manual_seed(cfg.seed)
        m = _supernet(cfg, d.ntoken).to(self.device)
        w_opt = torch.optim.SGD(m.weight_parameters(), d.lr, weight_decay=cfg.weight_decay)
        self.hidden = Carried(m.init_hidden(d.local_batch), self.dist)
        forward = distributed.wrap(m, self.dist, self.device, sparse=True)  # DDP: codes switch ops off
        self.start_search(m, w_opt, {"hidden": self.hidden}, forward)

    def steps_per_epoch(self) -> int:
        return len(self.data.windows(self.epoch))

    def batches(self, epoch: int, start_step: int) -> Iterator[Any]:
        return self.data.batches(epoch, start_step)

    def begin_epoch(self) -> None:
        super().begin_epoch()
        if self.step == 0:  # a new epoch starts from a zero hidden state (DARTS/AWD-LSTM)
            self.hidden.value = self.model.init_hidden(self.data.local_batch)

    def loss(self, codes: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, hidden: torch.Tensor):
        return lm_loss(self.forward, x, y, hidden, codes=codes)

    @classmethod
    def supernet_from(cls, cfg: RNNSearchSettings, state) -> RNNSupernet:
        model = _supernet(cfg, state["net.encoder.weight"].shape[0])
        model.load_state_dict(state)
        return model

    def val_nll(self, codes: dict[str, torch.Tensor], data: torch.Tensor) -> float:
        """Mean NLL of ``codes`` on ``data`` with the shared weights (BatchNorm with batch statistics: the
        supernet's running statistics mix all sampled cells)."""
        m = self.model
        with batch_statistics(m):
            return self.data.nll(lambda inp, h: m(inp, h, codes=codes), data, m.init_hidden, split=False)

    def score(self, codes: dict[str, torch.Tensor]) -> float:
        """Minus the search-val NLL of ``codes`` on the first ``select_batches`` BPTT windows."""
        return -self.val_nll(codes, self.data.val[: self.cfg.select_batches * self.cfg.bptt + 1])

    @staticmethod
    def describe_score(score: float) -> str:
        return f"search-val perplexity {_ppl(-score):.2f}"

    def rule_metrics(self, codes: dict[str, torch.Tensor]) -> dict[str, float]:
        """Perplexity of ``codes`` with the shared weights on the ``select`` windows (what :meth:`score` ranks by)
        and on the rest of search-val (no target shared with them; hidden state from zero)."""
        rest = self.data.val[self.cfg.select_batches * self.cfg.bptt:]
        return {"select_ppl": _ppl(-self.score(codes)), "heldout_ppl": _ppl(self.val_nll(codes, rest))}

    def arch_batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A fixed-length search-val window, from a zero hidden state."""
        bptt = self.cfg.bptt
        i = (self.step * bptt) % max(1, len(self.search_val) - 1 - bptt)
        return (*get_batch(self.search_val, i, bptt), self.model.init_hidden(self.data.local_batch))

    def train_step(self, batch) -> dict[str, Any]:
        x, y, _ = batch
        loss, hidden, codes = self.search_step((x, y, self.hidden.value.detach()), dim=1)
        self.hidden.value = hidden
        active, n = mean_active_ops(codes), y.numel()
        return {"loss": loss * n, "n": n, "active": active, "steps": 1,
                "log": {"loss": loss, "ppl": _ppl(loss), "active_ops": active}}

    def end_epoch(self) -> dict[str, Any]:
        m, s = self.model, self.sums
        genotype, _ = self.derive(self.epoch + 1)
        val = self.val_nll(m.genotype_codes(genotype), self.data.val)
        self.save_epoch_genotype(genotype)
        p = m.probabilities()["normal"].detach()
        return {"train_loss": s["loss"] / s["n"], "train_ppl": _ppl(s["loss"] / s["n"]), "val_loss": val,
                "val_ppl": _ppl(val), "tau": m.tau, "sampled_active_ops": s["active"] / s["steps"],
                "expected_active_ops": m.expected_active_ops()["normal"], "entropy": m.edge_entropy()["normal"],
                "entropy_h": m.edge_entropy("h")["normal"], "derived_ops": genotype.num_active_ops(),
                "p": p.cpu().tolist()}

    def finish(self) -> dict[str, Any]:
        genotype, record = self.derive(self.epoch)
        epochs = [r for r in self.log.read() if r["type"] == "epoch"]
        zero = alpha_zero_genotype(self.model, self.cfg.rule)
        return self.write_results(genotype, record, self.cost() | {
            "final_val_ppl": epochs[-1]["val_ppl"],
            "final_val_ppl_alpha0": _ppl(self.val_nll(self.model.genotype_codes(zero), self.data.val)),
            "alpha0_genotype": zero.to_dict(), "entropy_h": normalised_entropy(self.model)["normal"],
            "derived_ops": genotype.num_active_ops(),
            "params_supernet": sum(p.numel() for p in self.model.weight_parameters()),
            "params_derived_paper_size": _paper_params(genotype, self.cfg.corpus, self.data.ntoken)})


def _paper_params(genotype: Genotype, corpus: str, ntoken: int) -> int:
    """Parameters of the paper-size language model of ``genotype`` (built on ``meta``: no memory)."""
    emb = PAPER_EVAL[corpus]
    with torch.device("meta"):
        return sum(p.numel() for p in RNNModel(ntoken, emb, emb, genotype).parameters())


class NTASGD:
    """Non-monotonically triggered ASGD (AWD-LSTM): SGD until the validation loss stops improving."""

    def __init__(self, params: list, lr: float, weight_decay: float, nonmono: int) -> None:
        self.params, self.lr, self.wd, self.nonmono = params, lr, weight_decay, nonmono
        self.kind, self.history = "sgd", []
        self.opt: torch.optim.Optimizer = torch.optim.SGD(params, lr, weight_decay=weight_decay)

    def _switch(self) -> None:
        self.kind = "asgd"
        self.opt = torch.optim.ASGD(self.params, self.lr, t0=0, lambd=0.0, weight_decay=self.wd)

    def observe(self, val_loss: float) -> None:
        """After an epoch: switch to ASGD if ``val_loss`` is worse than the best but ``nonmono`` last."""
        if self.kind == "sgd" and len(self.history) > self.nonmono and val_loss > min(self.history[:-self.nonmono]):
            self._switch()
        self.history.append(val_loss)

    def averaged(self):
        """Context manager swapping in the averaged weights (ASGD), for evaluation."""
        from contextlib import contextmanager

        @contextmanager
        def swap():
            saved = []
            if self.kind == "asgd":
                for p in self.params:
                    ax = self.opt.state.get(p, {}).get("ax")
                    if ax is not None:
                        saved.append((p, p.data.clone()))
                        p.data.copy_(ax)
            try:
                yield
            finally:
                for p, data in saved:
                    p.data.copy_(data)
        return swap()

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "history": list(self.history), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["kind"] == "asgd" and self.kind != "asgd":
            self._switch()
        self.history = list(state["history"])
        self.opt.load_state_dict(state["opt"])


class LMTrainer(EpochLoop):
    """Train a recurrent genotype's language model from scratch, then report valid/test perplexity."""

    label, settings_type, experiment = "lm train", LMTrainSettings, "lm_train_ptb"
    cfg: LMTrainSettings

    def __init__(self, cfg: LMTrainSettings, genotype: Genotype, run_dir: str | Path, resume: bool = False,
                 data_root=None, progress: bool = True) -> None:
        if get_space(genotype.space).family != "rnn":
            raise EGSError(f"a language model needs a recurrent-family genotype, got space {genotype.space!r} "
                           f"({get_space(genotype.space).family} family); pass a cell of an rnn-family space.")
        self.genotype = genotype
        super().__init__(cfg, run_dir, resume, progress, record={"genotype": genotype.to_dict()})
        self.data = d = LMData(cfg, self.dist, self.device, data_root, variable_bptt=True)
        self.test = d.stream("test", cfg.test_tokens, cfg.eval_batch_size)
        torch.manual_seed(cfg.seed)
        model = RNNModel(d.ntoken, cfg.emb, cfg.emb, genotype, dropout=cfg.dropout, dropouth=cfg.dropouth,
                         dropoutx=cfg.dropoutx, dropouti=cfg.dropouti, dropoute=cfg.dropoute).to(self.device)
        self.opt = NTASGD(list(model.parameters()), d.lr, cfg.weight_decay, cfg.nonmono)
        self.hidden = Carried(model.init_hidden(d.local_batch), self.dist)
        self.start(model, {"opt": self.opt, "hidden": self.hidden}, distributed.wrap(model, self.dist, self.device))
        if self.dist.main:
            save_genotype(genotype, self.dir / "genotype.json")

    def steps_per_epoch(self) -> int:
        return len(self.data.windows(self.epoch))

    def batches(self, epoch: int, start_step: int) -> Iterator[Any]:
        return self.data.batches(epoch, start_step)

    def begin_epoch(self) -> None:
        if self.step == 0:  # a new epoch starts from a zero hidden state (DARTS/AWD-LSTM)
            self.hidden.value = self.model.init_hidden(self.data.local_batch)

    def train_step(self, batch) -> dict[str, Any]:
        x, y, length = batch
        opt, lr = self.opt.opt, self.data.lr
        opt.param_groups[0]["lr"] = lr * length / self.cfg.bptt  # AWD-LSTM: scale by window length
        opt.zero_grad(set_to_none=True)
        loss, self.hidden.value = self.backward((x, y, self.hidden.value.detach()),
                                                lambda *part: lm_loss(self.forward, *part), dim=1)
        self.update([opt], clip=self.model.parameters())
        opt.param_groups[0]["lr"] = lr
        n = y.numel()
        return {"loss": loss * n, "n": n, "log": {"loss": loss, "ppl": _ppl(loss)}}

    def _evaluate(self, data: torch.Tensor) -> float:
        self.model.eval()
        with self.opt.averaged():
            nll = self.data.nll(self.model, data, self.model.init_hidden)
        self.model.train()
        return nll

    def end_epoch(self) -> dict[str, Any]:
        val = self._evaluate(self.data.val)
        kind = self.opt.kind
        self.opt.observe(val)
        s = self.sums
        return {"train_loss": s["loss"] / s["n"], "train_ppl": _ppl(s["loss"] / s["n"]), "val_loss": val,
                "val_ppl": _ppl(val), "optimizer": kind, "switched_to_asgd": kind != self.opt.kind}

    def finish(self) -> dict[str, Any]:
        val, test = self._evaluate(self.data.val), self._evaluate(self.test)
        summary = self.cost() | {
            "corpus": self.cfg.corpus, "genotype": str(self.dir / "genotype.json"),
            "val_ppl": _ppl(val), "test_ppl": _ppl(test), "optimizer": self.opt.kind,
            "params": sum(p.numel() for p in self.model.parameters()),
            "params_paper_size": _paper_params(self.genotype, self.cfg.corpus, self.data.ntoken),
            "batch_per_process": self.data.local_batch, "lr": self.data.lr}
        if self.dist.main:
            write_json(self.dir / "summary.json", summary)
        return summary


def rnn_search(cfg: RNNSearchSettings, run_dir: str | Path, resume: bool = False, data_root=None,
               progress: bool = True) -> dict[str, Any]:
    """Run (or ``resume``) a recurrent-cell search with settings ``cfg`` in ``run_dir`` (data from ``data_root``,
    progress bar if ``progress``); return its summary."""
    return RNNSearch(cfg, run_dir, resume=resume, data_root=data_root, progress=progress).run()


def train_lm(cfg: LMTrainSettings, genotype: Genotype, run_dir: str | Path, resume: bool = False,
             data_root=None, progress: bool = True) -> dict[str, Any]:
    """Train (or ``resume``) the language model of a recurrent ``genotype`` with settings ``cfg`` in
    ``run_dir`` (data from ``data_root``, progress bar if ``progress``); return its summary."""
    return LMTrainer(cfg, genotype, run_dir, resume=resume, data_root=data_root, progress=progress).run()
