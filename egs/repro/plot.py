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
    # p_k itself is the M = 1 curve (one draw: the Gumbel-softmax case), so it is drawn wide and pale underneath and
    # M = 1 on top with markers: neither hides the other
    ax.plot(x, x, color="0.75", lw=5, solid_capstyle="butt", label="p_k (proportional)", zorder=1)
    for M in Ms:
        ax.plot(x, 1 - (1 - x) ** M, zorder=2, label=f"M = {M}" + (" (= p_k)" if M == 1 else ""),
                **({"marker": "o", "markevery": 20, "markersize": 4} if M == 1 else {}))
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
    Ms = sorted(table["M"].unique())
    # M as categories: a numeric hue gets seaborn's "brief" legend, which names only some of the values
    sns.barplot(data=table.assign(M=table["M"].astype(str)), x="active ops", y="probability", hue="M",
                hue_order=[str(M) for M in Ms], ax=ax, palette="viridis")
    ax.set_title(f"Active operations per edge, K = {K}, uniform p" + (f", profile {profile}" if profile else ""))
    ax.legend(title="M", ncol=len(Ms) if len(Ms) <= 9 else 5, fontsize=8, loc="upper right", columnspacing=0.8)
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


def curves_by_method(curves: Mapping[tuple[str, str], Mapping[Any, tuple[Sequence[int], Sequence[float]]]],
                     methods: Mapping[str, str], ylabel: str, title: str) -> plt.Figure:
    """Training curves, one panel per method: ``curves[(cell, method)][seed] = (epochs, values)``; each cell is its
    mean over seeds with a band from the lowest to the highest seed, so a panel holds a few lines, not one per
    training. ``methods`` maps a method to its panel title (panels in that order, the absent ones left out)."""
    import numpy as np
    present = [m for m in methods if any(kind == m for _, kind in curves)]
    fig, axes = plt.subplots(1, len(present), figsize=(3.6 * len(present), 3.4), sharey=True, squeeze=False)
    for ax, method in zip(axes[0], present):
        for cell, kind in (key for key in curves if key[1] == method):
            runs = list(curves[(cell, kind)].values())
            n = min(len(e) for e, _ in runs)  # the epochs every seed reached
            epochs, values = runs[0][0][:n], np.array([v[:n] for _, v in runs], dtype=float)
            line, = ax.plot(epochs, values.mean(0), "o-", ms=3, label=f"{cell} ({len(runs)} seeds)")
            if len(runs) > 1:
                ax.fill_between(epochs, values.min(0), values.max(0), color=line.get_color(), alpha=0.2, lw=0)
        ax.set_title(methods[method], fontsize=10)
        epoch_axis(ax)
        ax.legend(fontsize=6, loc="upper right")
    axes[0][0].set_ylabel(ylabel)
    fig.suptitle(title + " (mean over seeds, band: lowest to highest seed)", fontsize=10)
    fig.tight_layout()
    return fig
