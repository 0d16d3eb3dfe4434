"""Figures a reader can trust: colour scales fitted to each panel's data, the profile in the titles."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from egs.repro import plot
from egs.arch.space import CONV
from egs.repro.propositions import num_active_table
from egs.arch.space import CONV_OPS


def _record(epoch: int, spread: float, seed: int) -> dict:
    """A metrics.jsonl epoch record: p rows (14, 8) that spread ``spread`` around uniform, per cell type."""
    rng = np.random.default_rng(seed)
    p = {}
    for kind in ("normal", "reduce"):
        logits = spread * rng.standard_normal((14, 8))
        p[kind] = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).tolist()
    return {"epoch": epoch, "p": p}


def test_p_evolution_fits_one_colour_scale_and_bar_to_each_panel():
    first, last = _record(1, 0.3, 0), _record(25, 3.0, 1)  # first epoch near uniform, last far from it
    edges = [f"{i}->{j}" for i, j in CONV.edges()]
    fig = plot.p_evolution(first, last, edges, CONV_OPS, title="profile smoke, M = 7, seed 0")
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert len(panels) == 4 and len(fig.axes) == 8  # four heatmaps, each with its own colour bar
    for ax, (kind, rec) in zip(panels, [(k, r) for k in ("normal", "reduce") for r in (first, last)]):
        data = np.asarray(rec["p"][kind])
        when = "first" if rec is first else "last"
        assert ax.get_title() == f"{kind} cell, p after the {when} epoch ({rec['epoch']})"
        assert ax.collections[0].get_clim() == pytest.approx((data.min(), data.max()))
        numbers = [float(t.get_text()) for t in ax.texts]
        assert numbers == pytest.approx(data.round(2).ravel().tolist(), abs=1e-9)
        assert min(t.get_fontsize() for t in ax.texts) >= 9  # legible, not 6 pt
    assert len({ax.collections[0].get_clim() for ax in panels}) == 4  # no shared scale
    assert fig._suptitle.get_text() == "profile smoke, M = 7, seed 0"
    plt.close(fig)


def test_proposition_figures_name_the_profile():
    fig = plot.inclusion_curves([1, 2, 4, 7], profile="cpu")
    assert fig.axes[0].get_title().endswith("(exact, profile cpu)") and len(fig.axes[0].lines) == 5
    plt.close(fig)
    fig = plot.num_active_plot(num_active_table(8, (1, 2)), K=8, profile="smoke")
    assert fig.axes[0].get_title() == "Active operations per edge, K = 8, uniform p, profile smoke"
    plt.close(fig)
