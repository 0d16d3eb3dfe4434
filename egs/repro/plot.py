"""Matplotlib figures of the paper (Figure 1 and the sampler's companions), saved as PNG and PDF."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from egs.core.files import atomic_open


def save_figure(fig: plt.Figure, stem: str | os.PathLike, formats: Sequence[str] = ("png", "pdf"),
                dpi: int = 150) -> list[Path]:
    """Write ``fig`` to ``stem.<fmt>`` for each format (atomically) and return the paths."""
    paths = []
    for fmt in formats:
        path = Path(f"{stem}.{fmt}")
        with atomic_open(path, "wb") as f:
            fig.savefig(f, format=fmt, dpi=dpi, bbox_inches="tight")
        paths.append(path)
    return paths


def epoch_axis(ax: plt.Axes) -> None:
    """Label ``ax``'s x axis "epoch" with integer ticks only (no fractional epochs on short runs)."""
    from matplotlib.ticker import MaxNLocator
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def figure1(codes: pd.DataFrame, titles: dict[int, str] | None = None, title: str | None = None) -> plt.Figure:
    """Figure 1: probability of each binary code, exact beside Monte Carlo, one panel per M.

    ``codes`` is :func:`egs.repro.propositions.code_table` output; the paper compares M = 1
    (Gumbel-softmax) with M = 2 (ensemble Gumbel-softmax) for p = [0.5, 0.5]. ``titles``: per panel
    (by M); ``title``: the figure's.
    """
    Ms = sorted(codes["M"].unique())
    fig, axes = plt.subplots(1, len(Ms), figsize=(4.2 * len(Ms), 3.4), sharey=True, squeeze=False)
    for ax, M in zip(axes[0], Ms):
        sub = codes[codes["M"] == M]
        long = sub.melt(id_vars=["code"], value_vars=["exact", "monte_carlo"], var_name="source",
                        value_name="probability")
        long["source"] = long["source"].map({"exact": "exact", "monte_carlo": "Monte Carlo"})
        sns.barplot(data=long, x="code", y="probability", hue="source", ax=ax,
                    palette=["#4c72b0", "#dd8452"])
        for patch in ax.patches:
            if patch.get_height() > 0:
                ax.annotate(f"{patch.get_height():.3f}", (patch.get_x() + patch.get_width() / 2,
                            patch.get_height()), ha="center", va="bottom", fontsize=8)
        ax.set_title((titles or {}).get(M, f"M = {M}"))
        ax.set_xlabel("binary code")
        ax.set_ylim(0, 1.08)
        ax.legend(fontsize=8, loc="upper left")
    axes[0][0].set_ylabel("probability")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def inclusion_curves(Ms: Sequence[int], profile: str | None = None,
                     title: str = "Proposition 2: P(code_k = 1) = 1 - (1 - p_k)^M") -> plt.Figure:
    """Proposition 2: P(code_k = 1) = 1 - (1 - p_k)^M against p_k, one curve per M in ``Ms``.

    The curves are exact; ``profile`` (the run that drew them) is added to ``title``.
    """
    import numpy as np
    title = title if profile is None else f"{title}\n(exact, profile {profile})"
    x = np.linspace(0, 1, 201)
    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    for M in Ms:
        ax.plot(x, 1 - (1 - x) ** M, label=f"M = {M}")
    ax.plot(x, x, "k--", lw=1, label="p_k (proportional)")
    ax.set_xlabel("p_k")
    ax.set_ylabel("P(code_k = 1)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def num_active_plot(table: pd.DataFrame, K: int, profile: str | None = None) -> plt.Figure:
    """Distribution of the number of active ops per edge among ``K`` ops, for each M (``table``:
    :func:`egs.repro.propositions.num_active_table` output; its Ms come from ``profile``, named in the title)."""
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    sns.barplot(data=table, x="active ops", y="probability", hue="M", ax=ax, palette="viridis")
    ax.set_title(f"Active operations per edge, K = {K}, uniform p" + (f", profile {profile}" if profile else ""))
    ax.legend(title="M", ncol=3, fontsize=8)
    fig.tight_layout()
    return fig


def p_evolution(first: Mapping[str, Any], last: Mapping[str, Any], edge_names: Sequence[str], ops: Sequence[str],
                title: str | None = None) -> plt.Figure:
    """Heatmaps of ``p`` (Eq. 5) per edge and op after the first and the last search epoch, one row per cell type.

    ``first`` and ``last`` are epoch records of a search's ``metrics.jsonl`` (``"epoch"``, and ``"p"``: per cell
    type an (E, K) list); rows are labelled ``edge_names``, columns ``ops``. Every panel has its own colour scale
    and colour bar, fitted to its data's min and max: after one epoch p spans a few hundredths, after the last far
    more, and one shared scale would show the first epoch as a uniform block.
    """
    kinds = list(first["p"])
    fig, axes = plt.subplots(len(kinds), 2, figsize=(15, 6 * len(kinds)), squeeze=False)
    for row, kind in enumerate(kinds):
        for ax, rec, when in zip(axes[row], (first, last), ("first", "last")):
            frame = pd.DataFrame(rec["p"][kind], index=list(edge_names), columns=list(ops))
            sns.heatmap(frame, ax=ax, vmin=frame.values.min(), vmax=frame.values.max(), cmap="mako", annot=True,
                        fmt=".2f", annot_kws={"size": 9}, cbar_kws={"label": "p"})
            ax.set_title(f"{kind} cell, p after the {when} epoch ({rec['epoch']})", fontsize=12)
            ax.set_xlabel("operation")
            ax.set_ylabel("edge i -> j")
            ax.tick_params(labelsize=9)
    if title:
        fig.suptitle(title, fontsize=14)
    fig.tight_layout()
    return fig
