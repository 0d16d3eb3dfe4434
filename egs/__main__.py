"""Command line: ``python -m egs <command> ...`` (also installed as ``egs``).

User mistakes (:class:`egs.errors.EGSError`) are printed as one line without a traceback, and the
command exits with status 2.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from egs.errors import EGSError


def _data(args: argparse.Namespace) -> int:
    from egs import data
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


FLAGS = {"M": "--M", "lam": "--lambda", "mode": "--mode", "cost": "--cost", "rule": "--rule", "epochs": "--epochs",
         "seed": "--seed", "device": "--device"}  # settings that have an option of their own


def _settings_from(options: dict, items: list[str] | None) -> dict:
    """The dedicated options' values merged with ``--set KEY=VALUE`` items (values read as JSON when they
    parse: numbers, bools); a setting given both ways with different values is an error."""
    import json
    out = {k: v for k, v in options.items() if v is not None}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep:
            raise EGSError(f"--set {item!r} must look like KEY=VALUE, e.g. --set batch_size=32.")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        if key in out and out[key] != value:
            where = FLAGS.get(key, f"--set {key}=")
            raise EGSError(f"{key} is given twice with different values ({where} {out[key]!r} and --set "
                           f"{key}={text}); give it once.")
        out[key] = value
    return out


def _report(run) -> int:
    """Run a search or training; print its summary (rank 0 under torchrun), or the interruption
    notice (exit 130)."""
    import json

    from egs import distributed
    try:
        summary = run()
    except KeyboardInterrupt as stop:
        if distributed.context().main:
            print(f"egs: {str(stop) or 'interrupted'}", file=sys.stderr)
        return getattr(stop, "exit_status", 130)
    if distributed.context().main:
        print(json.dumps(summary, indent=2))
    return 0


def _search(args: argparse.Namespace) -> int:
    import time

    from egs import profiles

    options = {"M": args.M, "lam": args.lam, "mode": args.mode, "rule": args.rule, "epochs": args.epochs,
               "seed": args.seed, "device": args.device}
    if args.space == "conv":
        options["cost"] = args.cost
    elif args.cost:
        raise EGSError("--cost applies to the conv space only; the recurrent space has no resource credit.")
    # settings are checked before torch is imported: a bad value fails at once
    experiment = {"conv": "search", "rnn": "rnn_search"}[args.space]  # the space's settings
    cfg = profiles.settings(experiment, args.profile, **{"space": args.space, **_settings_from(options, args.set)})
    run_dir = args.run_dir or f"runs/search-{args.space}-{args.profile}-{time.strftime('%Y%m%d-%H%M%S')}"
    from egs.archsearch import search_class
    loop = search_class(cfg.space)
    return _report(lambda: loop(cfg, run_dir, resume=args.resume, progress=not args.no_progress).run())


def _derive(args: argparse.Namespace) -> int:
    from egs.genotype import save_genotype
    from egs.search import derive
    genotype = derive(args.run_dir, args.method)
    print(genotype)
    if args.out:
        save_genotype(genotype, args.out)
        print(f"written to {args.out}")
    if args.render:
        from egs.diagram import render_genotype
        for path in render_genotype(genotype, args.render):
            print(f"drawn {path}")
    return 0


def _draw(args: argparse.Namespace) -> int:
    """Draw a published genotype (by name), a genotype JSON file or a search run's genotype."""
    from pathlib import Path

    from egs.diagram import render_genotype
    from egs.genotype import load_genotype
    from egs.published import PUBLISHED
    target = Path(args.genotype)
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
    for path in render_genotype(genotype, args.out, stem):
        print(f"drawn {path}")
    return 0


def _train(args: argparse.Namespace) -> int:
    import time

    from egs import profiles

    experiment = {"cifar10": "train_cifar", "imagenet": "train_imagenet", "ptb": "lm_train_ptb",
                  "wikitext2": "lm_train_wikitext2"}[args.dataset]
    overrides = _settings_from({"epochs": args.epochs, "seed": args.seed, "device": args.device}, args.set)
    cfg = profiles.settings(experiment, args.profile, **overrides)
    from egs.train import resolve_genotype, train
    space = "rnn" if args.dataset in ("ptb", "wikitext2") else "conv"
    if args.genotype != "random" and (args.M is not None or args.rule is not None):
        raise EGSError("--M and --rule describe a random genotype; use them with `egs train random`.")
    genotype = resolve_genotype(args.genotype, space=space, seed=cfg.seed, M=args.M, rule=args.rule or "node")
    run_dir = args.run_dir or f"runs/train-{args.dataset}-{args.profile}-{time.strftime('%Y%m%d-%H%M%S')}"
    if space == "rnn":
        from egs.lm import train_lm
        return _report(lambda: train_lm(cfg, genotype, run_dir, resume=args.resume, progress=not args.no_progress))
    return _report(lambda: train(cfg, genotype, run_dir, resume=args.resume, progress=not args.no_progress))


def _reproduce(args: argparse.Namespace) -> int:
    from egs.reproduce import parse_param, reproduce
    extra: dict[str, dict] = {}
    for name, key, value in map(parse_param, args.param or []):
        extra.setdefault(name, {})[key] = value
    report = reproduce(args.profile, only=args.only, jobs=args.jobs, force=args.force, results=args.results,
                       figures=args.figures, notebooks=args.notebooks, extra=extra)
    for problem in report.problems():
        print(f"egs: error: {problem}", file=sys.stderr)
    return 0 if report.ok else 1


def _add_run_arguments(p: argparse.ArgumentParser, default_dir: str, settings: str, example: str) -> None:
    """The options every search or training run takes."""
    p.add_argument("--profile", default="cpu", choices=["smoke", "cpu", "paper"], help="sizes (default: cpu)")
    p.add_argument("--run-dir", help=f"run directory (default: runs/{default_dir})")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir exactly")
    p.add_argument("--epochs", type=int, help="epochs (default: the profile's)")
    p.add_argument("--seed", type=int, help="seed of data order, initialisation and sampling (default: the profile's, 0)")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:1 ... (default: the profile's, auto: CUDA when present)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help=f"any other setting of egs.profiles.{settings}, e.g. --set {example}")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


class _FORMAT(argparse.HelpFormatter):
    """Every option's help shows its default (unless it already says it, or there is none)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" not in text and action.default not in (None, False, argparse.SUPPRESS):
            text += " (default: %(default)s)"
        return text


def _data_parser(commands) -> None:
    d = commands.add_parser("data", formatter_class=_FORMAT, help="fetch datasets or show which are present")
    actions = d.add_subparsers(dest="action", required=True, metavar="ACTION")
    f = actions.add_parser("fetch", formatter_class=_FORMAT, help="download (or link from a mirror) and verify datasets")
    f.add_argument("names", nargs="+", choices=["cifar10", "ptb", "wikitext2", "all"], metavar="NAME",
                   help="cifar10, ptb, wikitext2 or all")
    f.add_argument("--mirror", metavar="DIR", help="copy/link from a local mirror with the standard "
                   "layout instead of downloading (default: $EGS_DATA_MIRROR)")
    f.add_argument("--copy", action="store_true", help="copy files from the mirror instead of symlinking")
    f.add_argument("--force", action="store_true", help="fetch again even if already present")
    f.add_argument("--no-verify", action="store_true", help="skip checksum verification")
    f.add_argument("--data-dir", metavar="DIR", help="where datasets live (default: $EGS_DATA_DIR or data/)")
    s = actions.add_parser("status", formatter_class=_FORMAT, help="list datasets and whether they are present")
    s.add_argument("--data-dir", metavar="DIR", help="where datasets live (default: $EGS_DATA_DIR or data/)")
    d.set_defaults(run=_data)


def _search_parser(commands) -> None:
    se = commands.add_parser("search", formatter_class=_FORMAT, help="architecture search with EGS (CIFAR-10 cells or PTB recurrent cells)")
    se.add_argument("--space", default="conv", choices=["conv", "rnn"], help="conv (CIFAR-10) or rnn (PTB)")
    se.add_argument("--M", type=int, help="ensemble size (paper: 7)")
    se.add_argument("--lambda", dest="lam", type=float, help="weight of softmax(alpha) in p (paper: 0.5)")
    se.add_argument("--mode", choices=["joint", "bilevel"], help="joint (Eq. 9, default) or bilevel")
    se.add_argument("--cost", choices=["flops", "params", "latency"], help="efficiency credit cost")
    se.add_argument("--rule", choices=["node", "select", "edge"], help="derivation rule of the final architecture "
                    "(default: the profile's, node)")
    _add_run_arguments(se, "search-PROFILE-TIMESTAMP", "SearchSettings", "batch_size=32")
    se.set_defaults(run=_search)


def _train_parser(commands) -> None:
    tr = commands.add_parser("train", formatter_class=_FORMAT, help="train a genotype from scratch (CIFAR-10, ImageNet, PTB, WikiText-2)")
    tr.add_argument("genotype", help="genotype JSON path, a published name (DARTS_V1, DARTS_V2, DATA_M4, DATA_M7) "
                    "or random")
    tr.add_argument("--dataset", default="cifar10", choices=["cifar10", "imagenet", "ptb", "wikitext2"],
                    help="the data (and so the network: CIFAR/ImageNet conv networks or PTB/WikiText-2 language models)")
    tr.add_argument("--M", type=int, help="for random: draws per node or edge (default: the paper's, 7 conv / 4 rnn)")
    tr.add_argument("--rule", choices=["node", "select", "edge", "darts"],
                    help="for random: the derivation rule whose sampling draws it (default: node)")
    _add_run_arguments(tr, "train-DATASET-PROFILE-TIMESTAMP", "TrainSettings", "drop_path=0.3")
    tr.set_defaults(run=_train)


def _derive_parser(commands) -> None:
    de = commands.add_parser("derive", formatter_class=_FORMAT, help="the genotype of a search run under a derivation rule")
    de.add_argument("run_dir", help="a search run directory")
    de.add_argument("--method", "--rule", dest="method", choices=["node", "select", "edge"],
                    help="node: the authors' exact per-node rule; select: sample candidates and keep the best on "
                    "search-val; edge: each edge's most probable code (default: the run's own rule)")
    de.add_argument("--out", help="write the genotype JSON here")
    de.add_argument("--render", metavar="DIR", help="draw the cells (SVG, PNG) into DIR")
    de.set_defaults(run=_derive)


def _draw_parser(commands) -> None:
    dr = commands.add_parser("draw", formatter_class=_FORMAT, help="draw the cells of a genotype (Figure-3 style, SVG and PNG)")
    dr.add_argument("genotype", help="a published name (DARTS_V2, DARTS_V2_RNN, DATA_M7, ...), a genotype JSON "
                    "file or a search run directory")
    dr.add_argument("--out", metavar="DIR", default="drawings",
                    help="where the drawings go (a folder, created if missing; never the committed figures/)")
    dr.set_defaults(run=_draw)


def _reproduce_parser(commands) -> None:
    rp = commands.add_parser("reproduce", formatter_class=_FORMAT, help="run every notebook with papermill in dependency order "
                             "(tables, figures, a summary in results/PROFILE/README.md)")
    rp.add_argument("--profile", default="cpu", choices=["smoke", "cpu", "paper"], help="sizes (default: cpu)")
    rp.add_argument("--only", nargs="+", metavar="NAME", help="run only these notebooks (01, 02_cifar10_search, "
                    "...); the files they read from other notebooks must exist")
    rp.add_argument("--jobs", type=int, default=1, help="notebooks run at the same time when independent "
                    "(each gets an equal share of the cores); default 1")
    rp.add_argument("--force", action="store_true", help="run notebooks again even when their outputs are "
                    "complete and their parameters, source and inputs unchanged")
    rp.add_argument("--results", metavar="DIR", help="results folder (default: results/PROFILE)")
    rp.add_argument("--figures", metavar="DIR", help="figures folder (default: figures/; RESULTS/figures at smoke)")
    rp.add_argument("--notebooks", metavar="DIR", help="folder of the notebooks to run (default: notebooks/)")
    rp.add_argument("--param", action="append", metavar="NOTEBOOK:KEY=VALUE",
                    help="another parameter for one notebook, e.g. --param 04:imagenet_dir=/data")
    rp.set_defaults(run=_reproduce)


def build_parser() -> argparse.ArgumentParser:
    from egs import __version__
    parser = argparse.ArgumentParser(prog="egs", description=__doc__.splitlines()[0], formatter_class=_FORMAT)
    parser.add_argument("--version", action="version", version=f"egs {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_data_parser, _search_parser, _train_parser, _derive_parser, _draw_parser, _reproduce_parser):
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = args.run(args)
    except EGSError as err:
        print(f"egs: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("egs: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `egs derive RUN | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    if "torch" in sys.modules:  # leave a torchrun process group cleanly
        from egs import distributed
        distributed.shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
