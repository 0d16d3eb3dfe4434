"""Command line: ``python -m egs <command> ...`` (also installed as ``egs``).

User mistakes (:class:`egs.core.errors.EGSError`) are printed as one line without a traceback, and the
command exits with status 2; so is a file that cannot be written (read-only folder, full disk).
Ctrl-C exits with 130 and SIGTERM with 143, each with one line; a run's loop checkpoints first
(:class:`egs.engine.signals.Interrupted`). Output into a closed pipe (``egs ... | head``) ends quietly.
The parser is :mod:`egs.cli.parser`; the search space's family picks what a command runs
(:mod:`egs.families`).
"""
from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from egs.cli.parser import SOURCES, build_parser
from egs.core.errors import EGSError


def _data(args: argparse.Namespace) -> int:
    from egs.data import fetch as data
    if args.action == "status":
        print(f"datasets in {data.data_dir(args.data_dir)}:")
        for name, state in data.status(args.data_dir).items():
            print(f"{name:10s} {state}")
        return 0
    names = list(data.DATASETS) if "all" in args.names else args.names
    for name in names:
        folder = data.fetch(name, root=args.data_dir, mirror=args.mirror, copy=args.copy,
                            force=args.force, verify=not args.no_verify)
        print(f"{name}: ready in {folder}")
    return 0


def _settings_from(options: dict, items: list[str] | None, sources: dict[str, str] | None = None) -> dict:
    """The dedicated options' values merged with ``--set KEY=VALUE`` items (values read as JSON when they
    parse: numbers, bools); a setting given twice with different values is an error naming both sources.
    ``sources`` (key -> the option text that set it, e.g. ``--M 3``) is extended with the items'."""
    import json
    out = {k: v for k, v in options.items() if v is not None}
    sources = {} if sources is None else sources
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep:
            raise EGSError(f"--set {item!r} must look like KEY=VALUE, e.g. --set batch_size=32.")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        if key in out and out[key] != value:
            first = sources.get(key, f"{key}={out[key]!r}")
            raise EGSError(f"{key} is given twice with different values ({first} and --set {key}={text}); "
                           "give it once.")
        out[key], sources[key] = value, f"--set {key}={text}"
    return out


def _given(args: argparse.Namespace, keys: Sequence[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The values of the options ``keys`` (None where not given) and the option text that set each."""
    sources = dict(getattr(args, SOURCES, {}))
    return {k: getattr(args, k) for k in keys}, {k: v for k, v in sources.items() if k in keys}


def _report(run: Callable[[], dict]) -> int:
    """Run a search or training; print its summary (rank 0 under torchrun), or the interruption
    notice (exit 130 for Ctrl-C, 143 for SIGTERM)."""
    import json

    from egs.engine import distributed
    try:
        summary = run()
    except KeyboardInterrupt as stop:
        if distributed.context().main:
            print(f"egs: {str(stop) or 'interrupted'}", file=sys.stderr)
        return getattr(stop, "exit_status", 130)
    if distributed.context().main:
        print(json.dumps(summary, indent=2))
    return 0


def _run_dir(args: argparse.Namespace, kind: str, what: str) -> str:
    import time
    return args.run_dir or f"runs/{kind}-{what}-{args.profile}-{time.strftime('%Y%m%d-%H%M%S')}"


def _search(args: argparse.Namespace) -> int:
    """One dispatch on the space's family (:mod:`egs.families`): its settings and search loop."""
    from egs.arch.space import get_space
    from egs.families import family_of
    from egs.profiles import experiments as profiles

    values, sources = _given(args, ("space", "M", "lam", "mode", "cost", "rule", "epochs", "seed", "device"))
    options = _settings_from(values, args.set, sources)  # checked before torch is imported: bad values fail at once
    space = get_space(options.pop("space", "conv"))
    if space.family != "conv" and "cost" in options:
        raise EGSError(f"--cost applies to the conv space family only (given as {sources['cost']}); space "
                       f"{space.name!r} is {space.family}-family, whose efficiency credit has no cost choice: drop it.")
    family = family_of(space)
    cfg = profiles.settings(family.search, args.profile, space=space.name, **options)
    run_dir = _run_dir(args, "search", space.name)
    loop = family.load("search_loop")
    return _report(lambda: loop(cfg, run_dir, resume=args.resume, progress=not args.no_progress).run())


def _train(args: argparse.Namespace) -> int:
    """One dispatch on the dataset's space family (:mod:`egs.families`): settings and trainer."""
    from egs.arch.space import get_space
    from egs.families import FAMILIES, dataset_family, resolve_genotype
    from egs.profiles import experiments as profiles

    family = dataset_family(args.dataset)
    values, sources = _given(args, ("epochs", "seed", "device"))
    options = _settings_from(values, args.set, sources)
    cfg = profiles.settings(family.train[args.dataset], args.profile, **options)
    if args.genotype != "random" and (args.M is not None or args.rule is not None):
        raise EGSError("--M and --rule describe a random genotype; use them with `egs train random`.")
    genotype = resolve_genotype(args.genotype, space=family.name, seed=cfg.seed, M=args.M, rule=args.rule or "node")
    if get_space(genotype.space).family != family.name:
        others = [d for f in FAMILIES.values() if f is not family for d in f.train]
        raise EGSError(f"{args.genotype} is a cell of the {get_space(genotype.space).family} family and --dataset "
                       f"{args.dataset} trains {family.name}-family cells; pass --dataset {' or '.join(others)}.")
    if getattr(cfg, "max_madds", 0):  # a multiply-add budget chooses C (egs.conv.macs.fit_width), before the run starts
        if "C" in options:
            raise EGSError(f"C={options['C']} and max_madds={cfg.max_madds} both choose the width; give one "
                           f"(--set max_madds=0 to train C={options['C']}).")
        from egs.conv.macs import fit_width
        cfg = fit_width(genotype, cfg)
    trainer = family.load("trainer")
    run_dir = _run_dir(args, "train", args.dataset)
    return _report(lambda: trainer(cfg, genotype, run_dir, resume=args.resume, progress=not args.no_progress))


def _drawing_folder(out: str, option: str) -> str:
    """``out`` unless it is (or lies inside) the checkout's committed ``figures/``, which only the ``cpu``
    reproduction refreshes; then one EGSError."""
    from pathlib import Path

    from egs.core.paths import figures_dir, repo_root
    committed = figures_dir().resolve()
    checkout = (repo_root() / "egs" / "__init__.py").is_file()  # an installed egs has no committed figures
    if checkout and Path(out).expanduser().resolve().is_relative_to(committed):
        raise EGSError(f"{option} {out} lies in the checkout's committed figures folder {committed}, which only "
                       f"`egs reproduce --profile cpu` writes; draw into another folder, e.g. {option} drawings.")
    return out


def _derive(args: argparse.Namespace) -> int:
    from egs.arch.genotype import save_genotype
    from egs.engine.runs import derive_with_record
    if args.render:
        _drawing_folder(args.render, "--render")
    genotype, record = derive_with_record(args.run_dir, args.method)
    print(genotype)
    if record["rule"] == "select":
        print(record["summary"])
    if args.out:
        save_genotype(genotype, args.out)
        print(f"written to {args.out}")
    if args.render:
        from egs.arch.diagram import render_genotype
        for path in render_genotype(genotype, args.render):
            print(f"drawn {path}")
    return 0


def _draw(args: argparse.Namespace) -> int:
    """Draw a published genotype (by name), a genotype JSON file or a search run's genotype."""
    from pathlib import Path

    from egs.arch.genotype import load_genotype
    from egs.arch.published import PUBLISHED
    target, out = Path(args.genotype), _drawing_folder(args.out, "--out")
    if args.genotype in PUBLISHED:
        genotype, stem = PUBLISHED[args.genotype], f"{args.genotype}_"
    elif target.is_dir():
        if not (target / "genotype.json").is_file():
            raise EGSError(f"{target} holds no genotype.json; pass a finished search run, a genotype JSON file or a "
                           f"published name ({', '.join(PUBLISHED)}).")
        genotype, stem = load_genotype(target / "genotype.json"), ""
    elif target.is_file():
        genotype, stem = load_genotype(target), f"{target.stem}_"
    else:
        raise EGSError(f"{args.genotype!r} is neither a published name ({', '.join(PUBLISHED)}), a genotype JSON file "
                       "nor a search run directory.")
    from egs.arch.diagram import render_genotype  # (loads torch: after the genotype is read and checked)
    for path in render_genotype(genotype, out, stem):
        print(f"drawn {path}")
    return 0


def executor_options(config: str | None, items: list[str]) -> dict:
    """The executor's options: the ``--executor-config`` file (a JSON or YAML object), then each ``KEY=VALUE``
    of ``--executor-option`` (the value read as JSON when it parses); one error naming a bad item or file."""
    import json
    options: dict = {}
    if config:
        import yaml  # papermill's own dependency
        try:
            loaded = yaml.safe_load(Path(config).read_text())
        except (OSError, yaml.YAMLError) as err:
            raise EGSError(f"--executor-config {config}: cannot read it ({getattr(err, 'strerror', None) or err}); "
                           "give a JSON or YAML file of executor options.") from None
        if not isinstance(loaded, dict):
            raise EGSError(f"--executor-config {config} must hold an object of options (e.g. {{\"timeout_min\": 720}}), "
                           f"not {type(loaded).__name__}.")
        options.update(loaded)
    for item in items:
        key, equals, value = item.partition("=")
        if not (equals and key):
            raise EGSError(f"--executor-option {item!r} must look like KEY=VALUE, e.g. --executor-option workers=2.")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def _reproduce(args: argparse.Namespace) -> int:
    from egs.repro.reproduce import parse_param, reproduce
    extra: dict[str, dict] = {}
    for name, key, value in map(parse_param, args.param or []):
        extra.setdefault(name, {})[key] = value
    options = executor_options(args.executor_config, args.executor_option or [])
    if args.plan:
        from egs.repro.plan import plan
        print(plan(args.profile, only=args.only, extra=extra).text())
        return 0
    report = reproduce(args.profile, only=args.only, jobs=args.jobs, force=args.force, results=args.results,
                       figures=args.figures, notebooks=args.notebooks, extra=extra, executor=args.executor,
                       executor_options=options)
    for problem in report.problems():
        print(f"egs: error: {problem}", file=sys.stderr)
    return 0 if report.ok else 1


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "data": _data, "search": _search, "train": _train, "derive": _derive, "draw": _draw, "reproduce": _reproduce}
WRITE_ERRORS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR, errno.EISDIR,
                errno.EEXIST, errno.EFBIG}


class Terminated(KeyboardInterrupt):
    """SIGTERM outside a run's loop (which checkpoints first): exit 143 = 128 + SIGTERM, as the loop's."""

    exit_status = 128 + int(signal.SIGTERM)


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated("stopped by SIGTERM")


def _os_error(err: OSError) -> str:
    """One line for a file-system error nobody turned into an EGSError: the path, the reason, the fix."""
    path = " -> ".join(str(p) for p in (err.filename, err.filename2) if p is not None) or "a file"
    reason = err.strerror or str(err)
    if err.errno in WRITE_ERRORS:
        return f"cannot write {path}: {reason}; choose a writable folder with free space."
    return f"cannot use {path}: {reason}; check the path and its permissions."


def _run(argv: Sequence[str] | None) -> int:
    """Parse and run one command; every expected failure becomes one line on stderr and an exit status."""
    try:
        try:
            args = build_parser(__doc__.splitlines()[0]).parse_args(argv)
        except SystemExit:  # --help, --version, a usage error: flush here, where a closed pipe is caught
            sys.stdout.flush()
            raise
        code = COMMANDS[args.command](args)
        sys.stdout.flush()  # a closed pipe fails here, not at exit
    except EGSError as err:
        print(f"egs: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM before (or after) a run's loop
        print(f"egs: {str(stop) or 'interrupted'}", file=sys.stderr)
        return getattr(stop, "exit_status", 130)
    except BrokenPipeError:  # e.g. `egs derive RUN | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except OSError as err:  # the last resort for files: read-only folder, full disk, a file where a folder goes
        print(f"egs: error: {_os_error(err)}", file=sys.stderr)
        return 2
    if "torch" in sys.modules:  # leave a torchrun process group cleanly
        from egs.engine import distributed
        distributed.shutdown()
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``egs`` with ``argv`` (default: sys.argv); SIGTERM ends it with one line and status 143 (a run's
    loop installs its own handler, which checkpoints first, and restores this one)."""
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not in the main thread: leave the signal alone
        previous = None
    try:
        return _run(argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
