"""The parser of the ``egs`` command line (:mod:`egs.cli.main` runs its commands).

Every option's help states its default; the profile-dependent ones are read from :mod:`egs.profiles.experiments`,
so the help cannot drift from the settings. Each value has one way to be set: an option given twice
with different values (or through two of its aliases) is an :class:`~egs.core.errors.EGSError`, and the
parser records which option set each value (``namespace._sources``) so that a later conflict with
``--set KEY=VALUE`` names the two real sources. The light imports only: ``egs --help`` needs no torch.
"""
from __future__ import annotations

import argparse
from typing import Any, Mapping

from egs.core.errors import EGSError
from egs.data.fetch import DATASETS
from egs.families import FAMILIES, training_datasets
from egs.method.options import DERIVATION_RULES
from egs.profiles import experiments as profiles
from egs.profiles.fields import COSTS, DEFAULT_PROFILE, MODES, PROFILES

SOURCES = "_sources"  # namespace attribute: dest -> the option text that set it, e.g. "--M 3"




class Once(argparse.Action):
    """argparse's ``store``, once: the option (or an alias of it) given again with another value raises one
    EGSError naming both; the option text that set the value is recorded in ``namespace._sources``."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        sources = getattr(namespace, SOURCES, None)
        if sources is None:
            sources = {}
            setattr(namespace, SOURCES, sources)
        shown = " ".join(map(str, values)) if isinstance(values, list) else str(values)
        where = f"{option_string} {shown}" if option_string else shown
        if option_string and self.dest in sources and getattr(namespace, self.dest) != values:
            raise EGSError(f"{'/'.join(self.option_strings)} is given twice with different values "
                           f"({sources[self.dest]} and {where}); give it once.")
        sources[self.dest] = where
        setattr(namespace, self.dest, values)


class Format(argparse.HelpFormatter):
    """Every option's help shows its default (unless it already says it, or there is none)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" not in text and action.default not in (None, False, argparse.SUPPRESS):
            text += " (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose value options are :class:`Once` and whose help is :class:`Format`
    (its sub-commands' parsers too)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", Format)
        super().__init__(*args, **kwargs)
        self.register("action", None, Once)
        self.register("action", "store", Once)


def _searches() -> dict[str, str]:
    """Family -> its search experiment (:mod:`egs.families`), for the search options' defaults."""
    return {name: f.search for name, f in FAMILIES.items()}


def profile_default(key: str, experiments: Mapping[str, str]) -> str:
    """``(default: the profile's: ...)``: setting ``key`` at each profile of each labelled experiment, e.g.
    ``conv 0.5 at smoke, 1.0 at cpu, 0.5 at paper; rnn 1.0``; labels with the same values are merged."""
    groups: dict[str, list[str]] = {}
    for label, experiment in experiments.items():
        values = [getattr(profiles.settings(experiment, p), key) for p in PROFILES]
        text = str(values[0]) if len(set(values)) == 1 else ", ".join(
            f"{v} at {p}" for p, v in zip(PROFILES, values))
        groups.setdefault(text, []).append(label)
    if len(groups) == 1:
        return f"(default: the profile's, {next(iter(groups))})"
    return "(default: the profile's: " + "; ".join(f"{'/'.join(ls)} {text}" for text, ls in groups.items()) + ")"


def _profile_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default=DEFAULT_PROFILE, choices=PROFILES,
                   help="sizes: smoke (tests), cpu (a laptop) or paper (the paper's, on GPUs)")


def _add_run_arguments(p: argparse.ArgumentParser, default_dir: str, settings: str, example: str,
                       experiments: Mapping[str, str]) -> None:
    """The options every search or training run takes (their profile defaults read from ``experiments``)."""
    _profile_option(p)
    p.add_argument("--run-dir", help=f"run directory (default: runs/{default_dir})")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir exactly")
    p.add_argument("--epochs", type=int, help=f"epochs {profile_default('epochs', experiments)}")
    p.add_argument("--seed", type=int, help="seed of data order, initialisation and sampling "
                   f"{profile_default('seed', experiments)}")
    p.add_argument("--device", help="auto (CUDA when present), cpu, cuda, cuda:1 ... "
                   f"{profile_default('device', experiments)}")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help=f"any other setting of egs.profiles.experiments.{settings}, e.g. --set {example}; repeat for more "
                   "(default: none, the profile's values)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _data_parser(commands: Any) -> None:
    d = commands.add_parser("data", help="fetch datasets or show which are present")
    actions = d.add_subparsers(dest="action", required=True, metavar="ACTION")
    f = actions.add_parser("fetch", help="download (or link from a mirror) and verify datasets")
    names = [*DATASETS, "all"]
    f.add_argument("names", nargs="+", choices=names, metavar="NAME", help=", ".join(names[:-1]) + " or all")
    f.add_argument("--mirror", metavar="DIR", help="copy/link from a local mirror with the standard "
                   "layout instead of downloading (default: $EGS_DATA_MIRROR)")
    f.add_argument("--copy", action="store_true", help="copy files from the mirror instead of symlinking")
    f.add_argument("--force", action="store_true", help="fetch again even if already present")
    f.add_argument("--no-verify", action="store_true", help="skip checksum verification")
    f.add_argument("--data-dir", metavar="DIR", help="where datasets live (default: $EGS_DATA_DIR or data/)")
    s = actions.add_parser("status", help="list datasets and whether they are present, in the folder checked")
    s.add_argument("--data-dir", metavar="DIR", help="where datasets live (default: $EGS_DATA_DIR or data/)")


def _search_parser(commands: Any) -> None:
    from egs.arch.space import SPACES
    se = commands.add_parser("search", help="architecture search with EGS (CIFAR-10 cells, PTB recurrent cells "
                             "or a space you declared)")
    se.add_argument("--space", metavar="SPACE",
                    help="conv (CIFAR-10 cells), rnn (PTB recurrent cells) or a space declared with "
                    "egs.declare_space(...) in the Python process before it calls egs.cli.main.main() "
                    f"(known now: {', '.join(SPACES)}) (default: conv)")
    se.add_argument("--M", type=int, help=f"ensemble size M of Eq. 5 {profile_default('M', _searches())}")
    se.add_argument("--lambda", dest="lam", type=float, help="weight lambda of softmax(alpha) in p (Eq. 5) "
                    f"{profile_default('lam', _searches())}")
    se.add_argument("--mode", choices=MODES, help="joint (one backward pass, Eq. 9) or bilevel "
                    f"(first-order DARTS) {profile_default('mode', _searches())}")
    se.add_argument("--cost", choices=COSTS, help="cost of the efficiency credit, conv-family spaces "
                    f"only {profile_default('cost', {'conv': FAMILIES['conv'].search})}")
    se.add_argument("--rule", choices=DERIVATION_RULES, help="derivation rule of the final "
                    f"architecture {profile_default('rule', _searches())}")
    _add_run_arguments(se, "search-SPACE-PROFILE-TIMESTAMP", "SearchSettings or RNNSearchSettings",
                       "batch_size=32", _searches())


def _train_parser(commands: Any) -> None:
    from egs.arch.space import get_space
    tr = commands.add_parser("train", help="train a genotype from scratch (CIFAR-10, ImageNet, PTB, WikiText-2)")
    tr.add_argument("genotype", help="genotype JSON path, a published name (DARTS_V1, DARTS_V2, DATA_M4, DATA_M7) "
                    "or random")
    tr.add_argument("--dataset", default="cifar10", choices=training_datasets(),
                    help="the data, and so the space family and network: CIFAR/ImageNet conv networks or "
                    "PTB/WikiText-2 language models of recurrent cells")
    tr.add_argument("--M", type=int, help="for random: draws per node or edge (default: the space's paper M, "
                    f"{get_space('conv').paper_M} conv / {get_space('rnn').paper_M} rnn)")
    tr.add_argument("--rule", choices=["node", "select", "edge", "darts"],
                    help="for random: the derivation rule whose sampling draws it (default: node)")
    _add_run_arguments(tr, "train-DATASET-PROFILE-TIMESTAMP", "TrainSettings or LMTrainSettings", "drop_path=0.3",
                       {d: f.train[d] for f in FAMILIES.values() for d in f.train})


def _derive_parser(commands: Any) -> None:
    de = commands.add_parser("derive", help="the genotype of a search run under a derivation rule")
    de.add_argument("run_dir", help="a search run directory")
    de.add_argument("--method", "--rule", dest="method", choices=DERIVATION_RULES,
                    help="node: the authors' exact per-node rule; select: sample candidates and keep the best on "
                    "search-val; edge: each edge's most probable code (default: the run's own rule)")
    de.add_argument("--out", metavar="FILE", help="write the genotype JSON here (default: none, only printed)")
    de.add_argument("--render", metavar="DIR", help="draw the cells (SVG, PNG) into DIR (default: not drawn)")


def _draw_parser(commands: Any) -> None:
    dr = commands.add_parser("draw", help="draw the cells of a genotype (Figure-3 style, SVG and PNG)")
    dr.add_argument("genotype", help="a published name (DARTS_V2, DARTS_V2_RNN, DATA_M7, ...), a genotype JSON "
                    "file or a search run directory")
    dr.add_argument("--out", metavar="DIR", default="drawings",
                    help="where the drawings go (a folder, created if missing; never the committed figures/)")


def _reproduce_parser(commands: Any) -> None:
    rp = commands.add_parser("reproduce", help="run every notebook with papermill in dependency order "
                             "(tables, figures, a summary in results/PROFILE/README.md)")
    _profile_option(rp)
    rp.add_argument("--only", nargs="+", metavar="NAME", help="run only these notebooks (01, 02_cifar10_search, "
                    "...); the files they read from other notebooks must exist (default: every notebook)")
    rp.add_argument("--jobs", type=int, default=1, help="notebooks run at the same time when independent "
                    "(each gets an equal share of the cores)")
    rp.add_argument("--force", action="store_true", help="run notebooks again even when their outputs are "
                    "complete and their parameters, source and inputs unchanged")
    rp.add_argument("--results", metavar="DIR", help="results folder (default: results/PROFILE)")
    rp.add_argument("--figures", metavar="DIR", help="figures folder (default: figures/ at cpu, which refreshes "
                    "the committed figures; RESULTS/figures at smoke and paper)")
    rp.add_argument("--notebooks", metavar="DIR", help="folder of the notebooks to run (default: notebooks/)")
    rp.add_argument("--param", action="append", metavar="NOTEBOOK:KEY=VALUE",
                    help="another parameter for one notebook, e.g. --param 04:imagenet_dir=/data; repeat for more "
                    "(default: none)")
    rp.add_argument("--executor", choices=("inline", "local", "slurm"), default=None,
                    help="how each notebook runs its searches and trainings: inline (one after another in the "
                    "notebook, the default), local (worker processes, one per GPU, or per core on CPU) or slurm "
                    "(one SLURM job each, through submitit); see docs/distributed.md (default: inline)")
    rp.add_argument("--executor-option", action="append", metavar="KEY=VALUE",
                    help="an option of the executor, read as JSON when it parses: local: workers=N, threads=N; "
                    "slurm: submitit's parameters, e.g. timeout_min=720, slurm_partition=gpu, gpus_per_node=1, "
                    "cpus_per_task=10, folder=DIR (default RESULTS/submitit), cluster=local; repeat for more (default: none)")
    rp.add_argument("--executor-config", metavar="FILE", help="a JSON or YAML file of executor options (the same "
                    "keys; --executor-option overrides it; default: none)")
    rp.add_argument("--plan", action="store_true", help="print each notebook's runs and their estimated GPU-hours "
                    "(from step times measured on this machine's GPU when it has one, else from the paper's own "
                    "figures, labelled), and run nothing")


def build_parser(description: str = "") -> argparse.ArgumentParser:
    """The ``egs`` parser: commands data, search, train, derive, draw and reproduce (``args.command``)."""
    from egs import __version__
    parser = Parser(prog="egs", description=description)
    parser.add_argument("--version", action="version", version=f"egs {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_data_parser, _search_parser, _train_parser, _derive_parser, _draw_parser, _reproduce_parser):
        add(commands)
    return parser
