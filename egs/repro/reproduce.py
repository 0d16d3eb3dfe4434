"""One command reproduces the paper: every notebook executed by papermill, in dependency order.

``python -m egs reproduce --profile cpu`` (and ``make reproduce``) runs ``notebooks/*.ipynb`` with
papermill (kernel ``python3``, working directory ``notebooks/``), each in its own process, passing
every notebook its ``profile``, ``figures_dir``, ``tables_dir``, its run directories and the files
made by the notebooks it depends on, all below the results folder (default ``results/<profile>/``):

* ``notebooks/``: the executed copies, each with the log of its papermill process (``.log``);
* ``tables/``: the tables (CSV, and markdown beside the paper's rows);
* ``genotypes/`` and ``runs/``: what one notebook hands to the next, and the (resumable) runs;
* ``reproduce.json``: what ran, with which parameters and notebook source (the skip rule below);
* ``README.md``: the summary: every notebook's status, wall time, profile and seed, its tables
  (markdown ones inlined) and figures.

Figures go to the checkout's ``figures/`` (the committed ones) only from the ``cpu`` reproduction;
at ``smoke`` and ``paper`` (and when a notebook runs on its own) to ``<results>/figures``, so that
neither the tests nor a direct run ever overwrite them.

Dependencies: 02 -> 03, 02 -> 04 and 02 -> 07 (04 reads only 02's genotype and 07 reuses 02's searches,
so neither waits for 03), 05 -> 06; 01 stands alone. A failing notebook is reported with its failing cell;
the notebooks that need it are skipped; the others still run. A notebook is skipped as complete when its previous run
succeeded with the same parameters, notebook source and input files and all its outputs exist
(``force`` runs it again; its finished runs in ``runs/`` are still reused by the notebook itself).
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from egs.core.checks import check_int
from egs.core.errors import EGSError, warn
from egs.core.files import JSONFileError, read_json, write_json, write_text
from egs.core.paths import figures_dir, repo_root, results_dir
from egs.profiles.experiments import settings
from egs.profiles.fields import FIELD_CHECKS, check_profile
from egs.repro.guard import ReproductionLock, die_with_parent


def _files(stems: Iterable[str], *suffixes: str) -> tuple[str, ...]:
    return tuple(f"{stem}.{suffix}" for stem in stems for suffix in suffixes)


@dataclass(frozen=True)
class Step:
    """One notebook and its wiring; paths are relative to the results folder."""

    name: str
    needs: tuple[str, ...] = ()
    inputs: Mapping[str, str] = field(default_factory=dict)  # parameter -> file made by a notebook in needs
    outputs: Mapping[str, str] = field(default_factory=dict)  # parameter -> file this notebook makes
    runs: Mapping[str, str] = field(default_factory=dict)  # parameter -> run directory (a resumable cache)
    tables: tuple[str, ...] = ()
    figures: tuple[str, ...] = ()
    files: tuple[str, ...] = ()  # more files it leaves whatever its parameters (relative to the results folder)
    experiment: str | None = None  # settings whose seed applies when the notebook's seed is None
    datasets: tuple[str, ...] = ()  # what it reads from the data dir (fetched first when missing)

    def products(self, results: Path, tables: Path, figures: Path) -> list[Path]:
        """Every file the notebook must leave behind in these folders (its executed copy aside)."""
        return [*(results / rel for rel in (*self.outputs.values(), *self.files)), *(tables / t for t in self.tables),
                *(figures / f for f in self.figures)]


_GENOTYPE, _RNN_GENOTYPE = "genotypes/02_egs_genotype.json", "genotypes/05_rnn_genotype.json"
STEPS = (
    Step("01_sampling_distribution",
         tables=("01_fig1_codes.csv", "01_prop2_inclusion.csv", "01_prop3_num_codes.csv", "01_num_active_ops.csv"),
         figures=_files(("fig1_gumbel_vs_ensemble", "prop2_inclusion_probability", "num_active_ops_K8"), "png", "pdf")),
    Step("02_cifar10_search", outputs={"genotype_out": _GENOTYPE}, runs={"run_dir": "runs/02_search"},
         tables=("02_search_summary.csv",), files=("runs/02_search/figure3/summary.json",), experiment="search",
         datasets=("cifar10",),
         figures=_files(("02_search_curves", "02_p_evolution", "02_entropy"), "png", "pdf")
         + _files(("fig3a_normal_cell", "fig3b_reduction_cell", "02_normal_cell_searched",
                   "02_reduction_cell_searched"), "png", "svg")),
    Step("03_cifar10_evaluation", needs=("02_cifar10_search",),
         inputs={"genotype": _GENOTYPE}, runs={"run_root": "runs/03_eval", "search_root": "runs/02_search"},
         tables=_files(("table1_cifar10",), "md", "csv"),
         figures=_files(("03_eval_curves",), "png", "pdf"), experiment="train_cifar", datasets=("cifar10",)),
    Step("04_imagenet_transfer", needs=("02_cifar10_search",), inputs={"genotype": _GENOTYPE},
         runs={"run_root": "runs/04_imagenet"}, tables=_files(("table2_imagenet",), "md", "csv"),
         experiment="train_imagenet"),
    Step("05_ptb", outputs={"genotype_out": _RNN_GENOTYPE}, runs={"run_root": "runs/05_ptb"},
         tables=_files(("table3_ptb",), "md", "csv"), files=("runs/05_ptb/search/summary.json",),
         experiment="rnn_search", datasets=("ptb",),
         figures=_files(("05_rnn_search_curves",), "png", "pdf") + _files(("fig3c_recurrent_cell",), "png", "svg")),
    Step("06_wikitext2_transfer", needs=("05_ptb",), inputs={"genotype": _RNN_GENOTYPE},
         runs={"run_root": "runs/06_wikitext2"}, tables=_files(("table4_wikitext2",), "md", "csv"),
         files=("runs/06_wikitext2/egs/summary.json",), experiment="lm_train_wikitext2",
         datasets=("wikitext2",)),
    Step("07_ablation_M", needs=("02_cifar10_search",), runs={"run_root": "runs/07_ablation_M",
                                                               "search_root": "runs/02_search"},
         tables=_files(("table5_ablation_M",), "md", "csv") + ("07_rule_sizes.csv",),
         figures=_files(("table5_ablation_M",), "png", "pdf"), experiment="ablation_search",
         datasets=("cifar10",)),
    Step("08_nas_bench_201", runs={"run_root": "runs/08_nas_bench_201"}, tables=_files(("table_nb201",), "md", "csv"),
         figures=_files(("08_nb201_distribution", "08_nb201_anytime", "08_nb201_ranking"), "png", "pdf"),
         experiment="nb201_search", datasets=("cifar10", "nas-bench-201")),
)
STEP = {s.name: s for s in STEPS}
OK = ("done", "complete")


def resolve_names(names: Iterable[str]) -> list[str]:
    """Notebook names from ``01``, ``02_cifar10_search`` or ``02_cifar10_search.ipynb`` (commas split)."""
    out = []
    for part in (p.strip() for raw in names for p in str(raw).split(",")):
        key = part.removesuffix(".ipynb")
        hits = [s.name for s in STEPS if key in (s.name, s.name.split("_")[0])]
        if not hits:
            raise EGSError(f"unknown notebook {part!r}; choose among {', '.join(STEP)} (or their numbers 01..07).")
        out += [h for h in hits if h not in out]
    return [s.name for s in STEPS if s.name in out]


def notebook_parameters(path: Path) -> dict[str, Any]:
    """Names and default values of the notebook's code cell tagged ``parameters``."""
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            out = {}
            for node in ast.parse("".join(cell["source"])).body:
                for target in getattr(node, "targets", []):
                    if isinstance(target, ast.Name):
                        try:
                            out[target.id] = ast.literal_eval(node.value)
                        except ValueError:
                            out[target.id] = None
            return out
    raise EGSError(f"{path} has no code cell tagged 'parameters'; papermill needs one to pass the profile.")


def parse_param(item: str) -> tuple[str, str, Any]:
    """``NOTEBOOK:KEY=VALUE`` (the CLI's ``--param``); the value is read as JSON when it parses."""
    name, colon, assignment = item.partition(":")
    key, equals, value = assignment.partition("=")
    if not (colon and equals and key):
        raise EGSError(f"--param {item!r} must look like NOTEBOOK:KEY=VALUE, e.g. --param 01:seed=3.")
    try:
        return resolve_names([name])[0], key, json.loads(value)
    except json.JSONDecodeError:
        return resolve_names([name])[0], key, value


def _read_state(path: Path) -> dict[str, Any]:
    """``reproduce.json``, or {} (with one warning) if it is missing or damaged: then nothing counts as complete."""
    if not path.is_file():
        return {}
    try:
        state = read_json(path, "reproduction record")
    except (JSONFileError, OSError) as err:
        warn(f"{path} is damaged ({getattr(err, 'reason', err)}); every selected notebook runs again (their "
             "finished runs are reused).")
        return {}
    return state if isinstance(state, dict) else {}


OWN_PARAMETERS = {"profile": "--profile", "figures_dir": "--figures", "tables_dir": "--results",
                  "executor": "--executor", "executor_options": "--executor-option"}  # set by reproduce
EXECUTOR_PARAMETERS = ("executor", "executor_options")


def check_executor(executor: str | None) -> str:
    """``executor`` (None: inline), refused with one line unless :mod:`egs.repro.fanout` has it."""
    from egs.repro.fanout import EXECUTORS
    if executor is None:
        return "inline"
    if executor not in EXECUTORS:
        raise EGSError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)} (--executor).")
    return executor


def check_param(notebook: str, key: str, value: Any, default: Any) -> Any:
    """``value`` for the parameter ``key`` of ``notebook`` (declared with ``default``), checked before anything runs:
    a setting's name is checked as the settings check it (:data:`egs.profiles.fields.FIELD_CHECKS`), any other
    parameter against its default's type; one EGSError naming the notebook, the parameter and the expected type."""
    if key in OWN_PARAMETERS:
        raise EGSError(f"--param {notebook}:{key}=... is refused: {key} is set by the reproduction (give "
                       f"{OWN_PARAMETERS[key]} instead), so that the summary states what each notebook ran with.")
    if key in FIELD_CHECKS and value is not None:
        try:
            FIELD_CHECKS[key](value, key)
        except EGSError as err:
            raise EGSError(f"--param {notebook}:{key}: {err}") from None
        return value
    if default is None:
        return value

    def like(v: Any, d: Any) -> bool:  # v has d's type (an int passes for a float; a bool only for a bool)
        kinds = (list, tuple) if isinstance(d, (list, tuple)) else (int, float) if type(d) is float else (type(d),)
        return isinstance(v, kinds) and (isinstance(v, bool) == isinstance(d, bool))
    ok = like(value, default)
    if isinstance(default, (list, tuple)) and default:
        ok = ok and all(like(v, default[0]) for v in value)
        expected_text = f"a list of {type(default[0]).__name__} (like {list(default)!r})"
    else:
        expected_text = f"{type(default).__name__} (like {default!r})"
    if not ok:
        raise EGSError(f"--param {notebook}:{key}={value!r} must be {expected_text}, got {type(value).__name__}; "
                       "numbers and lists are read as JSON, e.g. --param 01:seed=3 or --param 07:Ms=[1,4].")
    return value


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Outcome:
    """What became of one notebook: ``done``, ``complete`` (skipped, up to date), ``failed`` or ``skipped``."""

    name: str
    status: str
    reason: str = ""
    wall_s: float | None = None
    seed: Any = None
    executed: str | None = None


@dataclass
class Report:
    profile: str
    results: Path
    summary: Path
    outcomes: dict[str, Outcome]

    @property
    def ok(self) -> bool:
        return all(o.status in OK for o in self.outcomes.values())

    @property
    def executed(self) -> list[str]:
        """The notebooks papermill ran this time (finished or failed)."""
        return sorted(n for n, o in self.outcomes.items() if o.status in ("done", "failed"))

    def problems(self) -> list[str]:
        return [f"{o.name} {o.status}: {o.reason}" for o in self.outcomes.values() if o.status not in OK]


class _Layout:
    """Where a reproduction reads and writes."""

    def __init__(self, profile: str, results: str | os.PathLike | None, figures: str | os.PathLike | None,
                 notebooks: str | os.PathLike | None, executor: str | None = None,
                 executor_options: Mapping[str, Any] | None = None) -> None:
        self.profile = profile
        self.results = Path(results).resolve() if results else results_dir(profile)
        default_figures = figures_dir() if profile == "cpu" else self.results / "figures"  # cpu refreshes figures/
        self.figures = Path(figures).resolve() if figures else default_figures
        self.tables, self.executed = self.results / "tables", self.results / "notebooks"
        self.notebooks = Path(notebooks).resolve() if notebooks else repo_root() / "notebooks"
        self.state = self.results / "reproduce.json"
        self.executor = check_executor(executor)
        self.executor_options = dict(executor_options or {})
        if self.executor == "slurm":  # submitit's logs and pickles, beside the runs
            self.executor_options.setdefault("folder", str(self.results / "submitit"))


class _Plan:
    """One selected notebook: its source, the parameters it gets, what it must leave behind."""

    def __init__(self, step: Step, layout: _Layout, extra: Mapping[str, Any]) -> None:
        self.step, self.layout = step, layout
        self.source = layout.notebooks / f"{step.name}.ipynb"
        if not self.source.is_file():
            raise EGSError(f"notebook {self.source} is missing; pass --notebooks DIR holding {step.name}.ipynb.")
        declared = notebook_parameters(self.source)
        params: dict[str, Any] = {"profile": layout.profile}
        folders = (("figures_dir", layout.figures), ("tables_dir", layout.tables))
        params |= {k: str(v) for k, v in folders if k in declared}
        wired = {**step.inputs, **step.outputs, **step.runs}
        params |= {k: str(layout.results / rel) for k, rel in wired.items()}
        if "executor" in declared:  # how the notebook's runs are run (egs.repro.fanout), not what they compute
            params |= {"executor": layout.executor, "executor_options": layout.executor_options or None}
        params |= {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in extra.items()}
        unknown = sorted(set(params) - set(declared))
        if unknown:
            raise EGSError(f"{self.source.name} has no parameter(s) {', '.join(unknown)}; its parameters cell "
                           f"declares {', '.join(declared)}.")
        for key in extra:
            check_param(step.name, key, params[key], declared[key])
        self.params = params
        self.values = {**declared, **params}
        # Inputs overridden by the caller (e.g. genotype=DARTS_V2) are not waited for.
        self.inputs = {k: layout.results / rel for k, rel in step.inputs.items()
                       if params[k] == str(layout.results / rel)}
        self.executed = layout.executed / self.source.name
        self.log = self.executed.with_suffix(".log")

    def seed(self) -> Any:
        for key in ("seed", "seeds"):
            if self.values.get(key) is not None:
                return self.values[key]
        return settings(self.step.experiment, self.layout.profile).seed if self.step.experiment else None

    def missing_inputs(self) -> list[str]:
        return [f"{k}={path}" for k, path in self.inputs.items() if not path.exists()]

    def products(self) -> list[Path]:
        """Every file the notebook must leave behind (the executed copy included)."""
        layout = self.layout
        return [self.executed, *self.step.products(layout.results, layout.tables, layout.figures)]

    def fingerprint(self) -> dict[str, Any]:
        """What decides whether a complete notebook is up to date: its parameters (but the executor, which changes
        how its runs are run, not their results), its source and its input files."""
        params = {k: v for k, v in self.params.items() if k not in EXECUTOR_PARAMETERS}
        return {"params": params, "source": _sha256(self.source),
                "inputs": {k: _sha256(p) for k, p in self.inputs.items() if p.is_file()}}

    def execute(self, jobs: int, guard: ReproductionLock) -> tuple[int, float]:
        """Run papermill in its own process, which dies with this one (:mod:`egs.repro.guard`); its output goes to
        the ``.log`` beside the executed copy."""
        import yaml  # papermill's own dependency; its -y option reads YAML

        # Papermill's kernels are no JupyterLab session: without the session marker that a kernel or terminal of
        # JupyterLab passes on, egs.engine.progress.progress_style() gives one line per epoch ($EGS_PROGRESS still decides).
        env = guard.child_env({k: v for k, v in os.environ.items() if k != "JPY_SESSION_NAME"})
        if jobs > 1:  # one share of the cores per concurrent notebook, unless set (torch reads these at start)
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
            for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                env.setdefault(var, str(max(1, cores // jobs)))
        self.executed.parent.mkdir(parents=True, exist_ok=True)
        self.executed.unlink(missing_ok=True)  # a copy left by an earlier run must not pass for this one's
        command = [sys.executable, "-m", "papermill", str(self.source), str(self.executed), "-k", "python3",
                   "--cwd", str(self.source.parent), "--no-progress-bar", "-y", yaml.safe_dump(self.params)]
        start = time.perf_counter()
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                            env=env, preexec_fn=die_with_parent)
            code = self.process.wait()
        return code, time.perf_counter() - start

    def stop(self) -> None:
        """End a papermill run that is still going (its kernel follows within a second)."""
        process = getattr(self, "process", None)
        if process is not None and process.poll() is None:
            process.terminate()

    def failure(self, code: int) -> str:
        """The failing cell (index in the notebook, first line, exception) and where to look."""
        where = f"executed copy {self.executed}, log {self.log}"
        if self.executed.is_file():
            index = -1
            for cell in json.loads(self.executed.read_text())["cells"]:
                tags = cell.get("metadata", {}).get("tags", [])
                if "papermill-error-cell-tag" in tags or "injected-parameters" in tags:
                    continue
                index += 1
                for out in cell.get("outputs", []):
                    if out.get("output_type") == "error":
                        first = next((line for line in "".join(cell["source"]).splitlines() if line.strip()), "")
                        return (f"cell {index} (In [{cell.get('execution_count')}]) {first.strip()!r} raised "
                                f"{out['ename']}: {out['evalue']}; {where}")
        lines = [line for line in self.log.read_text().splitlines() if line.strip()] if self.log.is_file() else []
        return f"papermill exited with status {code}: {lines[-1] if lines else 'no output'}; {where}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m {secs:02d}s" if minutes else f"{seconds:.1f}s"


class _Run:
    """One reproduction: the plans of the selected notebooks, what became of each, and the state file."""

    def __init__(self, profile: str, layout: _Layout, plans: dict[str, _Plan], jobs: int, force: bool,
                 echo: Callable[[str], None], guard: ReproductionLock) -> None:
        self.profile, self.layout, self.plans, self.guard = profile, layout, plans, guard
        self.jobs, self.force, self.echo = jobs, force, echo
        self.state = _read_state(layout.state)
        self.records = self.state.setdefault("notebooks", {})
        self.state["profile"] = profile
        self.outcomes: dict[str, Outcome] = {}
        self.running: dict[Any, str] = {}

    def ready(self, name: str) -> bool:
        """Not yet run or running, every selected notebook it needs settled, and a free job slot."""
        waiting = [d for d in STEP[name].needs if d in self.plans and d not in self.outcomes]
        return (name not in self.outcomes and name not in self.running.values() and not waiting
                and len(self.running) < self.jobs)

    def settle(self, name: str, status: str, reason: str = "", wall: float | None = None) -> None:
        plan = self.plans[name]
        self.outcomes[name] = Outcome(name, status, reason, wall, plan.seed(), str(plan.executed))
        self.echo(f"reproduce: {name} {status}" + (f" in {_duration(wall)}" if wall is not None else "")
                  + (f": {reason}" if reason else ""))

    def blocker(self, name: str) -> str | None:
        """Why ``name`` cannot run (a needed notebook failed or an input file is missing), or None."""
        needs = [d for d in STEP[name].needs if d in self.plans]
        bad = [d for d in needs if self.outcomes[d].status not in OK]
        if bad:
            return f"it needs {bad[0]}, which {self.outcomes[bad[0]].status}"
        missing = self.plans[name].missing_inputs()
        if missing:
            need = STEP[name].needs[0]
            return (f"missing input {missing[0]}; run {need} first "
                    f"(python -m egs reproduce --profile {self.profile} --only {need})")
        return None

    def launch(self, name: str, pool: ThreadPoolExecutor) -> None:
        """Skip ``name`` (blocked, or complete and unchanged) or submit its papermill run to ``pool``."""
        plan = self.plans[name]
        reason = self.blocker(name)
        if reason:
            return self.settle(name, "skipped", reason)
        record, fingerprint = self.records.get(name, {}), plan.fingerprint()
        if (not self.force and record.get("status") == "ok" and record.get("fingerprint") == fingerprint
                and all(p.exists() for p in plan.products())):
            self.outcomes[name] = Outcome(name, "complete", "up to date (parameters, source and inputs unchanged; "
                                          "--force runs it again)", record.get("wall_s"), plan.seed(),
                                          str(plan.executed))
            return self.echo(f"reproduce: {name} complete, skipped (--force runs it again)")
        self.echo(f"reproduce: {name} started (profile {self.profile})")
        self.running[pool.submit(plan.execute, self.jobs, self.guard)] = name
        self.records[name] = {"status": "running", "fingerprint": fingerprint}

    def finish(self, name: str, code: int, wall: float) -> None:
        """Record a finished papermill run: done only if it exited 0 and left every product."""
        plan = self.plans[name]
        absent = [str(p) for p in plan.products() if not p.exists()]
        if code == 0 and not absent:
            self.settle(name, "done", wall=wall)
        else:
            self.settle(name, "failed", plan.failure(code) if code else f"it did not write {', '.join(absent)}", wall)
        self.records[name] |= {"status": "ok" if self.outcomes[name].status == "done" else "failed", "wall_s": wall,
                               "seed": plan.seed(), "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
                               "reason": self.outcomes[name].reason}
        write_json(self.layout.state, self.state)

    def execute(self) -> None:
        """Run every plan, ``jobs`` at a time, each as soon as what it needs has settled."""
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            try:
                while len(self.outcomes) < len(self.plans):
                    for name in self.plans:
                        if self.ready(name):
                            self.launch(name, pool)
                    if self.running:
                        for future in wait(self.running, return_when=FIRST_COMPLETED).done:
                            self.finish(self.running.pop(future), *future.result())
            except BaseException as stop:  # Ctrl-C, SIGTERM: the notebooks still running end with the command
                for name in self.running.values():
                    self.plans[name].stop()
                    self.settle(name, "failed", f"stopped with the reproduction ({str(stop) or type(stop).__name__})")
                    self.records[name]["status"] = "failed"
                raise


def reproduce(profile: str = "cpu", only: Iterable[str] | None = None, jobs: int = 1, force: bool = False,
              results: str | os.PathLike | None = None, figures: str | os.PathLike | None = None,
              notebooks: str | os.PathLike | None = None, extra: Mapping[str, Mapping[str, Any]] | None = None,
              echo: Callable[[str], None] = print, executor: str | None = None,
              executor_options: Mapping[str, Any] | None = None) -> Report:
    """Execute the notebooks (all, or ``only`` those named) at ``profile``; see the module docstring.

    ``executor`` and ``executor_options`` say how each notebook runs its searches and trainings
    (:mod:`egs.repro.fanout`: ``inline``, the default, ``local`` or ``slurm``); ``jobs`` notebooks run at a time.

    ``extra`` maps a notebook name (any form :func:`resolve_names` takes) to more parameters, e.g.
    ``{"04": {"imagenet_dir": "/data"}}``. Returns the :class:`Report`; ``report.ok`` is False when a
    selected notebook failed or was skipped.
    """
    check_profile(profile)
    check_int(jobs, "jobs", 1, "it is how many notebooks run at the same time")
    layout = _Layout(profile, results, figures, notebooks, executor, executor_options)
    given: dict[str, dict[str, Any]] = {}
    for name, params in (extra or {}).items():
        given.setdefault(resolve_names([name])[0], {}).update(params)
    selected = resolve_names(only) if only else [s.name for s in STEPS]
    plans = {name: _Plan(STEP[name], layout, given.get(name, {})) for name in selected}  # checked before anything runs
    guard = ReproductionLock(layout.results, layout.figures, echo)
    try:
        fetch_datasets(sorted({d for name in selected for d in STEP[name].datasets}), echo)
        run = _Run(profile, layout, plans, jobs, force, echo, guard)
        start = time.perf_counter()
        try:
            run.execute()
        finally:
            write_json(layout.state, run.state)
            summary = write_summary(layout, run.outcomes, run.records)
    finally:
        guard.release()
    ok = sum(o.status in OK for o in run.outcomes.values())
    echo(f"reproduce: {ok}/{len(run.outcomes)} notebooks ok in {_duration(time.perf_counter() - start)}; "
         f"summary in {summary}")
    return Report(profile, layout.results, summary, run.outcomes)


def fetch_datasets(names: Iterable[str], echo: Callable[[str], None] = print) -> None:
    """Fetch each dataset in ``names`` that the data dir lacks, as ``egs data fetch`` does (from
    ``$EGS_DATA_MIRROR`` when set, else the canonical source), before any notebook starts."""
    from egs.data import fetch as data
    for name in names:
        try:
            data.locate(name)
        except EGSError:
            mirror = os.environ.get("EGS_DATA_MIRROR")
            echo(f"reproduce: fetching {name} into {data.data_dir()} from {mirror or data.spec(name).url}")
            data.fetch(name, progress=False)


def write_summary(layout: _Layout, outcomes: Mapping[str, Outcome], records: Mapping[str, Any]) -> Path:
    """``<results>/README.md``: every notebook's status, wall time, profile, seed, tables and figures."""
    def rel(path: Path) -> str:
        return Path(os.path.relpath(path, layout.results)).as_posix()

    lines = [f"# Reproduction at profile `{layout.profile}`", "",
             f"Written by `python -m egs reproduce --profile {layout.profile}` on {time.strftime('%Y-%m-%d %H:%M')}. "
             "Numbers at `smoke` and `cpu` are real measurements at reduced sizes, not the paper's; each table "
             "prints the paper's rows beside them and labels the measured rows with their profile and run.", "",
             "| notebook | status | wall time | profile | seed | executed copy |", "|---|---|---|---|---|---|"]
    sections = []
    for step in STEPS:
        outcome, record = outcomes.get(step.name), records.get(step.name, {})
        if outcome:
            status = outcome.status + (f" ({outcome.reason})" if outcome.status not in OK else "")
            wall, seed = outcome.wall_s, outcome.seed
        elif record:
            status = f"not run this time (last: {record.get('status')}, {record.get('finished', '-')})"
            wall, seed = record.get("wall_s"), record.get("seed")
        else:
            continue
        executed = layout.executed / f"{step.name}.ipynb"
        link = f"[{rel(executed)}]({rel(executed)})" if executed.is_file() else "-"
        lines.append(f"| {step.name} | {status} | {_duration(wall)} | {layout.profile} | {seed} | {link} |")
        sections += ["", f"## {step.name}"]
        for table in (layout.tables / t for t in step.tables if (layout.tables / t).is_file()):
            sections += ["", f"Table [{rel(table)}]({rel(table)})"]
            if table.suffix == ".md":
                sections += ["", table.read_text().strip()]
        for figure in (layout.figures / f for f in step.figures if (layout.figures / f).is_file()):
            sections += ["", f"Figure [{rel(figure)}]({rel(figure)})"]
            if figure.suffix == ".png":
                sections += ["", f"![{figure.stem}]({rel(figure)})"]
    total = sum(o.wall_s or 0 for o in outcomes.values() if o.status in ("done", "failed"))
    lines += ["", f"Wall time of the notebooks executed this time: {_duration(total)}.", *sections]
    return write_text(layout.results / "README.md", "\n".join(lines) + "\n")
