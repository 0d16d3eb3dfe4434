"""The package's architecture: subpackages in layers, no import cycle, one family registry, old files still read."""
from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path
from typing import Any, ClassVar, Iterator

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import egs

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "egs"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# The layer order, lowest first: a module imports only from its own layer or the ones before it (the README's
# package map lists them in this order). `families` holds the registry's records, whose entry points name the
# families' modules as strings (imported when first used), so it sits below everything that dispatches on it.
LAYERS = ("core", "data", "arch", "families", "method", "profiles", "engine", "conv", "rnn", "nb201", "repro", "cli")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path) -> set[str]:
    """Every egs module ``path`` imports, at the top or inside a function (``from egs.x import y`` counts as
    ``egs.x.y`` when that is a module, else as ``egs.x``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "egs")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "egs" and not node.level:
            for a in node.names:
                found.add(f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module)
    return found - {"egs"}


def _layer(module: str) -> int:
    parts = module.split(".")
    return len(LAYERS) if len(parts) == 1 or parts[1] == "__main__" else LAYERS.index(parts[1])


def test_every_module_belongs_to_a_declared_layer():
    assert {m.split(".")[1] for m in MODULES if m.count(".") >= 1} - {"__main__"} <= set(LAYERS)
    assert not [m for m in MODULES if m.count(".") == 1 and m.split(".")[1] not in ("families", "__main__")
                and not (PACKAGE / m.split(".")[1]).is_dir()], "a module outside the subpackages"


def test_no_import_cycle_counting_imports_inside_functions():
    graph = {m: {d for d in _imports(p) if d in MODULES} for m, p in MODULES.items()}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(m: str, path: list[str]) -> bool:
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycle.extend(path[path.index(d):] + [d] if d in path else [m, d])
                return True
            if d not in state and visit(d, path + [d]):
                return True
        state[m] = 2
        return False

    assert not any(visit(m, [m]) for m in sorted(graph) if m not in state), f"import cycle: {' -> '.join(cycle)}"


def test_each_subpackage_imports_only_from_the_layers_below_it():
    upward = [f"{m} -> {d}" for m, p in MODULES.items() for d in sorted(_imports(p)) if _layer(d) > _layer(m)]
    assert not upward, f"imports against the layer order {LAYERS}: {upward}"


def test_no_private_name_is_imported_across_modules():
    private = [f"{m}: {node.module}.{a.name}" for m, p in MODULES.items() for node in ast.walk(ast.parse(p.read_text()))
               if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("egs")
               for a in node.names if (a.name.startswith("_") and not a.name.endswith("__"))
               or (a.asname or "").startswith("_")]
    assert not private, private


def test_dir_of_the_package_is_the_public_api():
    names = dir(egs)
    assert names == sorted([*egs.__all__, "__version__"])
    assert not {"Any", "annotations", "importlib", "core", "arch"} & set(names)
    assert all(getattr(egs, n) is not None for n in egs.__all__)


def test_every_family_entry_point_resolves_to_what_its_role_needs():
    from egs.engine.search import ArchitectureSearch
    from egs.families import FAMILIES, ROLES, family_of, paper_params
    from egs.method.supernet import EGSSupernet
    from egs.profiles.experiments import settings

    assert list(FAMILIES) == ["conv", "rnn", "nb201"]
    for family in FAMILIES.values():
        loaded = {role: family.load(role) for role in ROLES if getattr(family, role) is not None}
        assert issubclass(loaded["supernet"], EGSSupernet) and issubclass(loaded["search_loop"], ArchitectureSearch)
        assert callable(loaded.get("trainer", print)) and family_of(family.name) is family
        assert bool(family.train) == ("trainer" in loaded)  # a family that trains nothing has no datasets
        assert loaded["search_loop"].settings_type is type(settings(family.search, "smoke"))
        assert all(settings(e, "smoke").__class__.__name__ for e in family.train.values())
    assert paper_params(egs.published_genotype("DARTS_V2")) == 3_349_342  # DARTS's own count (cnn/model.py)
    assert paper_params(egs.published_genotype("DARTS_V2_RNN")) > 0


def test_genotype_names_resolve_within_their_family():
    from egs.families import resolve_genotype
    assert resolve_genotype("DARTS_V2", "conv").space == "conv"
    assert resolve_genotype("DARTS_V2", "rnn").provenance["name"] == "DARTS_V2_RNN"
    assert resolve_genotype("random", "rnn", seed=3) == resolve_genotype("random", "rnn", seed=3)


# ---- a family added in one place -------------------------------------------------------------------------------
# A toy family of vector cells: node j = sum over its edges (i, j) of the active ops on x_i; ops are linear maps
# of the node width. Everything the family needs is declared in the one `Family(...)` record below.

TOY_OPS = ("none", "identity", "linear", "tanh_linear")


class ToySupernet(egs.EGSSupernet):
    def __init__(self, space: Any, M: int, width: int = 8) -> None:
        super().__init__(space, None, M, lam=1.0, tau=1.0)
        edges = self.space.edges()
        self.stem, self.head = nn.Linear(4, width), nn.Linear(width, 3)
        self.ops = nn.ModuleList(nn.ModuleDict({"linear": nn.Linear(width, width), "tanh_linear": nn.Linear(width, width)})
                                 for _ in edges)

    def forward(self, x: torch.Tensor, codes: dict[str, torch.Tensor]) -> torch.Tensor:
        code, nodes = codes["normal"], [self.stem(x)]
        for j, incoming in self.space.node_edges():
            total = 0.0
            for e in incoming:
                i = self.space.edges()[e][0]
                for k, name in enumerate(self.space.ops):
                    if name != "none" and bool(code[e, k] > 0.5):
                        op = (nodes[i] if name == "identity" else self.ops[e]["linear"](nodes[i]) if name == "linear"
                              else torch.tanh(self.ops[e]["tanh_linear"](nodes[i])))
                        total = total + code[e, k] * op
            nodes.append(total if torch.is_tensor(total) else torch.zeros_like(nodes[0]))
        return self.head(torch.stack(nodes[1:]).mean(0))


def _toy_data(seed: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 1).long()


def _toy_loop(settings_type: type):
    from egs.engine.search import ArchitectureSearch

    class ToySearch(ArchitectureSearch):
        label, experiment, score_name = "toy search", "toy_search", "toy accuracy"

        def __init__(self, cfg, run_dir, resume=False, data_root=None, progress=True):
            super().__init__(cfg, run_dir, resume, progress)
            self.train_xy, self.val_xy = _toy_data(cfg.seed, 64), _toy_data(cfg.seed + 1, 32)
            torch.manual_seed(cfg.seed)
            m = ToySupernet(cfg.space, cfg.M)
            self.start_search(m, torch.optim.SGD(m.weight_parameters(), cfg.lr), {})

        def steps_per_epoch(self) -> int:
            return 64 // self.cfg.batch_size

        def batches(self, epoch: int, start_step: int) -> Iterator[Any]:
            x, y = self.train_xy
            b = self.cfg.batch_size
            return ((x[s * b:(s + 1) * b], y[s * b:(s + 1) * b]) for s in range(start_step, self.steps_per_epoch()))

        def arch_batch(self):
            return self.val_xy

        def loss(self, codes, x, y):
            out = self.forward(x, codes=codes)
            return F.cross_entropy(out, y), out

        @torch.no_grad()
        def score(self, codes) -> float:
            x, y = self.val_xy
            return float((self.model(x, codes=codes).argmax(1) == y).float().mean())

        @staticmethod
        def describe_score(score: float) -> str:
            return f"toy accuracy {score:.3f}"

        def rule_metrics(self, codes) -> dict[str, float]:
            return {"acc": self.score(codes)}

        @classmethod
        def supernet_from(cls, cfg, state):
            model = ToySupernet(cfg.space, cfg.M)
            model.load_state_dict(state)
            return model

        def train_step(self, batch):
            value, _, codes = self.search_step(batch)
            return {"loss": value * len(batch[1]), "n": len(batch[1]), "log": {"loss": value}}

        def end_epoch(self):
            genotype, _ = self.derive(self.epoch + 1)
            self.save_epoch_genotype(genotype)
            return {"train_loss": self.sums["loss"] / self.sums["n"], "val_acc": self.score(
                self.model.genotype_codes(genotype))}

        def finish(self):
            genotype, record = self.derive(self.epoch)
            return self.write_results(genotype, record, self.cost())

    ToySearch.settings_type = settings_type
    return ToySearch


@pytest.fixture
def toy_family():
    """Registers the toy family (and takes it out again afterwards)."""
    from dataclasses import dataclass

    from egs import families
    from egs.arch import space as spaces
    from egs.profiles.experiments import ArchSettings

    @dataclass(frozen=True)
    class ToySearchSettings(ArchSettings):
        family: ClassVar[str | None] = "toy"
        space: str = "toy"
        M: int = 2
        lam: float = 1.0
        lr: float = 0.05
        arch_lr: float = 0.05
        batch_size: int = 16
        tensorboard: bool = False
        select_candidates: int = 3

    loop = _toy_loop(ToySearchSettings)
    space = spaces.SearchSpace("toy", "toy", TOY_OPS, 4, 1, ("normal",), ("x",), "y", "mean", 1, 2)
    saved_families, saved_spaces = dict(families.FAMILIES), dict(spaces.SPACES)
    # the one place: everything else below only uses the package's own dispatch
    yield families.register_family(families.Family(
        "toy", space, search="toy_search", train={}, supernet=ToySupernet, search_loop=loop,
        trainer=lambda *a, **k: {}, paper_params=lambda genotype: genotype.num_active_ops(),
        experiments={"toy_search": (ToySearchSettings, {"smoke": {"epochs": 2}, "cpu": {"epochs": 4}, "paper": {}})}))
    for registry, saved in ((families._FAMILIES, saved_families), (spaces._SPACES, saved_spaces)):
        registry.clear()
        registry.update(saved)  # in place: every module's reference to the registries stays valid


def test_a_family_added_in_one_place_searches_derives_and_counts(toy_family, tmp_path, capsys):
    from egs.cli.main import main
    from egs.engine.runs import compare_rules, derive
    from egs.families import paper_params

    run = tmp_path / "toy"
    assert main(["search", "--space", "toy", "--profile", "smoke", "--run-dir", str(run), "--no-progress"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs"] == 2 and (run / "genotypes" / "epoch_002.json").is_file()
    genotype = derive(run, "edge")
    assert genotype.space == "toy" and genotype.provenance["M"] == 2 and genotype.provenance["epochs"] == 2
    assert paper_params(genotype) == genotype.num_active_ops()
    assert [row["rule"] for row in compare_rules(run)] == ["node", "select", "edge"]
    assert egs.settings("toy_search", "cpu").epochs == 4
    with pytest.raises(egs.EGSError, match="toy_search"):
        egs.settings("search", "smoke", space="toy")  # the conv settings name the toy family's own experiment


# ---- files written by earlier versions -------------------------------------------------------------------------

def test_a_search_run_written_before_the_reorganisation_still_derives_and_resumes_exactly(tmp_path, data_root):
    """A smoke search (C = 2, two epochs) stopped at epoch 2, step 3 by main at 87303f9, when the package was one
    flat folder: its checkpoint and genotype files load, it derives, and resuming it gives the same cell as an
    uninterrupted run of today's code, and the same weights (to float tolerance across CPUs)."""
    from egs.conv.search import Search
    from egs.engine.runlog import load_checkpoint
    from egs.engine.runs import derive
    from egs.profiles.experiments import settings

    run = tmp_path / "search"
    shutil.copytree(FIXTURES / "search_87303f9", run)
    state = load_checkpoint(run / "checkpoint.pt")
    assert (state["epoch"], state["step"]) == (1, 3) and set(state) >= {"model", "w_opt", "a_opt", "gen", "run_id"}
    first = egs.load_genotype(run / "genotypes" / "epoch_001.json")
    assert first.space == "conv" and first.provenance["epochs"] == 1
    assert derive(run, "edge").provenance["run_id"] == state["run_id"]
    cfg = settings("search", "smoke", epochs=2, C=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the fixture's (2 cores): a float sum's order depends on the thread count
    try:
        resumed = Search(cfg, run, resume=True, data_root=data_root, progress=False).run()
        fresh = Search(cfg, tmp_path / "fresh", data_root=data_root, progress=False).run()
    finally:
        torch.set_num_threads(threads)
    assert egs.load_genotype(resumed["genotype"]).cells() == egs.load_genotype(fresh["genotype"]).cells()
    a, b = load_checkpoint(run / "checkpoint.pt")["model"], load_checkpoint(tmp_path / "fresh" / "checkpoint.pt")["model"]
    # The fixture's first 1.4 epochs ran on the machine that wrote it; another CPU's kernels (AVX-512 or not, another
    # vendor) round differently in the last bits (seen: 2.5e-6 on a BatchNorm running variance), so across machines
    # the weights agree to float tolerance; bit-exact resume on one machine is tested in tests/test_search.py.
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k].double(), b[k].double(), rtol=1e-4, atol=1e-5) if a[k].is_floating_point()
               else torch.equal(a[k], b[k]) for k in a)
