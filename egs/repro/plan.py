"""What a reproduction will cost before it runs: every notebook's runs and their GPU-hours (``egs reproduce --plan``).

Each notebook's runs are listed from the same settings the notebook reads (:func:`notebook_runs`; a test checks the
counts against the run directories a `smoke` reproduction really makes). A run's cost is its training steps
(epochs x steps per epoch; evaluation passes are not counted) times the seconds of one step of its kind and size:

* **measured** on this machine's GPU, when it has one: :func:`measure_step_times` runs a few hundred steps of each
  kind of run in the real loops (real data where the data dir has it) and takes the median;
* else, for searches, **from the paper's own figures**, labelled so: a CIFAR-10 search costs 1 GPU-day (Table 1,
  DARTS-EGS at M = 4 and M = 7 alike) and a PTB search 0.5 GPU-day (Table 3), spread over the search's steps; a
  search of another size is scaled by its work per step (multiply-adds per image x images per batch for conv
  networks, with DARTS_V2 as the stand-in cell; parameters x tokens per batch for language models, each weight being
  used once per token). NAS-Bench-201 searches, which the paper does not run, take the CIFAR-10 search's step as a
  stand-in. The paper publishes no training time, and scaling the search's step to a training by work gives
  nonsense (a search step is far from bound by its multiply-adds: the paper's figure is 4.4 s per step of a 16-channel
  network), so without a GPU the trainings get their step counts and no GPU-hours.

Runs that a notebook reads from another notebook (07 reuses 02's M = 7 and M = 1 searches when their settings
agree) are listed once, by the notebook that runs them.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from egs.arch.genotype import Genotype
from egs.arch.published import DARTS_V2, DARTS_V2_RNN
from egs.core.errors import EGSError
from egs.profiles.experiments import search_settings, settings

# The paper's own figures (Chang et al. 2019): GPU-days of one search.
PAPER_SEARCH_DAYS = {"conv": 1.0, "rnn": 0.5}  # Table 1 (CIFAR-10) and Table 3 (PTB), search cost column
_CORPUS_TOKENS = {"ptb": 929_589, "wikitext2": 2_088_628}  # training tokens (Merity et al.'s splits)
_IMAGES = {"cifar10": 50_000, "imagenet": 1_281_167, "search": 25_000}  # training images (search: each half)


@dataclass
class PlannedRun:
    """One run of the plan: its notebook, label, settings, stand-in genotype (trainings), steps and step time."""

    notebook: str
    label: str
    cfg: Any
    genotype: Genotype | None = None
    reused_from: str | None = None
    seconds_per_step: float = math.nan
    source: str = ""

    @property
    def steps(self) -> int:
        return self.cfg.epochs * steps_per_epoch(self.cfg)

    @property
    def gpu_hours(self) -> float:
        return 0.0 if self.reused_from else self.steps * self.seconds_per_step / 3600


def steps_per_epoch(cfg: Any) -> int:
    """Training steps of one epoch of a run with settings ``cfg`` (its dataset's size over its batch)."""
    if hasattr(cfg, "bptt"):  # language models: streams x BPTT windows
        tokens = cfg.train_tokens or _CORPUS_TOKENS[cfg.corpus]
        return max(1, tokens // cfg.batch_size // cfg.bptt)
    if hasattr(cfg, "space"):  # searches: the search-train half
        return max(1, (cfg.train_size or _IMAGES["search"]) // cfg.batch_size)
    return max(1, (cfg.train_size or _IMAGES[cfg.dataset] - cfg.val_size) // cfg.batch_size)


def _family(cfg: Any) -> str:
    return "rnn" if hasattr(cfg, "bptt") else "nb201" if getattr(cfg, "space", "") == "nb201" else "conv"


def step_group(run: PlannedRun) -> str:
    """The kind and size of a run's step: runs of one group cost the same per step."""
    c = run.cfg
    if hasattr(c, "space"):
        size = f"emb {c.emb}, batch {c.batch_size}x{c.bptt}" if hasattr(c, "bptt") else \
            f"C {c.C}, {getattr(c, 'layers', getattr(c, 'cells', 0))} cells, {c.image_size}px, batch {c.batch_size}"
        return f"{_family(c)} search, M = {c.M}, {size}"
    if hasattr(c, "bptt"):
        return f"lm train {c.corpus}, emb {c.emb}, batch {c.batch_size}x{c.bptt}"
    return f"train {c.dataset}, C {c.C}, {c.layers} cells, {c.image_size}px, batch {c.batch_size}"


# ----------------------------------------------------------------------------------------------- the notebooks' runs
def _cells(n_searched: int, random: int, baselines: bool) -> list[str]:
    """Table 1's and 3's trained cells: the searched ones, the random ones, the published one and its twin."""
    return ([f"searched {i + 1}" for i in range(n_searched)] + [f"random {i + 1}" for i in range(random)]
            + (["DARTS_V2", "DARTS_V2 twin"] if baselines else []))


def _search_02(profile: str, p: dict, protocol: Any, seeds: list[int]) -> Iterator[tuple]:
    overrides = {k: p.get(k) for k in ("M", "lam", "mode", "cost", "rule", "epochs")}
    search_seeds = [int(s) for s in p.get("seeds") or protocol.search_seeds]
    for s in search_seeds:
        yield f"search seed {s}", search_settings(profile, seed=s, **overrides), None
    yield "Figure 3 search", search_settings(profile, seed=search_seeds[0], **{**overrides, "M": p.get("figure_M", 1)}), None
    if protocol.selection and len(search_seeds) > 1:
        for s in search_seeds:
            yield f"selection of search seed {s}", settings("select_cifar", profile), DARTS_V2


def _cifar_03(profile: str, p: dict, protocol: Any, seeds: list[int]) -> Iterator[tuple]:
    random = protocol.random_cells if p.get("random_cells") is None else int(p["random_cells"])
    baselines = p.get("baselines", True)
    searched = 1 if protocol.selection else len(protocol.search_seeds)
    random += (1 if protocol.random_search_cells else 0) + (searched if protocol.op_matched_cells else 0)
    for cell in _cells(searched, random if baselines else 0, baselines):
        for s in seeds:
            yield f"{cell}, seed {s}", settings("train_cifar", profile, epochs=p.get("epochs"), seed=s), DARTS_V2
    for k in range(protocol.random_search_cells if baselines else 0):
        yield f"selection of random cell {k + 1}", settings("select_cifar", profile), DARTS_V2


def _imagenet_04(profile: str, p: dict, protocol: Any, seeds: list[int]) -> Iterator[tuple]:
    from egs.conv.macs import fit_width
    cfg = fit_width(DARTS_V2, settings("train_imagenet", profile))  # the stand-in's width for both
    for cell in ("searched", "DARTS_V2"):
        yield cell, cfg, DARTS_V2


def _ptb_05(profile: str, p: dict, protocol: Any, seeds: list[int]) -> Iterator[tuple]:
    search = settings("rnn_search", profile, M=p.get("M"), mode=p.get("mode"), rule=p.get("rule"), seed=p.get("seed"))
    search_seeds = list(protocol.search_seeds) if protocol.selection and p.get("seed") is None else [search.seed]
    for s in search_seeds:
        yield f"search seed {s}", dataclasses.replace(search, seed=s), None
    yield "Figure 3c search", dataclasses.replace(search, M=p.get("figure_M", 1)), None
    for s in search_seeds if len(search_seeds) > 1 else ():
        yield f"selection of search seed {s}", settings("select_ptb", profile), DARTS_V2_RNN
    baselines = p.get("baselines", True)
    random = protocol.random_rnn_cells if p.get("random_cells") is None else int(p["random_cells"])
    random += (1 if protocol.random_search_rnn_cells else 0) + (1 if protocol.op_matched_cells else 0)
    for cell in _cells(1, random if baselines else 0, baselines):
        for s in seeds:
            yield f"{cell}, seed {s}", settings("lm_train_ptb", profile, seed=s), DARTS_V2_RNN
    for k in range(protocol.random_search_rnn_cells if baselines else 0):
        yield f"selection of random cell {k + 1}", settings("select_ptb", profile), DARTS_V2_RNN


def _wikitext_06(profile: str, p: dict, protocol: Any, seeds: list[int]) -> Iterator[tuple]:
    for cell in ("searched", "DARTS_V2")[: 2 if p.get("baselines", True) else 1]:
        yield cell, settings("lm_train_wikitext2", profile, seed=p.get("seed")), DARTS_V2_RNN


def _ablation_07(profile: str, p: dict, protocol: Any, seeds: list[int]) -> Iterator[tuple]:
    Ms = [int(M) for M in p.get("Ms") or range(1, 10)]
    train_Ms = [int(M) for M in p.get("train_Ms") or [M for M in protocol.ablation_Ms if M in Ms]]
    for M in Ms:
        yield f"search M = {M}", (search_settings(profile, M=M, epochs=p.get("search_epochs")) if M in train_Ms else
                                  settings("ablation_search", profile, M=M, epochs=p.get("search_epochs"))), None
    for M in train_Ms:
        for cell in ("EGS", "op-matched random")[: 2 if protocol.op_matched_cells else 1]:
            for s in seeds:
                yield (f"M = {M}, {cell}, seed {s}",
                       settings("ablation_train", profile, epochs=p.get("train_epochs"), seed=s), DARTS_V2)


def _nb201_08(profile: str, p: dict, protocol: Any, seeds: list[int]) -> Iterator[tuple]:
    nb = settings("nb201_protocol", profile, Ms=p.get("Ms"))
    for M in nb.Ms:
        for s in nb.search_seeds:
            yield f"EGS M = {M}, seed {s}", settings("nb201_search", profile, M=M, seed=s), None
    best = max(nb.Ms)  # chosen by the notebook on the validation column; the largest M costs most
    for s in (s for s in nb.best_seeds if s not in nb.search_seeds):
        yield f"EGS best M (costed at M = {best}), seed {s}", settings("nb201_search", profile, M=best, seed=s), None
    for s in nb.darts_seeds:
        yield f"DARTS, seed {s}", settings("nb201_search", profile, relaxation="darts", M=best, seed=s), None


_DECLARED = {"02_cifar10_search": _search_02, "03_cifar10_evaluation": _cifar_03, "04_imagenet_transfer": _imagenet_04,
             "05_ptb": _ptb_05, "06_wikitext2_transfer": _wikitext_06, "07_ablation_M": _ablation_07,
             "08_nas_bench_201": _nb201_08}  # notebook -> its runs, mirroring the notebook's own declarations


def notebook_runs(name: str, profile: str, params: Mapping[str, Any] | None = None) -> list[PlannedRun]:
    """The runs notebook ``name`` declares at ``profile`` with its parameters ``params`` (those that change which
    runs it makes: seeds, Ms, baselines, ...), each with a stand-in genotype for cells not yet searched."""
    p = dict(params or {})
    protocol = settings("protocol", profile)
    seeds = [int(s) for s in p.get("seeds") or protocol.seeds]
    declared = _DECLARED.get(name)
    return [PlannedRun(name, label, cfg, g) for label, cfg, g in (declared(profile, p, protocol, seeds) if declared
                                                                  else ())]


# ----------------------------------------------------------------------------------------------------- step times
def _macs_per_image(cfg: Any, genotype: Genotype) -> float:
    """Multiply-adds of one image through the network a conv run trains (a search: ``genotype``'s network at the
    search's size, the stand-in for its sampled networks)."""
    dataset = getattr(cfg, "dataset", "cifar10")
    return _macs(genotype, dataset, cfg.C, getattr(cfg, "layers", 8), cfg.image_size)


@functools.lru_cache(maxsize=None)
def _macs(genotype: Genotype, dataset: str, C: int, layers: int, image_size: int) -> float:
    from egs.conv.macs import count_macs
    from egs.conv.network import Network, NetworkImageNet
    net = NetworkImageNet(C, 1000, layers, genotype) if dataset == "imagenet" else Network(C, 10, layers, genotype)
    return float(count_macs(net, (3, image_size, image_size)).total)


def _lm_work_per_step(cfg: Any, genotype: Genotype) -> float:
    """Parameters x tokens of one step of a language-model run (each weight used once per token)."""
    import torch

    from egs.rnn.model import RNNModel
    with torch.device("meta"):
        params = sum(p.numel() for p in RNNModel(10_000, cfg.emb, cfg.emb, genotype).parameters())
    return float(params) * cfg.batch_size * cfg.bptt


def paper_step_times(runs: Iterable[PlannedRun], profile: str = "paper") -> None:
    """Fill each run's ``seconds_per_step`` from the paper's figures (the module docstring), labelled."""
    conv_ref = search_settings("paper")
    rnn_ref = settings("rnn_search", "paper")
    conv_s = PAPER_SEARCH_DAYS["conv"] * 86400 / (conv_ref.epochs * steps_per_epoch(conv_ref))
    rnn_s = PAPER_SEARCH_DAYS["rnn"] * 86400 / (rnn_ref.epochs * steps_per_epoch(rnn_ref))
    conv_work = _macs_per_image(conv_ref, DARTS_V2) * conv_ref.batch_size
    rnn_work = _lm_work_per_step(rnn_ref, DARTS_V2_RNN)
    done: dict[str, tuple[float, str]] = {}  # one estimate per step group (building the networks takes seconds)
    for run in runs:
        c, family, group = run.cfg, _family(run.cfg), step_group(run)
        if group in done:
            run.seconds_per_step, run.source = done[group]
            continue
        if family == "nb201":
            run.seconds_per_step = conv_s * c.batch_size / conv_ref.batch_size
            run.source = "paper Table 1's CIFAR-10 search step (stand-in; the paper has no NAS-Bench-201 run)"
        elif hasattr(c, "space"):
            ref_s, ref_work = (rnn_s, rnn_work) if family == "rnn" else (conv_s, conv_work)
            work = _lm_work_per_step(c, DARTS_V2_RNN) if family == "rnn" else _macs_per_image(c, DARTS_V2) * c.batch_size
            run.seconds_per_step = ref_s * work / ref_work
            run.source = f"paper Table {3 if family == 'rnn' else 1}: {PAPER_SEARCH_DAYS[family]:g} GPU-day per search"
        else:
            run.seconds_per_step = math.nan
            run.source = "the paper publishes no training time: measure it on a GPU (the module docstring)"
        done[group] = run.seconds_per_step, run.source


def measure_step_times(runs: Iterable[PlannedRun], steps: int = 200, warmup: int = 20,
                       device: str | None = None) -> dict[str, float]:
    """Median seconds per training step of each step group (:func:`step_group`) of ``runs``, timed over ``steps``
    steps (after ``warmup``) of the real loop in a scratch run directory, on ``device`` (default: the runs' own).
    A group whose data the data dir lacks (ImageNet, usually) is left out, and keeps its estimate."""
    import torch

    from egs.engine.loop import Interrupted
    from egs.families import family_of
    out: dict[str, float] = {}
    for run in runs:
        group = step_group(run)
        if group in out or run.reused_from:
            continue
        cfg = dataclasses.replace(run.cfg, epochs=1, log_every=10**6, tensorboard=False,
                                  **({"device": device} if device else {}))
        times: list[float] = []
        with tempfile.TemporaryDirectory() as scratch:
            try:
                if run.genotype is None:
                    loop = family_of(cfg.space).load("search_loop")(cfg, Path(scratch) / "run", progress=False)
                else:
                    from egs.conv.train import Trainer
                    from egs.rnn.train import LMTrainer
                    kind = LMTrainer if hasattr(cfg, "bptt") else Trainer
                    loop = kind(cfg, run.genotype, Path(scratch) / "run", progress=False)
            except EGSError:  # no data for it here
                continue
            step = loop.train_step
            sync = torch.cuda.synchronize if loop.device.type == "cuda" else (lambda: None)

            def timed(batch: Any, step: Any = step) -> Any:
                sync()
                start = time.perf_counter()
                result = step(batch)
                sync()
                times.append(time.perf_counter() - start)
                return result
            loop.train_step = timed
            try:
                loop.run(stop_after_steps=min(warmup + steps, steps_per_epoch(cfg)))
            except Interrupted:
                pass
        if len(times) > warmup:
            out[group] = statistics.median(times[warmup:])
    return out


# ------------------------------------------------------------------------------------------------------- the plan
@dataclass
class Plan:
    profile: str
    runs: list[PlannedRun]
    measured_on: str | None = None
    notebooks: list[str] = field(default_factory=list)

    def by_notebook(self) -> dict[str, list[PlannedRun]]:
        return {n: [r for r in self.runs if r.notebook == n] for n in self.notebooks}

    def text(self) -> str:
        """The plan as a readable report: per notebook, its runs by group with GPU-hours, then the total."""
        how = (f"step times measured on {self.measured_on}" if self.measured_on else
               "no GPU here: step times estimated from the paper's own figures (see each group's source); no step "
               "was measured")
        lines = [f"Plan of `egs reproduce --profile {self.profile}` ({how}); training steps only, evaluation passes "
                 "not counted.", ""]
        total, untimed_steps = 0.0, 0
        for notebook, runs in self.by_notebook().items():
            timed = [r for r in runs if not math.isnan(r.gpu_hours)]
            hours = sum(r.gpu_hours for r in timed)
            total += hours
            untimed = sum(r.steps for r in runs if math.isnan(r.gpu_hours))
            untimed_steps += untimed
            lines.append(f"{notebook}: {len([r for r in runs if not r.reused_from])} run(s), {hours:,.1f} GPU-hours"
                         + (f" + {untimed:,} training steps with no step time" if untimed else ""))
            groups: dict[tuple[str, int], list[PlannedRun]] = {}
            for r in runs:
                prefix = f"reused from {r.reused_from}: " if r.reused_from else ""
                groups.setdefault((prefix + step_group(r), r.cfg.epochs), []).append(r)
            for (group, _), members in groups.items():
                r = members[0]
                lines.append(f"  {len(members)} x {group}: {r.cfg.epochs} epochs x {steps_per_epoch(r.cfg):,} steps"
                             + ("" if r.reused_from else f": {r.source}" if math.isnan(r.seconds_per_step) else
                                f" x {r.seconds_per_step:.3f} s = {sum(m.gpu_hours for m in members):,.1f} GPU-hours "
                                f"({r.source})"))
            if not runs:
                lines.append("  no runs (Monte-Carlo draws on the CPU)")
        lines += ["", f"Total: {total:,.1f} GPU-hours ({total / 24:,.1f} GPU-days)"
                  + (f", plus {untimed_steps:,} training steps with no step time (run --plan on a GPU machine)"
                     if untimed_steps else "") + "."]
        return "\n".join(lines)


def plan(profile: str = "paper", only: Iterable[str] | None = None, extra: Mapping[str, Mapping[str, Any]] | None = None,
         measure: bool | None = None, steps: int = 200) -> Plan:
    """The plan of a reproduction at ``profile`` (all notebooks, or ``only``; ``extra``: their parameters, as
    :func:`egs.repro.reproduce.reproduce` takes them). ``measure``: time the steps here (None: when a GPU is
    present; ``$EGS_PLAN_MEASURE=1`` forces it)."""
    import torch

    from egs.repro.reproduce import STEPS, resolve_names
    given: dict[str, dict[str, Any]] = {}
    for name, params in (extra or {}).items():
        given.setdefault(resolve_names([name])[0], {}).update(params)
    names = resolve_names(only) if only else [s.name for s in STEPS]
    runs: list[PlannedRun] = []
    seen: dict[Any, str] = {}
    for name in names:
        for run in notebook_runs(name, profile, given.get(name)):
            same = (run.genotype is None, repr(dataclasses.asdict(run.cfg)))  # a search another notebook runs
            if run.genotype is None and same in seen:
                run.reused_from = seen[same]
            seen.setdefault(same, name)
            runs.append(run)
    paper_step_times(runs)
    if measure is None:
        measure = torch.cuda.is_available() or os.environ.get("EGS_PLAN_MEASURE") == "1"
    measured_on = None
    if measure:
        times = measure_step_times(runs, steps=steps)
        device = torch.cuda.get_device_name() if torch.cuda.is_available() else "this CPU"
        for run in runs:
            if step_group(run) in times:
                run.seconds_per_step, run.source = times[step_group(run)], f"measured, median of {steps} steps"
        measured_on = device
    return Plan(profile, runs, measured_on, names)
