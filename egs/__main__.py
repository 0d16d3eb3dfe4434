"""Command line: ``python -m egs <command> ...`` (also installed as ``egs``).

User mistakes (:class:`egs.errors.EGSError`) are printed as one line without a traceback, and the
command exits with status 2.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from egs.errors import EGSError


def _data(args: argparse.Namespace) -> int:
    from egs import data
    if args.action == "status":
        for name, state in data.status(args.data_dir).items():
            print(f"{name:10s} {state}")
        return 0
    names = list(data.DATASETS) if "all" in args.names else args.names
    for name in names:
        folder = data.fetch(name, root=args.data_dir, mirror=args.mirror, copy=args.copy,
                            force=args.force, verify=not args.no_verify)
        print(f"{name}: ready in {folder}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m egs", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = commands.add_parser("data", help="fetch datasets or show which are present")
    actions = d.add_subparsers(dest="action", required=True, metavar="ACTION")
    f = actions.add_parser("fetch", help="download (or link from a mirror) and verify datasets")
    f.add_argument("names", nargs="+", choices=["cifar10", "ptb", "wikitext2", "all"], metavar="NAME",
                   help="cifar10, ptb, wikitext2 or all")
    f.add_argument("--mirror", metavar="DIR", help="copy/link from a local mirror with the standard "
                   "layout instead of downloading (default: $EGS_DATA_MIRROR)")
    f.add_argument("--copy", action="store_true", help="copy files from the mirror instead of symlinking")
    f.add_argument("--force", action="store_true", help="fetch again even if already present")
    f.add_argument("--no-verify", action="store_true", help="skip checksum verification")
    f.add_argument("--data-dir", metavar="DIR", help="where datasets live (default: $EGS_DATA_DIR or data/)")
    s = actions.add_parser("status", help="list datasets and whether they are present")
    s.add_argument("--data-dir", metavar="DIR")
    d.set_defaults(run=_data)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except EGSError as err:
        print(f"egs: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("egs: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
