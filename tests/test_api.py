"""egs as a library: the public API at the top level, documented, and the README's example runs verbatim."""
from __future__ import annotations

import inspect
import pydoc
import re
from pathlib import Path

import pytest

import egs

ROOT = Path(__file__).resolve().parent.parent


def _undocumented_parameters(obj) -> list[str]:
    """The parameters of ``obj`` (self/cls and *args/**kwargs aside) its docstring does not name as a whole word."""
    doc = inspect.getdoc(obj) or ""
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return []
    named = [p.name for p in params if p.name not in ("self", "cls")
             and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
    return [name for name in named if not re.search(rf"\b{re.escape(name)}\b", doc)]


def _public_methods(cls: type):
    """(name, function) of every public method and property that ``cls`` itself defines."""
    for method, value in vars(cls).items():
        target = value.fget if isinstance(value, property) else getattr(value, "__func__", value)
        if not method.startswith("_") and callable(target):
            yield method, target


def test_every_public_name_is_documented_with_each_of_its_arguments():
    undocumented = []
    for name in egs.__all__:
        obj = getattr(egs, name)
        methods = [(f"{name}.{m}", f) for m, f in _public_methods(obj)] if isinstance(obj, type) else []
        for label, target in [(name, obj), *methods]:
            if callable(target) and not inspect.getdoc(target):
                undocumented.append((label, "no docstring"))
            elif missing := _undocumented_parameters(target):
                undocumented.append((label, missing))
    assert not undocumented, undocumented


def test_the_argument_check_wants_whole_words():
    def f(p, n_nodes, *args, **kwargs):
        """A probability over n_nodes_total nodes."""

    def g(p, n_nodes):
        """``p``: a probability (p_k per op); n_nodes: nodes."""

    assert _undocumented_parameters(f) == ["p", "n_nodes"] and _undocumented_parameters(g) == []


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
