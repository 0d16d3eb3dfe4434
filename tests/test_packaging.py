"""The install files agree with each other; the package imports lightly."""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# conda-forge/pytorch names of the same Python packages; "graphviz" in conda is the `dot` binary
# (pip installs it from the system: apt-get install graphviz), "python"/"pip" are the interpreter.
CONDA_TO_PIP = {"pytorch": "torch", "python-graphviz": "graphviz"}
CONDA_ONLY = {"python", "pip", "graphviz"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_names_the_same_packages_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_names = {_name(r) for r in project["dependencies"]}
    pip_names |= {_name(r) for extra in project["optional-dependencies"].values() for r in extra}
    conda_names = set()
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("dependencies:", 1)[1].splitlines():
        m = re.match(r"^\s{2}-\s+([A-Za-z0-9_.-]+)", line)
        if m and _name(m.group(1)) not in CONDA_ONLY:
            conda_names.add(CONDA_TO_PIP.get(_name(m.group(1)), _name(m.group(1))))
    assert conda_names == pip_names


def test_import_is_light():
    code = "import sys, egs; print('torch' in sys.modules, egs.__version__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "0.1.0"]


def test_public_api_resolves():
    import egs
    for name in egs.__all__:
        assert getattr(egs, name) is not None
