"""Recurrent cell search on Penn Treebank (Sec. 4.2).

:class:`RNNSearch`: EGS search over the recurrent cell (:class:`egs.rnn.supernet.RNNSupernet`) with DARTS's
PTB search recipe: SGD (lr 20) on the weights with TAR on the raw cell outputs (``tar_beta``), Adam on the
logits, joint (Eq. 9) or first-order bilevel updates, fixed-length BPTT windows, the hidden state carried across
windows. It runs in a run directory with exact resume (:mod:`egs.engine.loop`); the carried hidden state and the
window position are part of the checkpoint.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import torch

from egs.data.corpus import get_batch
from egs.engine import distributed
from egs.engine.memory import allocate_network
from egs.engine.search import ArchitectureSearch, mean_active_ops
from egs.engine.search import batch_statistics
from egs.method.diagnostics import alpha_zero_genotype, normalised_entropy
from egs.profiles.experiments import RNNSearchSettings
from egs.rnn.lm import Carried, LMData, lm_loss, perplexity
from egs.rnn.model import paper_params
from egs.rnn.supernet import RNNSupernet, efficiency_credit


def _supernet(cfg: RNNSearchSettings, ntoken: int) -> RNNSupernet:
    return RNNSupernet(ntoken, cfg.emb, cfg.emb, M=cfg.M, lam=cfg.lam, tau=cfg.tau_start,
                       credit=efficiency_credit(cfg.space, cfg.emb, cfg.credit_beta), dropout=cfg.dropout,
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
        m = allocate_network(lambda: _supernet(cfg, d.ntoken), self.device, cfg, "recurrent search network",
                             fix="lower emb (--set emb=...)", key=("rnn search", cfg.space, cfg.emb, d.ntoken))
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
        """NLL of ``codes`` on a window; with TAR (``cfg.tar_beta``) unless the window is search-val's.

        DARTS regularises the weight step only (quark0/darts rnn/train_search.py); its architecture step takes the
        plain NLL of a search-val window (rnn/architect.py ``_backward_step`` -> rnn/model_search.py ``_loss``).
        So a window of :attr:`search_val` (:meth:`arch_batch`: bilevel's alpha step) gets no TAR. Joint mode (Eq. 9)
        has one loss for w and alpha, so there alpha's gradient takes TAR's share too (DARTS has no joint mode)."""
        arch = x.untyped_storage().data_ptr() == self.search_val.untyped_storage().data_ptr()  # windows are views
        return lm_loss(self.forward, x, y, hidden, tar_beta=0.0 if arch else self.cfg.tar_beta, codes=codes)

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
        return f"search-val perplexity {perplexity(-score):.2f}"

    def rule_metrics(self, codes: dict[str, torch.Tensor]) -> dict[str, float]:
        """Perplexity of ``codes`` with the shared weights on the ``select`` windows (what :meth:`score` ranks by)
        and on the rest of search-val (no target shared with them; hidden state from zero)."""
        rest = self.data.val[self.cfg.select_batches * self.cfg.bptt:]
        return {"select_ppl": perplexity(-self.score(codes)), "heldout_ppl": perplexity(self.val_nll(codes, rest))}

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
                "log": {"loss": loss, "ppl": perplexity(loss), "active_ops": active}}

    def end_epoch(self) -> dict[str, Any]:
        m, s = self.model, self.sums
        genotype, _ = self.derive(self.epoch + 1)
        val = self.val_nll(m.genotype_codes(genotype), self.data.val)
        self.save_epoch_genotype(genotype)
        p = m.probabilities()["normal"].detach()
        return {"train_loss": s["loss"] / s["n"], "train_ppl": perplexity(s["loss"] / s["n"]), "val_loss": val,
                "val_ppl": perplexity(val), "tau": m.tau, "sampled_active_ops": s["active"] / s["steps"],
                "expected_active_ops": m.expected_active_ops()["normal"], "entropy": m.edge_entropy()["normal"],
                "entropy_h": m.edge_entropy("h")["normal"], "derived_ops": genotype.num_active_ops(),
                "p": p.cpu().tolist()}

    def finish(self) -> dict[str, Any]:
        genotype, record = self.derive(self.epoch)
        epochs = [r for r in self.log.read() if r["type"] == "epoch"]
        zero = alpha_zero_genotype(self.model, self.cfg.rule)
        return self.write_results(genotype, record, self.cost() | {
            "final_val_ppl": epochs[-1]["val_ppl"],
            "final_val_ppl_alpha0": perplexity(self.val_nll(self.model.genotype_codes(zero), self.data.val)),
            "alpha0_genotype": zero.to_dict(), "entropy_h": normalised_entropy(self.model)["normal"],
            "derived_ops": genotype.num_active_ops(),
            "params_supernet": sum(p.numel() for p in self.model.weight_parameters()),
            "params_derived_paper_size": paper_params(genotype, self.cfg.corpus, self.data.ntoken)})




def rnn_search(cfg: RNNSearchSettings, run_dir: str | Path, resume: bool = False, data_root=None,
               progress: bool = True) -> dict[str, Any]:
    """Run (or ``resume``) a recurrent-cell search with settings ``cfg`` in ``run_dir`` (data from ``data_root``,
    progress bar if ``progress``); return its summary."""
    return RNNSearch(cfg, run_dir, resume=resume, data_root=data_root, progress=progress).run()
