"""Language-model training of a recurrent genotype from scratch (Tables 3-4).

:class:`LMTrainer`: a genotype's language model (:class:`egs.rnn.model.RNNModel`) trained with AWD-LSTM/DARTS's
recipe: variable-length BPTT with the learning rate scaled by the window length, gradient clipping, TAR on the
raw cell outputs (``tar_beta``), NT-ASGD (switch from SGD to averaged SGD once validation stops improving; the
averaged weights are evaluated), no fine-tuning; the test split read as ``test_batch_size`` streams (DARTS: one).
It runs in a run directory with exact resume (:mod:`egs.engine.loop`); the carried hidden state, the window
position and the optimizer kind are part of the checkpoint.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import torch

from egs.arch.genotype import Genotype, save_genotype
from egs.arch.space import get_space
from egs.core.errors import EGSError
from egs.core.files import write_json
from egs.engine import distributed
from egs.engine.memory import allocate_network
from egs.engine.loop import EpochLoop
from egs.profiles.experiments import LMTrainSettings
from egs.rnn.lm import Carried, LMData, lm_loss, perplexity
from egs.rnn.model import RNNModel, paper_params


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
        self.test = d.stream("test", cfg.test_tokens, cfg.test_batch_size)  # DARTS rnn/train.py: test_batch_size = 1
        torch.manual_seed(cfg.seed)
        model = allocate_network(lambda: RNNModel(d.ntoken, cfg.emb, cfg.emb, genotype, dropout=cfg.dropout,
                                                  dropouth=cfg.dropouth, dropoutx=cfg.dropoutx, dropouti=cfg.dropouti,
                                                  dropoute=cfg.dropoute),
                                 self.device, cfg, "language model", fix="lower emb (--set emb=...)",
                                 key=("lm train", genotype, cfg.emb, d.ntoken))
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
                                                lambda *part: lm_loss(self.forward, *part, tar_beta=self.cfg.tar_beta),
                                                dim=1)
        self.update([opt], clip=self.model.parameters())
        opt.param_groups[0]["lr"] = lr
        n = y.numel()
        return {"loss": loss * n, "n": n, "log": {"loss": loss, "ppl": perplexity(loss)}}

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
        return {"train_loss": s["loss"] / s["n"], "train_ppl": perplexity(s["loss"] / s["n"]), "val_loss": val,
                "val_ppl": perplexity(val), "optimizer": kind, "switched_to_asgd": kind != self.opt.kind}

    def finish(self) -> dict[str, Any]:
        val, test = self._evaluate(self.data.val), self._evaluate(self.test)
        summary = self.cost() | {
            "corpus": self.cfg.corpus, "genotype": str(self.dir / "genotype.json"),
            "val_ppl": perplexity(val), "test_ppl": perplexity(test), "optimizer": self.opt.kind,
            "params": sum(p.numel() for p in self.model.parameters()),
            "params_paper_size": paper_params(self.genotype, self.cfg.corpus, self.data.ntoken),
            "batch_per_process": self.data.local_batch, "lr": self.data.lr}
        if self.dist.main:
            write_json(self.dir / "summary.json", summary)
        return summary


def train_lm(cfg: LMTrainSettings, genotype: Genotype, run_dir: str | Path, resume: bool = False,
             data_root=None, progress: bool = True) -> dict[str, Any]:
    """Train (or ``resume``) the language model of a recurrent ``genotype`` with settings ``cfg`` in
    ``run_dir`` (data from ``data_root``, progress bar if ``progress``); return its summary."""
    return LMTrainer(cfg, genotype, run_dir, resume=resume, data_root=data_root, progress=progress).run()
