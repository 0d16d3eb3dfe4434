"""Fan-out: the independent runs a notebook needs, handed to an executor, their summaries read back.

A notebook declares every search and training it needs as a :class:`RunSpec` (its settings, the genotype a
training trains, its run directory) and calls :func:`run_all`, which returns each run's summary. What each run
directory holds decides what happens to it (:func:`run_state`), by the run's **key**: the digest of every setting
that can change its results (:func:`egs.engine.rundir.settings_fingerprint` of the settings and the genotype, the
same digest its checkpoints record):

* ``complete`` (a summary, written with this key): its summary is read back; it never runs again;
* ``partial`` (a checkpoint of this key, no summary): it resumes from its checkpoint, exactly;
* ``stale`` (written with another key: the settings changed): the old directory is moved aside, to
  ``<name>.superseded-<old key>``, and the run starts afresh;
* ``new``: it starts.

A run directory another process is writing (its lock is held: another notebook, or a job of an earlier
reproduction still running) is waited for, then judged again, so two notebooks never train the same run at once.

Executors (``executor``, with ``options``):

* ``inline`` (the default): one run after the other in this process, with progress bars: today's notebooks.
* ``local``: a pool of worker processes (``concurrent.futures``, spawned), one run per worker at a time, each
  worker pinned to one device: a GPU each on a CUDA machine (``workers`` defaults to the GPUs), else a share of
  the CPU cores (``workers`` defaults to this process's torch threads, one thread each; ``threads`` sets the
  threads of each worker). ``egs reproduce --jobs J`` gives each of the J notebooks running at once 1/J of the
  cores, so on CPU J notebooks times their workers never exceed the cores.
* ``slurm``: every run a job of `submitit <https://github.com/facebookincubator/submitit>`_ (``AutoExecutor``):
  the options are submitit's parameters (``timeout_min``, ``gpus_per_node``, ``cpus_per_task``, ``mem_gb``,
  ``slurm_partition``, ``slurm_account``, ...), plus ``folder`` (its logs; default ``submitit/`` in the working
  directory) and ``cluster`` (``None``: SLURM where ``sbatch`` exists; ``"local"``: submitit's local executor,
  which the tests use). A job stopped by SLURM's time limit or a preemption is requeued and resumes from its last
  epoch checkpoint (:class:`_Job`).

A run that fails does not stop the others; once all have ended, :func:`run_all` raises one error naming each
failed run and its run directory (rerunning resumes them; the complete ones are read back).
"""
from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from egs.arch.genotype import Genotype
from egs.core.errors import EGSError
from egs.core.files import JSONFileError, read_json
from egs.core.locks import wait_for_lock
from egs.families import family_of

EXECUTORS = ("inline", "local", "slurm")
_LOCAL_OPTIONS = ("workers", "threads")


@dataclass(frozen=True)
class RunSpec:
    """One independent run: a search (``genotype`` None: ``cfg`` names its space) or the training of ``genotype``
    with settings ``cfg``, in ``run_dir``."""

    cfg: Any
    run_dir: Path
    genotype: Genotype | None = None
    data_root: str | None = None  # where its dataset is (None: the data dir); not part of its key

    @property
    def kind(self) -> str:
        return "search" if self.genotype is None else "train"

    def record(self) -> dict[str, Any]:
        """What the run writes to its ``config.json``: its settings, and the genotype of a training."""
        return {**asdict(self.cfg), **({"genotype": self.genotype.to_dict()} if self.genotype is not None else {})}

    @property
    def key(self) -> str:
        """The digest of every setting that can change the run's results (its checkpoints record the same)."""
        from egs.engine.rundir import settings_fingerprint
        return settings_fingerprint(json.loads(json.dumps(self.record(), default=str)))

    def __post_init__(self) -> None:
        object.__setattr__(self, "run_dir", Path(self.run_dir))
        if self.genotype is None and not hasattr(self.cfg, "space"):
            raise EGSError(f"RunSpec({self.run_dir}): {type(self.cfg).__name__} is a training's settings, so it needs "
                           "the genotype it trains (genotype=...).")


def _stored_key(run_dir: Path) -> str | None:
    """The key of the run that ``run_dir`` holds (from its ``config.json``), or None if it has none (or a damaged
    one: the run's own checks restore it from its checkpoint)."""
    from egs.engine.rundir import settings_fingerprint  # (torch: imported only when runs are judged)
    try:
        config = read_json(run_dir / "config.json", "run's settings")
    except (JSONFileError, OSError):
        return None
    return settings_fingerprint(config) if isinstance(config, dict) else None


def run_state(spec: RunSpec) -> str:
    """``complete``, ``partial``, ``stale`` or ``new`` (the module docstring): what ``spec``'s directory holds."""
    stored = _stored_key(spec.run_dir)
    if stored is not None and stored != spec.key:
        return "stale"
    if stored == spec.key and (spec.run_dir / "summary.json").is_file():
        return "complete"
    return "partial" if (spec.run_dir / "checkpoint.pt").is_file() else "new"


def _supersede(run_dir: Path) -> Path:
    """Move a run made with other settings aside (never delete results) and say where."""
    old = run_dir.with_name(f"{run_dir.name}.superseded-{_stored_key(run_dir)}")
    if old.exists():
        shutil.rmtree(old)
    run_dir.rename(old)
    print(f"fanout: {run_dir} held a run with other settings; moved it to {old} and starting afresh")
    return old


def execute(spec: RunSpec, progress: bool = False, threads: int | None = None) -> dict[str, Any]:
    """Bring ``spec``'s run to completion (or read it back) and return its summary; the one function every
    executor runs. ``threads``: torch's intra-op threads in this process (None: leave them)."""
    import torch

    from egs.core.locks import LockBusy
    if threads:
        torch.set_num_threads(threads)
    while True:
        wait_for_lock(spec.run_dir / ".lock", timeout=float("inf"), poll=1.0) if spec.run_dir.is_dir() else None
        state = run_state(spec)
        if state == "complete":
            return read_json(spec.run_dir / "summary.json", "run summary")
        if state == "stale":
            _supersede(spec.run_dir)
        resume = state == "partial"
        try:
            if spec.genotype is None:
                loop = family_of(spec.cfg.space).load("search_loop")
                return loop(spec.cfg, spec.run_dir, resume=resume, data_root=spec.data_root, progress=progress).run()
            trainer = family_of(spec.genotype.space).load("trainer")
            return trainer(spec.cfg, spec.genotype, spec.run_dir, resume=resume, data_root=spec.data_root,
                           progress=progress)
        except LockBusy as err:  # taken between the wait and the run's own lock: wait again
            if "(this process)" in str(err):
                raise
            continue


def _worker_init(devices: Any, threads: int) -> None:
    """A local worker: dies with its parent, takes one device off the queue (a GPU: it sees only that one)."""
    from egs.repro.guard import die_with_parent
    die_with_parent()
    device = devices.get()
    if device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(device)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch
    torch.set_num_threads(threads)


def _gpus() -> int:
    import torch
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _local(specs: list[RunSpec], options: Mapping[str, Any], echo: Callable[[str], None]) -> list[Any]:
    import multiprocessing

    import torch
    unknown = sorted(set(options) - set(_LOCAL_OPTIONS))
    if unknown:
        raise EGSError(f"executor 'local' has no option(s) {', '.join(unknown)}; it takes {', '.join(_LOCAL_OPTIONS)}.")
    gpus = _gpus()
    workers = int(options.get("workers") or gpus or torch.get_num_threads())
    if workers < 1 or (gpus and workers > gpus):
        raise EGSError(f"executor 'local': workers={workers} must be between 1 and "
                       f"{gpus or 'the cores'} (one run per device); omit it to use every device.")
    threads = int(options.get("threads") or max(1, torch.get_num_threads() // (1 if gpus else workers)))
    context = multiprocessing.get_context("spawn")
    devices = context.Queue()
    for i in range(workers):
        devices.put(i if gpus else None)
    out: list[Any] = [None] * len(specs)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init,
                             initargs=(devices, threads)) as pool:
        futures = {pool.submit(execute, spec): i for i, spec in enumerate(specs)}
        for future in as_completed(futures):
            i = futures[future]
            out[i] = _outcome(future.result, specs[i], echo)
    return out


class _Job:
    """A submitit job: run ``spec`` (:func:`execute`); when SLURM stops it (time limit, preemption) submitit calls
    :meth:`checkpoint`, and the job is requeued: the run resumes from its last epoch checkpoint."""

    def __init__(self, spec: RunSpec, threads: int | None) -> None:
        self.spec, self.threads = spec, threads

    def __call__(self) -> dict[str, Any]:
        return execute(self.spec, threads=self.threads)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        import submitit
        return submitit.helpers.DelayedSubmission(self)


def _slurm(specs: list[RunSpec], options: Mapping[str, Any], echo: Callable[[str], None]) -> list[Any]:
    try:
        import submitit
    except ImportError:
        raise EGSError("executor 'slurm' needs submitit: pip install submitit (it is in egs's dependencies).") from None
    options = dict(options)
    folder, cluster, threads = options.pop("folder", "submitit"), options.pop("cluster", None), options.pop("threads", None)
    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    try:
        executor.update_parameters(**options)
    except (ValueError, TypeError) as err:
        raise EGSError(f"executor 'slurm': {err}; pass submitit's parameters (timeout_min, gpus_per_node, "
                       "cpus_per_task, slurm_partition, ...).") from None
    jobs = [executor.submit(_Job(spec, threads)) for spec in specs]
    echo(f"fanout: submitted {len(jobs)} job(s) ({', '.join(str(j.job_id) for j in jobs)}); logs in {folder}")
    return [_outcome(job.result, spec, echo) for job, spec in zip(jobs, specs)]


class _Failed:
    def __init__(self, spec: RunSpec, error: BaseException) -> None:
        self.text = f"{spec.run_dir}: {type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error) else ''}"


def _outcome(result: Callable[[], Any], spec: RunSpec, echo: Callable[[str], None]) -> Any:
    try:
        summary = result()
    except Exception as err:  # one run's failure must not stop the others
        echo(f"fanout: FAILED {spec.run_dir}: {err}")
        return _Failed(spec, err)
    echo(f"fanout: done {spec.run_dir}")
    return summary


def run_all(specs: Mapping[Any, RunSpec], executor: str | None = "inline", options: Mapping[str, Any] | None = None,
            echo: Callable[[str], None] = print) -> dict[Any, dict[str, Any]]:
    """The summary of every run in ``specs`` (label -> :class:`RunSpec`), each brought to completion by
    ``executor`` (see the module docstring; None: inline) or read back if complete; same labels, same order."""
    executor = executor or "inline"
    if executor not in EXECUTORS:
        raise EGSError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}.")
    labels, todo = list(specs), list(specs.values())
    dirs = [s.run_dir.resolve() for s in todo]
    if len(set(dirs)) != len(dirs):
        twice = sorted({str(d) for d in dirs if dirs.count(d) > 1})
        raise EGSError(f"two declared runs share the run directory {twice[0]}; give every run its own.")
    if executor == "inline" and options:
        raise EGSError(f"executor 'inline' takes no options (given: {', '.join(sorted(options))}); they are for "
                       "'local' or 'slurm'.")
    complete = [run_state(s) == "complete" for s in todo]
    pending = [s for s, done in zip(todo, complete) if not done]
    start = time.perf_counter()
    if executor == "inline" or not pending:
        ran = [_outcome(lambda s=s: execute(s, progress=True), s, lambda _: None) for s in pending]
    elif executor == "local":
        ran = _local(pending, options or {}, echo)
    else:
        ran = _slurm(pending, options or {}, echo)
    results = iter(ran)
    summaries = [read_json(s.run_dir / "summary.json", "run summary") if done else next(results)
                 for s, done in zip(todo, complete)]
    failed = [r.text for r in summaries if isinstance(r, _Failed)]
    if failed:
        raise EGSError(f"{len(failed)} of {len(todo)} runs failed ({executor} executor): " + "; ".join(failed)
                       + ". Fix the cause and run again: finished runs are read back, the others resume.")
    if pending:
        echo(f"fanout: {len(pending)} run(s) by the {executor} executor in {time.perf_counter() - start:.1f}s, "
             f"{sum(complete)} complete already")
    return dict(zip(labels, summaries))
