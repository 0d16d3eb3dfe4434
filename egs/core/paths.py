"""Where the checkout's folders are (data/, figures/, results/), found from the package location."""
from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The checkout holding this package (``EGS_ROOT`` overrides; else the current folder)."""
    if os.environ.get("EGS_ROOT"):
        return Path(os.environ["EGS_ROOT"]).expanduser().resolve()
    here = Path(__file__).resolve().parents[2]
    return here if (here / "pyproject.toml").is_file() else Path.cwd()


def figures_dir(profile: str | None = None) -> Path:
    """Where figures go: the checkout's committed ``figures/`` (``profile`` None or the ``cpu``
    reproduction, which refreshes them on purpose), else ``results/<profile>/figures``, so that running a
    notebook directly never overwrites the committed figures."""
    if profile is None:
        return repo_root() / "figures"
    return results_dir(profile) / "figures"


def results_dir(profile: str) -> Path:
    return repo_root() / "results" / profile
