"""egs as a library: the public API at the top level, documented, and the README's example runs verbatim."""
from __future__ import annotations

import inspect
import pydoc
import re
from pathlib import Path

import pytest

import egs

ROOT = Path(__file__).resolve().parent.parent


def test_every_public_name_is_documented_with_its_arguments():
    undocumented = []
    for name in egs.__all__:
        obj = getattr(egs, name)
        doc = inspect.getdoc(obj) or ""
        try:
            params = [p for p in inspect.signature(obj).parameters if p not in ("self", "args", "kwargs")]
        except (TypeError, ValueError):
            params = []
        missing = [p for p in params if p not in doc]
        if not doc or missing:
            undocumented.append((name, missing or "no docstring"))
        if isinstance(obj, type):
            for method, value in vars(obj).items():
                target = value.fget if isinstance(value, property) else getattr(value, "__func__", value)
                if not method.startswith("_") and callable(target) and not inspect.getdoc(target):
                    undocumented.append((f"{name}.{method}", "no docstring"))
    assert not undocumented, undocumented


def test_help_lists_the_api():
    text = pydoc.render_doc(egs, renderer=pydoc.plaintext)
    assert all(name in text for name in ("ensemble_gumbel_softmax", "declare_space", "Supernet", "from_darts",
                                         "eval_network", "count_macs", "render_genotype", "published_genotype"))


def test_the_readme_library_example_runs_verbatim(tmp_path, monkeypatch, one_thread):
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Using egs as a library", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md (library example)", "exec"), {})
    assert sorted(p.name for p in (tmp_path / "drawn").iterdir()) == [
        "normal_cell.png", "normal_cell.svg", "reduce_cell.png", "reduce_cell.svg"]
