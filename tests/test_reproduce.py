"""`python -m egs reproduce`: dependency order, skip-when-complete, --force, failures, the summary."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from egs.core.errors import EGSError
from egs.repro.reproduce import STEPS, notebook_parameters, parse_param, reproduce, resolve_names

ROOT = Path(__file__).resolve().parent.parent
ALL = [s.name for s in STEPS]


def test_names_resolve_from_number_stem_or_file():
    assert resolve_names(["01", "02_cifar10_search.ipynb"]) == ALL[:2]
    assert resolve_names(["07_ablation_M,03"]) == [ALL[2], ALL[6]]  # commas split; result in run order
    with pytest.raises(EGSError, match="unknown notebook '09'.*01_sampling_distribution"):
        resolve_names(["09"])
    assert parse_param("04:imagenet_dir=/data") == ("04_imagenet_transfer", "imagenet_dir", "/data")
    assert parse_param("01:seeds=[1, 2]") == ("01_sampling_distribution", "seeds", [1, 2])
    with pytest.raises(EGSError, match="NOTEBOOK:KEY=VALUE"):
        parse_param("seed=3")


def test_wiring_matches_the_notebooks_parameters():
    """Every parameter reproduce passes is declared by the notebook, and every input is made upstream."""
    made = {}
    for step in STEPS:
        declared = notebook_parameters(ROOT / "notebooks" / f"{step.name}.ipynb")
        assert {"profile", "tables_dir", *step.inputs, *step.outputs, *step.runs} <= set(declared), step.name
        for path in step.inputs.values():  # a file a needed notebook writes, or one in its run directory
            makers = [who for where, who in made.items() if path == where or path.startswith(where + "/")]
            assert makers and makers[0] in step.needs, (step.name, path)
        made |= {path: step.name for path in (*step.outputs.values(), *step.runs.values())}


def test_papermill_children_are_no_jupyterlab_session_and_get_a_share_of_the_cores(tmp_path, monkeypatch):
    """A reproduction started from JupyterLab (a cell or its terminal) drops the session marker its children would
    inherit, so egs.engine.progress.progress_style() picks one line per epoch there by itself; EGS_PROGRESS is not forced."""
    import egs.repro.reproduce as rp
    from egs.repro.guard import ReproductionLock, die_with_parent
    seen = {}

    class FakePopen:
        def __init__(self, command, **kwargs):
            seen.update(command=command, env=kwargs["env"], preexec_fn=kwargs.get("preexec_fn"))

        def wait(self):
            return 0

    monkeypatch.setattr(rp.subprocess, "Popen", FakePopen)
    monkeypatch.setenv("JPY_SESSION_NAME", "notebooks/lab.ipynb")
    monkeypatch.delenv("EGS_PROGRESS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    plan = rp._Plan(rp.STEP["01_sampling_distribution"], rp._Layout("smoke", tmp_path, None, None), {})
    guard = ReproductionLock(tmp_path, tmp_path / "figures")
    assert plan.execute(2, guard)[0] == 0
    assert "JPY_SESSION_NAME" not in seen["env"] and "EGS_PROGRESS" not in seen["env"]
    assert seen["preexec_fn"] is die_with_parent  # papermill dies with the reproduction, even under kill -9
    assert seen["env"]["EGS_REPRODUCTION_KERNELS"] == str(tmp_path / ".reproduce.kernels")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert seen["env"]["OMP_NUM_THREADS"] == str(max(1, cores // 2)) and seen["env"]["PATH"] == os.environ["PATH"]
    assert seen["command"][1:3] == ["-m", "papermill"] and str(plan.executed) in seen["command"]
    monkeypatch.setenv("EGS_PROGRESS", "bar")  # the user's explicit choice still travels
    plan.execute(1, guard)
    assert seen["env"]["EGS_PROGRESS"] == "bar"
    guard.release()


def test_bad_requests_are_clear_errors(tmp_path):
    with pytest.raises(EGSError, match="jobs=0 must be an integer >= 1; it is how many notebooks run"):
        reproduce("smoke", jobs=0, results=tmp_path)
    with pytest.raises(EGSError, match="jobs=True must be an integer, got bool"):
        reproduce("smoke", jobs=True, results=tmp_path)
    with pytest.raises(EGSError, match="unknown profile"):
        reproduce("laptop", results=tmp_path)
    with pytest.raises(EGSError, match="has no parameter\\(s\\) nonsense"):
        reproduce("smoke", only=["01"], results=tmp_path, extra={"01": {"nonsense": 1}})
    with pytest.raises(EGSError, match="missing; pass --notebooks"):
        reproduce("smoke", only=["01"], results=tmp_path, notebooks=tmp_path)


def test_only_without_its_inputs_is_skipped_with_the_missing_file(tmp_path, data_root, monkeypatch):
    monkeypatch.setenv("EGS_DATA_DIR", str(data_root))
    lines = []
    report = reproduce("smoke", only=["06"], results=tmp_path, echo=lines.append)
    assert not report.ok and report.executed == [] and "06_wikitext2_transfer skipped" in lines[0]
    outcome = report.outcomes["06_wikitext2_transfer"]
    assert outcome.status == "skipped"
    assert f"genotype={tmp_path / 'genotypes' / '05_rnn_genotype.json'}" in outcome.reason
    assert "--only 05_ptb" in outcome.reason
    assert "| 06_wikitext2_transfer | skipped (missing input genotype=" in (tmp_path / "README.md").read_text()


def test_missing_datasets_are_fetched_before_any_notebook(tmp_path, mirror, monkeypatch):
    """`egs reproduce` gets what its notebooks read (here from the mirror), once, before they run."""
    monkeypatch.setenv("EGS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("EGS_DATA_MIRROR", str(mirror))
    lines = []
    report = reproduce("smoke", only=["06"], results=tmp_path / "results", echo=lines.append)
    assert lines[0] == f"reproduce: fetching wikitext2 into {tmp_path / 'data'} from {mirror}"
    assert (tmp_path / "data" / "wikitext-2" / "train.txt").is_file()
    assert report.outcomes["06_wikitext2_transfer"].status == "skipped"  # for its missing genotype, not its data
    lines.clear()
    reproduce("smoke", only=["06"], results=tmp_path / "results", echo=lines.append)
    assert not any("fetching" in line for line in lines)
    assert {d for s in STEPS for d in s.datasets} == {"cifar10", "ptb", "wikitext2", "nas-bench-201"}


@pytest.mark.notebook
def test_smoke_reproduction_produces_every_table_and_figure(smoke_reproduction):
    run = smoke_reproduction
    assert run.report.ok and run.report.executed == ALL
    summary = (run.results / "README.md").read_text()
    state = json.loads((run.results / "reproduce.json").read_text())["notebooks"]
    for step in STEPS:
        assert state[step.name]["status"] == "ok"
        assert f"| {step.name} | done | " in summary and f"(notebooks/{step.name}.ipynb)" in summary
        for table in step.tables:
            assert (run.tables / table).is_file() and f"(tables/{table})" in summary
        for figure in step.figures:
            assert (run.figures / figure).stat().st_size > 1000 and f"(figures/{figure})" in summary
    # markdown tables are inlined, with the paper's rows and the measured rows' profile
    assert "| paper | 7 | 2.79 | 2.79 |" in summary and "| measured (smoke) | 7 |" in summary
    # notebook 03 trained notebook 02's genotype (the wiring), which keeps its label
    injected = json.loads((run.results / "notebooks" / "03_cifar10_evaluation.ipynb").read_text())
    assert str(run.results / "genotypes" / "02_egs_genotype.json") in "".join(
        "".join(c["source"]) for c in injected["cells"] if "injected-parameters" in c["metadata"].get("tags", []))


@pytest.mark.notebook
def test_rerun_skips_complete_notebooks_and_reruns_changed_or_forced(smoke_reproduction):
    run = smoke_reproduction
    executed = run.results / "notebooks" / "01_sampling_distribution.ipynb"
    before = executed.stat().st_mtime_ns
    again = reproduce("smoke", results=run.results, extra=run.extra, echo=lambda _: None)
    assert again.ok and again.executed == [] and {o.status for o in again.outcomes.values()} == {"complete"}
    assert executed.stat().st_mtime_ns == before

    changed = reproduce("smoke", only=["01"], results=run.results, extra={"01": {"seed": 1}}, echo=lambda _: None)
    assert changed.ok and changed.executed == ["01_sampling_distribution"]
    forced = reproduce("smoke", only=["01"], results=run.results, extra={"01": {"seed": 1}}, force=True,
                       echo=lambda _: None)
    assert forced.executed == ["01_sampling_distribution"]
    same = reproduce("smoke", only=["01"], results=run.results, extra={"01": {"seed": 1}}, echo=lambda _: None)
    assert same.executed == [] and same.outcomes["01_sampling_distribution"].status == "complete"


def _broken_notebooks(tmp_path: Path, name: str) -> Path:
    """A copy of notebooks/ whose ``name`` raises in its second code cell (the imports)."""
    folder = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", folder)
    path = folder / f"{name}.ipynb"
    nb = json.loads(path.read_text())
    second = [c for c in nb["cells"] if c["cell_type"] == "code"][1]
    second["source"] = ['raise RuntimeError("deliberate")\n'] + list(second["source"])
    path.write_text(json.dumps(nb))
    return folder


@pytest.mark.notebook
def test_a_failing_notebook_is_named_its_dependents_skipped_and_the_others_run(tmp_path, data_root, monkeypatch):
    monkeypatch.setenv("EGS_DATA_DIR", str(data_root))
    notebooks = _broken_notebooks(tmp_path, "05_ptb")
    results = tmp_path / "results"
    report = reproduce("smoke", only=["01", "05", "06"], results=results, notebooks=notebooks, echo=lambda _: None)
    assert not report.ok and report.executed == ["01_sampling_distribution", "05_ptb"]
    failed = report.outcomes["05_ptb"]
    assert failed.status == "failed"
    assert "cell 2 (In [3]) 'raise RuntimeError(\"deliberate\")' raised RuntimeError: deliberate" in failed.reason
    assert str(results / "notebooks" / "05_ptb.ipynb") in failed.reason
    assert report.outcomes["06_wikitext2_transfer"].status == "skipped"
    assert "needs 05_ptb, which failed" in report.outcomes["06_wikitext2_transfer"].reason
    assert report.outcomes["01_sampling_distribution"].status == "done"
    assert (results / "tables" / "01_fig1_codes.csv").is_file()
    assert (results / "figures" / "fig1_gumbel_vs_ensemble.png").is_file()
    assert json.loads((results / "reproduce.json").read_text())["notebooks"]["05_ptb"]["status"] == "failed"
    assert "| 05_ptb | failed (cell 2" in (results / "README.md").read_text()


@pytest.mark.notebook
def test_cli_exits_non_zero_and_names_the_cell_without_traceback(tmp_path, data_root):
    notebooks = _broken_notebooks(tmp_path, "01_sampling_distribution")
    out = subprocess.run([sys.executable, "-m", "egs", "reproduce", "--profile", "smoke", "--only", "01",
                          "--notebooks", str(notebooks), "--results", str(tmp_path / "results")],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "EGS_DATA_DIR": str(data_root)})
    assert out.returncode == 1
    assert "reproduce: 01_sampling_distribution started" in out.stdout
    assert out.stderr.startswith("egs: error: 01_sampling_distribution failed: cell 2 (In [3])")
    assert "RuntimeError: deliberate" in out.stderr and "Traceback" not in out.stdout + out.stderr
