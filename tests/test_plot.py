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


def test_every_M_is_in_the_legend_and_the_M1_curve_is_not_hidden_under_p():
    fig = plot.num_active_plot(num_active_table(8, tuple(range(1, 10))), K=8)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == [str(M) for M in range(1, 10)]
    plt.close(fig)
    fig = plot.inclusion_curves([1, 2, 4, 7])
    p_line, m1 = fig.axes[0].lines[:2]
    assert m1.get_label().startswith("M = 1") and m1.get_zorder() > p_line.get_zorder() and m1.get_marker() == "o"
    assert p_line.get_linewidth() > m1.get_linewidth()  # p_k shows around the M = 1 curve it equals
    plt.close(fig)


def test_training_curves_get_one_panel_per_method_and_one_band_per_cell():
    run = lambda shift: ([1, 2, 3], [60 + shift, 50 + shift, 45 + shift])
    curves = {("EGS a", "egs"): {0: run(0), 1: run(2)}, ("EGS b", "egs"): {0: run(1), 1: run(3)},
              ("random 1", "random"): {0: run(5), 1: run(9)}, ("DARTS_V2", "reference"): {0: run(-1)}}
    fig = plot.curves_by_method(curves, {"egs": "EGS", "given": "given", "random": "random",
                                         "reference": "DARTS_V2"}, "error (%)", "t")
    assert [ax.get_title() for ax in fig.axes] == ["EGS", "random", "DARTS_V2"]  # absent methods left out
    assert [len(ax.lines) for ax in fig.axes] == [2, 1, 1]
    assert [len(ax.collections) for ax in fig.axes] == [2, 1, 0]  # a band only where there are seeds to span
    assert list(fig.axes[0].lines[0].get_ydata()) == [61, 51, 46]  # the mean over seeds
    plt.close(fig)
