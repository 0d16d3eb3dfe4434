"""Matplotlib figures of the paper (Figure 1 and the sampler's companions), saved as PNG and PDF."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from egs.files import atomic_open


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

    ``codes`` is :func:`egs.propositions.code_table` output; the paper compares M = 1
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


def inclusion_curves(Ms: Sequence[int], title: str = "Proposition 2: P(code_k = 1) = 1 - (1 - p_k)^M") -> plt.Figure:
    """Proposition 2: P(code_k = 1) = 1 - (1 - p_k)^M against p_k, one curve per M (exact: no profile)."""
    import numpy as np
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


def num_active_plot(table: pd.DataFrame, K: int) -> plt.Figure:
    """Distribution of the number of active ops per edge, for each M (``num_active_table`` output)."""
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    sns.barplot(data=table, x="active ops", y="probability", hue="M", ax=ax, palette="viridis")
    ax.set_title(f"Active operations per edge, K = {K}, uniform p")
    ax.legend(title="M", ncol=3, fontsize=8)
    fig.tight_layout()
    return fig
