"""Lines the package holds from now on: short functions, no repeated code, explicit class contracts."""
from __future__ import annotations

import ast
import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "egs"
SOURCES = sorted(PACKAGE.rglob("*.py"))  # the whole tree; a file is known by its path below egs/, not its name
MAX_FUNCTION_LINES = 60
WINDOW = 6  # shared lines that make a duplicate


def _key(path: Path) -> str:
    """A source file's path below ``egs/``, e.g. ``conv/search.py``: two modules may share a name."""
    return path.relative_to(PACKAGE).as_posix()


def _functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.lineno, node.end_lineno - node.lineno + 1


def test_no_function_is_longer_than_60_lines():
    long = [f"{_key(path)}:{line} {name} ({length} lines)" for path in SOURCES
            for name, line, length in _functions(path) if length > MAX_FUNCTION_LINES]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines (def to last line): {long}"


# The data modules (issue 11): settings field lists, the paper's tables, published genotypes, dataset checksums.
DATA_MODULES = ("profiles/fields.py", "profiles/experiments.py", "profiles/table.py", "repro/reference.py",
                "arch/published.py", "data/fetch.py")


def _data_lines(tree: ast.Module, name: str) -> set[int]:
    """Lines of tables and field lists in a data module (:data:`DATA_MODULES`): its module-level assignments and
    annotated class-level fields. Other modules have none: repeated lines there are code, whatever their form."""
    lines: set[int] = set()
    if name not in DATA_MODULES:
        return lines
    nodes = list(tree.body) + [n for c in tree.body if isinstance(c, ast.ClassDef) for n in c.body
                               if isinstance(n, ast.AnnAssign)]
    for node in nodes:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            lines.update(range(node.lineno, node.end_lineno + 1))
    return lines


def _code_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, normalised text) of the lines that count, as the duplicates tool reads them: no
    blanks, comments, imports or lone punctuation, and no table or field-list lines."""
    text = path.read_text()
    data = _data_lines(ast.parse(text), _key(path))
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        s = " ".join(line.split())
        if (not s or s.startswith("#") or s.startswith(("import ", "from ")) or re.fullmatch(r"[\[\](){},:]+", s)
                or number in data):
            continue
        out.append((number, s))
    return out


def test_no_six_identical_lines_twice_in_the_package():
    seen: dict[str, tuple[str, int, int]] = {}  # window text -> (file, index in its code lines, line number)
    repeats = []
    for path in SOURCES:
        lines = _code_lines(path)
        for k in range(len(lines) - WINDOW + 1):
            key = hashlib.sha1("\n".join(s for _, s in lines[k:k + WINDOW]).encode()).hexdigest()
            first = seen.setdefault(key, (_key(path), k, lines[k][0]))
            if first[0] != _key(path) or k - first[1] >= WINDOW:  # not an overlapping run of itself
                repeats.append(f"{first[0]}:{first[2]} ~ {_key(path)}:{lines[k][0]}")
    assert not repeats, f"repeated code ({WINDOW} identical lines): {repeats[:10]}"


@pytest.mark.skipif(shutil.which("duplicates") is None, reason="the duplicates tool is not on this machine")
def test_duplicates_tool_finds_no_pair_outside_data():
    out = subprocess.run(["duplicates", "--repo", str(ROOT / "egs"), "--most", "200"], capture_output=True,
                         text=True, timeout=120).stdout
    data = {_key(path): _data_lines(ast.parse(path.read_text()), _key(path)) for path in SOURCES}
    bad = []
    for row in re.findall(r"^D\d+ (\S+):(\d+)-(\d+) ~ (\S+):(\d+)-(\d+)", out, re.M):
        sides = [(_tool_key(row[0]), int(row[1]), int(row[2])), (_tool_key(row[3]), int(row[4]), int(row[5]))]
        if not all(set(range(a, b + 1)) <= data.get(name, set()) | _blank_or_comment(name) for name, a, b in sides):
            bad.append(" ~ ".join(f"{n}:{a}-{b}" for n, a, b in sides))
    assert not bad, out


def test_only_the_data_modules_are_exempt():
    """A table in any other module counts as code (a repeated table there is a repeat)."""
    table = ast.parse("A = dict(\n    x=1,\n    y=2,\n)\nclass C:\n    f: int = 0\n")
    assert _data_lines(table, "repro/reference.py") == {1, 2, 3, 4, 6} and _data_lines(table, "arch/diagram.py") == set()
    assert _data_lines(table, "reference.py") == set()  # known by its path: a top-level reference.py is code
    assert all((PACKAGE / name).is_file() for name in DATA_MODULES)


def _tool_key(path: str) -> str:
    """The duplicates tool's path of a file (relative to egs/, or absolute) as :func:`_key` writes it."""
    p = Path(path)
    return _key(p) if p.is_absolute() else p.as_posix().removeprefix("egs/")


def _blank_or_comment(name: str) -> set[int]:
    lines = (PACKAGE / name).read_text().splitlines()
    return {i for i, line in enumerate(lines, 1) if not line.strip() or line.strip().startswith("#")}


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not on this machine")
def test_make_installs_nothing_before_setup_succeeds():
    """`setup` (Graphviz) is a prerequisite of the install itself, not its sibling: under `make -j` pip cannot start
    before setup has failed or succeeded; `test` goes through the same path (.ci/run runs only `make test`)."""
    db = subprocess.run(["make", "-pqn", "-C", str(ROOT), "test"], capture_output=True, text=True, timeout=60).stdout
    rules = dict(re.findall(r"^([\w./$()-]+): ?(.*)$", db, re.M))
    assert rules[".venv/.installed"].split() == ["pyproject.toml", "|", "setup"]
    assert rules["venv"].split() == [".venv/.installed"] and rules["test"].split() == ["venv"]
    assert (ROOT / ".ci" / "run").read_text().strip().endswith("make test")


def test_loops_declare_their_contract(tmp_path):
    """A loop subclass that omits a hook cannot be built; one that never hands over its model cannot run."""
    from egs.core.errors import EGSError
    from egs.engine.loop import EpochLoop
    from egs.profiles.experiments import settings

    class Incomplete(EpochLoop):
        def steps_per_epoch(self):
            return 1

    with pytest.raises(TypeError, match="abstract"):
        Incomplete(settings("search", "smoke"), tmp_path / "unused", False, False)

    class NeverStarted(Incomplete):
        def batches(self, epoch, start_step):
            return iter([])

        def train_step(self, batch):
            return {"n": 1}

        def end_epoch(self):
            return {}

        def finish(self):
            return {}

    loop = NeverStarted(settings("search", "smoke", device="cpu"), tmp_path / "run", False, False)
    with pytest.raises(EGSError, match="never called start"):
        loop.run()
    loop.close()
    with pytest.raises(EGSError, match="RunSettings"):
        NeverStarted(settings("sampling", "smoke"), tmp_path / "never-written", False, False)
    assert not (tmp_path / "never-written").exists()  # refused before the run directory is touched
