"""Every notebook runs under papermill at the `smoke` profile (one `egs.repro.reproduce` run for the whole
session, see conftest.py) and writes what it promises."""
from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from egs.repro.reproduce import STEPS, notebook_parameters

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

# What each notebook writes is declared once, in egs.repro.reproduce.STEPS; these are checks of content.
CONTAINS = {
    "03_cifar10_evaluation": {"table1_cifar10.md": "| measured (smoke) | EGS (M = 7, search seed 0, selected) + cutout |"},
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


def test_papermill_reads_every_parameter_with_its_help():
    """`papermill --help-notebook` lists every parameter (its parser gives up on a line whose comment holds "=")."""
    import nbformat
    from papermill.translators import PythonTranslator
    for path in NOTEBOOKS:
        cell = next(c for c in nbformat.read(path, as_version=4).cells if "parameters" in c.metadata.get("tags", []))
        names = [p.name for p in PythonTranslator.inspect(cell)]
        assert names == list(notebook_parameters(path)), path.name


def test_a_notebook_declares_figures_dir_exactly_when_it_draws_figures():
    """figures_dir is where a notebook's figures go; one that draws none (04, 06) does not offer it."""
    for step in STEPS:
        declared = notebook_parameters(ROOT / "notebooks" / f"{step.name}.ipynb")
        assert ("figures_dir" in declared) == bool(step.figures), step.name
        assert "tables_dir" in declared, step.name


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


EPOCH_LINE = re.compile(r"^(\w+) epoch (\d+)/(\d+) \(\d+ s\): ")


@pytest.mark.notebook
@pytest.mark.parametrize("session", [None, "notebooks/lab.ipynb"], ids=["from-a-shell", "from-a-jupyterlab-cell"])
def test_a_notebook_run_directly_with_papermill_holds_one_line_per_epoch(session, tmp_path):
    """The README's plain `papermill NOTEBOOK OUT -p profile ...` (not `egs reproduce`), on the cheapest notebook
    that trains (04 at smoke, on a tiny ImageFolder, ~10 s): no warning, no stderr, no bar, one line per epoch."""
    from conftest import make_image_folder

    from egs.profiles.experiments import settings
    env = {k: v for k, v in os.environ.items() if k not in ("EGS_PROGRESS", "JPY_SESSION_NAME")}
    if session:  # what a `!papermill ...` cell of a notebook open in JupyterLab passes on
        env["JPY_SESSION_NAME"] = session
    out, params = tmp_path / "04.ipynb", {"profile": "smoke", "genotype": "DARTS_V2", "run_root": tmp_path / "runs",
                                          "imagenet_dir": make_image_folder(tmp_path / "images"),
                                          "tables_dir": tmp_path / "tables"}
    command = [sys.executable, "-m", "papermill", str(ROOT / "notebooks" / "04_imagenet_transfer.ipynb"), str(out),
               "-k", "python3", "--cwd", str(ROOT / "notebooks")]
    command += [a for k, v in params.items() for a in ("-p", k, str(v))]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    nb = json.loads(out.read_text())
    problems = {index: found for index, cell in enumerate(nb["cells"]) if (found := noise(cell))}
    assert not problems, problems
    outputs = [o for cell in nb["cells"] for o in cell.get("outputs", [])]
    assert not [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]  # no widget bar
    lines = [line for o in outputs if o.get("name") == "stdout" for line in "".join(o["text"]).splitlines()]
    epochs = [m.groups() for line in lines if (m := EPOCH_LINE.match(line))]
    n = settings("train_imagenet", "smoke").epochs
    assert epochs == [("train", str(e), str(n)) for e in range(1, n + 1)], lines  # DARTS_V2, trained once


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
