"""A finished (or interrupted) search run, read back: its settings and loop, its genotype under any rule.

Conv and recurrent runs alike: the run's space names its family, whose search loop (:mod:`egs.families`)
rebuilds the supernet from the checkpoint. :func:`derive` is what ``egs derive`` and the notebooks call;
:func:`compare_rules` scores every derivation rule's cell with the supernet's shared weights.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from egs.arch.genotype import Genotype
from egs.core.errors import EGSError, warn
from egs.core.files import JSONFileError, read_json, write_json
from egs.engine.rundir import check_checkpoint
from egs.engine.runlog import load_checkpoint
from egs.engine.search import ArchitectureSearch, provenance
from egs.families import family_of
from egs.method.derivation import check_rule


def _run_file(path: Path, what: str, kept: Any) -> dict[str, Any]:
    """A search run's JSON object for :func:`derive`; if missing or damaged, the checkpoint's copy ``kept`` (as
    resume uses it, :func:`egs.engine.rundir.read_or_restore`, but not written back: derive only reads), with a
    one-line warning; without a copy (a checkpoint of an older egs), one error line naming the file."""
    problem = "missing"
    if path.is_file():
        try:
            value = read_json(path, what)
            if isinstance(value, dict):
                return value
            problem = "damaged (not a JSON object)"
        except (JSONFileError, OSError) as err:
            problem = f"damaged ({err.reason if isinstance(err, JSONFileError) else err.strerror or err})"
    if isinstance(kept, dict):
        warn(f"{path} is {problem}; derive reads the checkpoint's copy of the {what} (resuming the run writes "
             "it back).")
        return kept
    raise EGSError(f"cannot derive: {path} is {problem}, so the {what} is unknown; restore it from a copy of the "
                   "run directory.")


def open_search_run(run_dir: str | Path) -> tuple[Any, type[ArchitectureSearch], dict[str, Any]]:
    """The settings, search loop class and checkpoint state of the search run in ``run_dir``, refused with
    one line naming the file when the run is a training run, when ``config.json`` or ``run.json`` is missing
    or damaged and the checkpoint keeps no copy of it, or when ``checkpoint.pt`` is damaged, belongs to
    another run (its run id against ``run.json``) or to other settings (its settings fingerprint against
    ``config.json``): the checks of resuming (:mod:`egs.engine.rundir`), so that a genotype's provenance (M, seed,
    run id) is always that of one run."""
    run_dir = Path(run_dir)
    ckpt = run_dir / "checkpoint.pt"
    if not ckpt.exists():
        raise EGSError(f"{run_dir} has no checkpoint.pt; pass the directory of a search run.")
    state = load_checkpoint(ckpt)
    stored = _run_file(run_dir / "config.json", "run's settings", state.get("record"))
    if "genotype" in stored or "M" not in stored:
        raise EGSError(f"{run_dir} is a training run, not a search run (its config.json has no M); derive reads "
                       "search runs.")
    loop = family_of(stored.get("space", "conv")).load("search_loop")
    try:
        cfg = loop.settings_type(**stored)
    except TypeError as err:
        raise EGSError(f"cannot derive: {run_dir / 'config.json'} does not hold {loop.settings_type.__name__} "
                       f"({err}); restore it from a copy of the run directory.") from None
    run_id = _run_file(run_dir / "run.json", "run's identity", state.get("run")).get("run_id")
    check_checkpoint(ckpt, state, run_id, stored, action="derive")
    epoch, step = state.get("epoch", 0), state.get("step", 0)
    if epoch < cfg.epochs:
        where = f"step {step} of epoch {epoch + 1}" if step else f"the end of epoch {epoch}"
        warn(f"{run_dir} is an unfinished search: its checkpoint is at {where} of {cfg.epochs}, so the cell comes "
             f"from the architecture learned so far; to finish it, run the same `egs search` again with --resume "
             f"--run-dir {run_dir}.")
    return cfg, loop, state


def derive_with_record(run_dir: str | Path, rule: str | None = None,
                       data_root=None) -> tuple[Genotype, dict[str, Any]]:
    """The genotype of the search run in ``run_dir`` (its latest checkpoint) under ``rule`` (default: the run's
    own rule), conv or recurrent (one dispatch on the run's space), with its provenance, and the record of the
    derivation. ``node`` and ``edge`` read only the checkpoint (record ``{"rule": ...}``). ``select`` reloads the
    run's search-val data (from ``data_root``, default the data dir), scores its seeded candidates and the
    ``node`` cell on the same batches, and writes the record (every candidate's index, score and genotype,
    ``chosen``, ``chosen_score``, ``node_score``, ``score``: what the scores measure) atomically to
    ``derivation-select.json`` in the run directory; the run's own ``derivation.json`` is left as it is.
    The run is checked first (:func:`open_search_run`)."""
    run_dir = Path(run_dir)
    cfg, loop, state = open_search_run(run_dir)
    rule = check_rule(rule or cfg.rule)
    if rule != "select":
        model = loop.supernet_from(cfg, state["model"])
        prov = {**provenance(cfg, state["run_id"], run_dir, state["epoch"]), "rule": rule}
        return model.derive(rule).with_provenance(**prov), {"rule": rule}
    run = loop(cfg, run_dir, resume=True, data_root=data_root, progress=False)
    try:
        genotype, record = run.derive(run.epoch, rule)
    finally:
        run.close()
    return genotype, _write_select_record(run_dir, cfg, loop, record)


def _write_select_record(run_dir: Path, cfg: Any, loop: Any, record: dict[str, Any]) -> dict:
    record = {**record, "score": loop.score_name, "select_batches": cfg.select_batches}
    record["summary"] = (f"select: chosen candidate {record['chosen']} of {len(record['candidates'])}, "
                         f"{loop.describe_score(record['chosen_score'])}; node cell: "
                         f"{loop.describe_score(record['node_score'])} (the same {cfg.select_batches} search-val "
                         "batches; every candidate in derivation-select.json)")
    write_json(run_dir / "derivation-select.json", record)
    return record


def compare_rules(run_dir: str | Path, data_root=None) -> list[dict[str, Any]]:
    """Every derivation rule's cell of the search run in ``run_dir`` (its latest checkpoint), each scored with
    the supernet's shared weights (no training) by the loop's ``rule_metrics``: recurrent runs give the
    perplexity on the ``select`` windows (what ``select`` ranks its candidates by) and on the rest of
    search-val (held out from ``select``); conv runs the accuracy on the ``select`` batches and on all of
    search-val. One row per rule: ``rule``, ``ops`` (active ops), the metrics and the ``genotype``. The
    ``select`` record is written to ``derivation-select.json`` as by :func:`derive_with_record`."""
    run_dir = Path(run_dir)
    cfg, loop, _ = open_search_run(run_dir)
    run = loop(cfg, run_dir, resume=True, data_root=data_root, progress=False)
    rows = []
    try:
        for rule in loop.rules:
            genotype, record = run.derive(run.epoch, rule)
            if rule == "select":
                _write_select_record(run_dir, cfg, loop, record)
            rows.append({"rule": rule, "ops": genotype.num_active_ops(),
                         **run.rule_metrics(run.model.genotype_codes(genotype)), "genotype": genotype})
    finally:
        run.close()
    return rows


def derive(run_dir: str | Path, rule: str | None = None, data_root=None) -> Genotype:
    """The genotype of :func:`derive_with_record` (without its record): the search run in ``run_dir`` derived
    under ``rule`` (default: the run's own), ``select`` reading search-val data from ``data_root``."""
    return derive_with_record(run_dir, rule, data_root)[0]
