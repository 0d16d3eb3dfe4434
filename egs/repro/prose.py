"""Sentences the notebooks print, worded from the settings of the run they describe."""
from __future__ import annotations

from typing import Any


def arch_choices(cfg: Any) -> list[str]:
    """The architecture-optimisation choices of search settings ``cfg`` (conv or recurrent), one markdown bullet
    each, worded from the values: where the paper's text, DARTS and the authors' released code (DATA-NAS)
    differ, which one ``cfg`` follows (the notebooks print these; :class:`egs.profiles.experiments.ArchSettings`)."""
    wd = {1e-3: "DARTS's 1e-3", 0.0: "the authors' 0"}.get(cfg.arch_weight_decay, "neither DARTS's nor the authors'")
    h = ("softmax(alpha), as DARTS and the paper (Eq. 3)" if cfg.effectiveness == "softmax" else
         "relu(alpha) normalised per edge, as the authors' released code (logits start at 1)")
    why_h = ("on h, not on p = lambda h + (1 - lambda) l: the authors' code has no efficiency credit, so their p is h, "
             "and the regulariser should not pull on the credit's share of p")
    reg = (f"none (`arch_reg` = 0; the authors' code adds 0.1 * mean |h - c / sum c|, which egs would apply {why_h})"
           if not cfg.arch_reg else
           f"{cfg.arch_reg:g} * mean |h - c / sum c| on the alpha update only (the authors' regulariser, 0.1 in their "
           "code): c is the code sampled for the step, sum c counts its active entries with \"none\" included, as "
           f"their code does; {why_h}")
    if cfg.tau_start == cfg.tau_end:
        tau = f"constant tau = {cfg.tau_start:g} (the paper gives none; the authors' released code runs at 1)"
    else:
        tau = (f"{cfg.tau_schedule} from {cfg.tau_start:g} to {cfg.tau_end:g} over the epochs (the authors' code "
               "intends 5 - 4 epoch / 150 but never passes the epoch, so runs at 1)")
    return [f"Architecture optimiser: Adam on alpha (lr {cfg.arch_lr:g}, betas ({cfg.arch_beta1:g}, "
            f"{cfg.arch_beta2:g})), `{cfg.mode}` updates, weight decay {cfg.arch_weight_decay:g} ({wd}).",
            f"Effectiveness credit h: {h}; lambda = {cfg.lam:g} in p = lambda h + (1 - lambda) l (Eq. 5).",
            f"Regulariser: {reg}.", f"Temperature: {tau}.",
            f"Derivation rule `{cfg.rule}`; the `select` rule draws {cfg.select_candidates} candidates and scores "
            f"them on {cfg.select_batches} search-val batches (`select_candidates`, `select_batches`)."]
