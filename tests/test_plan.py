"""The cost plan (egs.repro.plan): the runs it lists are the runs a reproduction makes; GPU-hours with their source."""
from __future__ import annotations

import math

import pytest

from egs.repro.plan import measure_step_times, notebook_runs, plan, step_group
from egs.repro.reproduce import STEPS

ROOTS = {"02_cifar10_search": "02_search", "03_cifar10_evaluation": "03_eval", "04_imagenet_transfer": "04_imagenet",
         "05_ptb": "05_ptb", "06_wikitext2_transfer": "06_wikitext2", "07_ablation_M": "07_ablation_M",
         "08_nas_bench_201": "08_nas_bench_201"}


def test_the_plan_lists_the_runs_a_smoke_reproduction_made(smoke_reproduction):
    """Per notebook, the plan's runs (those it does not read from another notebook) are the run directories the
    smoke reproduction made."""
    made_by = {name: sorted(p.parent for p in (smoke_reproduction.results / "runs" / root).rglob("config.json")
                            if ".superseded-" not in str(p)) for name, root in ROOTS.items()}
    p = plan("smoke", extra=smoke_reproduction.extra, measure=False)
    for name, runs in p.by_notebook().items():
        assert len([r for r in runs if not r.reused_from]) == len(made_by.get(name, [])), name
    assert [r.label for r in p.runs if r.reused_from] == ["search M = 1", "search M = 7"]  # 07 reads 02's


def test_the_paper_plan_gives_searches_the_papers_figures_and_says_what_it_lacks():
    p = plan("paper", only=["02", "05"], measure=False)
    text = p.text()
    # 4 searches and Figure 3's of 1 GPU-day each (Table 1); the 4 selection trainings (100 epochs) untimed
    assert "02_cifar10_search: 9 run(s), 120.0 GPU-hours + 187,200 training steps with no step time" in text
    assert "05_ptb: 33 run(s), 60.0 GPU-hours + " in text  # 5 searches of 0.5 GPU-day (Table 3)
    assert "no step was measured" in text and "paper Table 3: 0.5 GPU-day per search" in text
    trainings = [r for r in p.runs if r.genotype is not None]
    assert trainings and all(math.isnan(r.gpu_hours) for r in trainings)
    ptb = 929_589 // 64 // 35  # steps per epoch
    # 4 cells x 4 seeds x 1600 epochs, then 4 searched + 8 random cells' selection trainings of 300 epochs
    assert sum(r.steps for r in trainings if r.notebook == "05_ptb") == (16 * 1600 + 12 * 300) * ptb


def test_every_notebook_has_its_runs_declared():
    assert {s.name for s in STEPS} - {"01_sampling_distribution"} == set(ROOTS)
    assert notebook_runs("01_sampling_distribution", "paper") == []


@pytest.mark.notebook
def test_step_times_are_measured_in_the_real_loops(data_root, monkeypatch):
    monkeypatch.setenv("EGS_DATA_DIR", str(data_root))
    runs = notebook_runs("03_cifar10_evaluation", "smoke")[:1] + notebook_runs("05_ptb", "smoke")[:1]
    times = measure_step_times(runs, steps=3, warmup=1)
    assert set(times) == {step_group(r) for r in runs} and all(t > 0 for t in times.values())
