"""Every notebook runs under papermill at the `smoke` profile (one `egs.reproduce` run for the whole
session, see conftest.py) and writes what it promises."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from egs.reproduce import STEPS

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

# What each notebook writes is declared once, in egs.reproduce.STEPS; these are checks of content.
CONTAINS = {
    "03_cifar10_evaluation": {"table1_cifar10.md": "| measured (smoke) | EGS (M = 7, search seed 0) + cutout |"},
    "04_imagenet_transfer": {"table2_imagenet.md": "trained at this profile"},
}


def test_every_notebook_is_declared():
    assert [nb.stem for nb in NOTEBOOKS] == [step.name for step in STEPS]


def test_notebooks_are_committed_clean_and_parameterised():
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert not any(c.get("outputs") or c.get("execution_count") for c in code), path.name
        assert any("parameters" in c["metadata"].get("tags", []) for c in code), path.name


@pytest.mark.notebook
@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.name)
def test_notebook_runs_at_smoke(step, smoke_reproduction):
    run = smoke_reproduction
    assert run.report.outcomes[step.name].status == "done", run.report.outcomes[step.name].reason
    assert (run.results / "notebooks" / f"{step.name}.ipynb").is_file()
    products = step.products(run.results, run.tables, run.figures)
    assert products
    for path in products:
        assert path.exists(), path
        if path.parent == run.figures:
            assert path.stat().st_size > 1000, path
    for table, text in CONTAINS.get(step.name, {}).items():
        assert text in (run.tables / table).read_text(), table


def noise(cell) -> list[str]:
    """What a code cell printed that a report should not hold: warnings, progress bars, anything on stderr."""
    found = []
    for o in cell.get("outputs", []):
        text = o.get("text") or o.get("data", {}).get("text/plain") or ""
        text = "".join(text) if isinstance(text, list) else text
        if ("Warning" in text or "warn(" in text or "\r" in text or "it/s]" in text or "s/it]" in text
                or (o.get("name") == "stderr" and text.strip())):
            found.append(text[:200])
    return found


def test_the_noise_check_sees_warnings_bars_and_stderr():
    def cell(name, text):
        return {"outputs": [{"output_type": "stream", "name": name, "text": [text]}]}
    assert noise(cell("stdout", "search epoch 1/2 (3 s): val_acc 0.1\n")) == []
    assert noise(cell("stderr", "UserWarning: x\n")) and noise(cell("stdout", "50%|##   | 5/10 [00:01<00:01, 4.1it/s]"))
    assert noise(cell("stderr", "anything\n")) and noise(cell("stdout", "a\rb"))


@pytest.mark.notebook
@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.name)
def test_executed_notebooks_hold_no_warnings_or_progress_spam(step, smoke_reproduction):
    """An executed copy reads like a report: no warning, no per-step progress bar (one line per epoch at most)."""
    nb = json.loads((smoke_reproduction.results / "notebooks" / f"{step.name}.ipynb").read_text())
    problems = {index: found for index, cell in enumerate(nb["cells"]) if (found := noise(cell))}
    assert not problems, f"{step.name}: {problems}"


@pytest.mark.notebook
def test_notebook01_figure1_numbers(smoke_reproduction):
    """The Figure 1 table holds the exact EGS probabilities for p = [0.5, 0.5]; Proposition 3's count is exact."""
    tables = smoke_reproduction.tables
    rows = list(csv.DictReader(open(tables / "01_fig1_codes.csv")))
    m2 = {r["code"]: float(r["exact"]) for r in rows if r["M"] == "2"}
    assert m2 == {"[1,0]": 0.25, "[0,1]": 0.25, "[1,1]": 0.5}
    prop3 = {(r["K"], r["M"]): r["exact support"] for r in csv.DictReader(open(tables / "01_prop3_num_codes.csv"))}
    assert (prop3[("2", "1")], prop3[("5", "2")], prop3[("8", "9")]) == ("2", "15", "255")


@pytest.mark.notebook
def test_notebook07_table5(smoke_reproduction):
    """Table 5 has the paper's nine rows, then one measured row per trained M, labelled with profile and run;
    the rule table holds every rule for every searched M."""
    rows = list(csv.DictReader(open(smoke_reproduction.tables / "table5_ablation_M.csv")))
    paper = [r for r in rows if r["source"] == "paper"]
    measured = [r for r in rows if r["source"] == "measured (smoke)"]
    assert [r["M"] for r in paper] == [str(m) for m in range(1, 10)]
    assert [r["M"] for r in measured] == ["1", "4", "7"]
    assert [r["run"] for r in measured] == [f"07_ablation_M/M{m} seeds [0]" for m in (1, 4, 7)]
    for r in measured:
        assert 0 <= float(r["Test Error (%)"]) <= 100 and float(r["Params (M)"]) > 0
        normal, reduce = map(float, r["Expected active ops (normal / reduce)"].split(" / "))
        assert 0 < normal <= 7 and 0 < reduce <= 7
    rules = list(csv.DictReader(open(smoke_reproduction.tables / "07_rule_sizes.csv")))
    assert sorted({(r["M"], r["rule"]) for r in rules}) == sorted((str(m), rule) for m in range(1, 10)
                                                                   for rule in ("edge", "node", "select"))
    node = {int(r["M"]): int(r["ops (normal + reduce)"]) for r in rules if r["rule"] == "node"}
    assert all(ops <= 2 * 4 * M for M, ops in node.items())  # at most M picks per node, 4 nodes, 2 cells
