"""The NAS-Bench-201 family: the benchmark's table and lookups, its network's sizes, searches on it."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

import egs
from egs.arch.genotype import CellGenotype, Genotype
from egs.arch.space import NB201
from egs.core.errors import EGSError

ALL = {op: "|" + "|+|".join("|".join(f"{op}~{i}" for i in range(j)) for j in (1, 2, 3)) + "|"
       for op in ("nor_conv_3x3", "skip_connect", "none")}
BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
MIXED = "|avg_pool_3x3~0|+|nor_conv_1x1~0|none~1|+|none~0|skip_connect~1|nor_conv_1x1~2|"


@pytest.fixture(scope="module")
def bench(data_root):
    from egs.nb201 import benchmark
    return benchmark, benchmark.table(data_root), data_root


def test_the_table_holds_every_cell_with_the_known_values(bench):
    """The values the data README states (checked on these files)."""
    benchmark, table, root = bench
    assert len(table) == 15_625 and list(table["index"]) == list(range(15_625))
    skip = benchmark.lookup(ALL["skip_connect"], root)
    assert skip["index"] == 1835
    assert [round(skip[c], 2) for c in benchmark.COLUMNS] == [39.77, 54.30, 15.61, 16.32]
    assert table.cifar10_valid.idxmax() == 6111 and round(table.cifar10_valid.max(), 2) == 91.61
    assert table.cifar10_test.idxmax() == 6111 and round(table.cifar10_test.max(), 2) == 94.37
    assert table.cifar100_test.idxmax() == 9930 and round(table.cifar100_test.max(), 2) == 73.51
    assert table.imagenet16_test.idxmax() == 857 and round(table.imagenet16_test.max(), 2) == 47.31
    assert [table.cifar10_test.mean(), table.cifar10_test.median(), table.cifar10_test.quantile(0.9)] == \
        pytest.approx([87.06, 90.75, 92.93], abs=0.006)
    assert round(benchmark.lookup(ALL["nor_conv_3x3"], root)["cifar10_test"], 2) == 93.76
    assert benchmark.lookup(BEST, root)["index"] == 6111


def test_genotypes_and_architecture_strings_convert_both_ways_for_every_cell(bench):
    benchmark, table, root = bench
    assert all(benchmark.arch_string(benchmark.genotype_from_string(a)) == a for a in table.arch)
    g = benchmark.genotype_from_string(MIXED)
    assert g.normal.edges == {(0, 1): ("avg_pool_3x3",), (0, 2): ("nor_conv_1x1",), (1, 3): ("skip_connect",),
                              (2, 3): ("nor_conv_1x1",)}  # "none" edges are absent
    assert benchmark.lookup(g, root) == benchmark.lookup(MIXED, root) == benchmark.lookup(g.normal, root)
    assert benchmark.genotype_from_string(ALL["none"]).num_active_ops() == 0


@pytest.mark.parametrize("bad, match", [
    (Genotype(CellGenotype("nb201", 4, {(0, 1): ("skip_connect", "nor_conv_3x3")}, (3,))), "one op per edge"),
    ("|nor_conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown NAS-Bench-201 operation 'nor_conv_5x5'"),
    ("|none~0|+|none~1|none~0|+|none~0|none~1|none~2|", "not a NAS-Bench-201 architecture string"),
    ("|none~0|+|none~0|none~1|", "not a NAS-Bench-201 architecture string"),
    (None, "4-node nb201 cells, got NoneType"),
])
def test_a_cell_outside_the_space_gives_one_clear_error(bench, bad, match):
    benchmark, _, root = bench
    with pytest.raises(EGSError, match=match):
        benchmark.lookup(bad, root)


def test_a_cell_of_another_space_is_refused(bench):
    benchmark, _, root = bench
    with pytest.raises(EGSError, match="4-node nb201 cells"):
        benchmark.lookup(egs.published_genotype("DARTS_V2"), root)


def test_percentile_counts_the_cells_below(bench):
    benchmark, table, root = bench
    assert benchmark.percentile(table.cifar10_test.min(), root=root) == 0.0
    assert benchmark.percentile(100.0, root=root) == 100.0
    median = table.cifar10_test.median()
    assert benchmark.percentile(median, root=root) == pytest.approx(50.0, abs=0.5)
    with pytest.raises(EGSError, match="column="):
        benchmark.percentile(90.0, "cifar10_train", root)


def test_fetch_verifies_the_mirror_and_a_missing_or_damaged_table_says_how_to_get_it(mirror, tmp_path):
    from egs.data import fetch as data
    from egs.nb201 import benchmark
    with pytest.raises(EGSError, match="egs data fetch nas-bench-201"):
        benchmark.table(tmp_path / "empty")
    bad = tmp_path / "mirror" / "nas-bench-201"
    shutil.copytree(mirror / "nas-bench-201", bad)
    (bad / benchmark.TEST_FILE).chmod(0o644)
    with open(bad / benchmark.TEST_FILE, "a") as f:
        f.write("1,2,3,x,y\n")
    with pytest.raises(EGSError, match="checksum mismatch"):
        data.fetch("nas-bench-201", root=tmp_path / "data", mirror=tmp_path / "mirror", progress=False)
    folder = data.fetch("nas-bench-201", root=tmp_path / "data", mirror=tmp_path / "mirror", progress=False,
                        verify=False)
    with pytest.raises(EGSError, match="do not hold the 15,625 cells|cannot be read"):
        benchmark.table(folder.parent)
    assert data.spec("nas-bench-201").file_urls and len(data.spec("nas-bench-201").checksums) == 2


# ---- the network: parameter counts equal to the benchmark's reference implementation -------------------------
# Counted side by side once with D-X-Y/AutoDL-Projects at f46486e21b71ae6459a700be720d7648b5429569
# (xautodl/models/cell_infers/tiny_network.py TinyNetwork(16, 5, genotype, 10) and
# xautodl/models/cell_searchs/search_model_darts.py TinyNetworkDarts(C, N, 4, 10, ops, False, True), its
# architecture parameters left out): the same numbers for every cell below.
PINNED = {"nor_conv_3x3": 1_531_546, "skip_connect": 73_306, "best": 1_073_466, "mixed": 129_306, "none": 73_306}


def test_network_parameters_equal_the_benchmark_reference():
    from egs.nb201.benchmark import genotype_from_string
    from egs.nb201.network import Network, paper_params
    cells = {"nor_conv_3x3": ALL["nor_conv_3x3"], "skip_connect": ALL["skip_connect"], "best": BEST, "mixed": MIXED,
             "none": ALL["none"]}
    assert {k: paper_params(genotype_from_string(a)) for k, a in cells.items()} == PINNED
    with torch.device("meta"):
        assert sum(p.numel() for p in Network(16, 5, 10).parameters()) == 1_692_826  # the search network
        assert sum(p.numel() for p in Network(8, 1, 10).parameters()) == 100_050
    from egs.families import paper_params as family_params
    assert family_params(genotype_from_string(BEST)) == PINNED["best"]


def test_sparse_execution_is_exact_and_an_empty_node_is_zeros():
    from egs.nb201.network import Cell, Network
    torch.manual_seed(0)
    net = Network(4, 1, 10).eval()
    x = torch.randn(2, 3, 8, 8)
    code = (torch.rand(6, 5) < 0.5).float()
    code[:, 0] = 0.0
    active = [[op for k, op in enumerate(NB201.ops) if code[e, k] > 0] for e in range(6)]
    every = [[op for op in NB201.ops if op != "none"]] * 6
    torch.testing.assert_close(net(x, code, active), net(x, code, every))  # skipped ops contribute exactly 0
    cell = Cell({(0, 1): ["skip_connect"], (1, 2): ["skip_connect"]}, 4, affine=True)
    assert torch.equal(cell(torch.randn(2, 4, 8, 8)), torch.zeros(2, 4, 8, 8))  # node 3 has no input


def test_bad_genotypes_for_the_network_raise_one_clear_error():
    from egs.nb201.network import Network
    with pytest.raises(EGSError, match="nb201 space"):
        Network(4, 1, 10, egs.published_genotype("DARTS_V2"))
    with pytest.raises(EGSError, match="one op per edge"):
        Network(4, 1, 10, Genotype(CellGenotype("nb201", 4, {(0, 1): ("skip_connect", "nor_conv_1x1")}, (3,))))
    with pytest.raises(EGSError, match="unknown nb201 operation"):
        CellGenotype("nb201", 4, {(0, 1): ("sep_conv_3x3",)}, (3,))


def test_argmax_derives_one_op_per_edge_none_included_ties_to_the_first():
    from egs.method.derivation import argmax_codes
    p = torch.tensor([[0.4, 0.3, 0.1, 0.1, 0.1], [0.1, 0.3, 0.3, 0.2, 0.1], [0.2] * 5])
    assert argmax_codes(p).argmax(1).tolist() == [0, 1, 0] and argmax_codes(p).sum().item() == 3


# ---- searches ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("relaxation", ["egs", "darts"])
def test_a_smoke_search_derives_a_cell_of_the_benchmark_and_resumes_exactly(relaxation, data_root, tmp_path,
                                                                             one_thread):
    from egs.engine.runlog import load_checkpoint
    from egs.nb201 import benchmark
    from egs.nb201.search import NB201Search
    cfg = egs.settings("nb201_search", "smoke", relaxation=relaxation, M=2)
    whole = NB201Search(cfg, tmp_path / "whole", data_root=data_root, progress=False).run()
    part = NB201Search(cfg, tmp_path / "part", data_root=data_root, progress=False)
    with pytest.raises(KeyboardInterrupt):
        part.run(stop_after_steps=8)
    part.close()
    resumed = NB201Search(cfg, tmp_path / "part", resume=True, data_root=data_root, progress=False).run()
    genotype = egs.load_genotype(whole["genotype"])
    assert egs.load_genotype(resumed["genotype"]) == genotype
    a, b = (load_checkpoint(tmp_path / d / "checkpoint.pt")["model"] for d in ("whole", "part"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(len(ops) == 1 for ops in genotype.normal.edges.values()) and genotype.provenance["rule"] == "argmax"
    assert benchmark.lookup(genotype, data_root)["index"] >= 0
    assert whole["relaxation"] == relaxation and len(list((tmp_path / "whole" / "genotypes").glob("*.json"))) == 2


def test_the_cli_searches_nas_bench_201_and_its_family_trains_nothing(data_root, tmp_path, monkeypatch, capsys):
    from egs.cli.main import main
    from egs.families import get_family
    monkeypatch.setenv("EGS_DATA_DIR", str(data_root))
    run = tmp_path / "nb201"
    assert main(["search", "--space", "nb201", "--profile", "smoke", "--M", "1", "--run-dir", str(run),
                 "--no-progress"]) == 0
    assert json.loads((run / "config.json").read_text())["M"] == 1
    assert egs.derive(run).space == "nb201"
    with pytest.raises(EGSError, match="looking them up"):
        get_family("nb201").load("trainer")


def test_the_supernet_ranks_cells_with_its_shared_weights(data_root, tmp_path, one_thread):
    from egs.nb201 import benchmark
    from egs.nb201.ranking import decile_cells, shared_weight_accuracies
    from egs.nb201.search import nb201_search
    from egs.repro.stats import kendall_tau
    table = benchmark.table(data_root)
    sample = decile_cells(table, 12, seed=0)
    deciles = [int(10 * table.cifar10_valid.rank(method="first")[table["index"] == i].iloc[0] / (len(table) + 1))
               for i in sample["index"]]
    assert len(sample) == 12 and sorted(set(deciles)) == list(range(10))  # every decile, two from the first two
    assert list(sample.cifar10_valid) == sorted(sample.cifar10_valid)
    nb201_search(egs.settings("nb201_search", "smoke", epochs=1), tmp_path / "run", data_root=data_root, progress=False)
    accuracy = shared_weight_accuracies(tmp_path / "run", list(sample.arch), data_root)
    assert len(accuracy) == 12 and all(0.0 <= a <= 1.0 for a in accuracy)
    assert -1.0 <= kendall_tau(accuracy, list(sample.cifar10_valid)) <= 1.0


def test_kendall_tau_against_hand_counts():
    from egs.repro.stats import kendall_tau
    assert kendall_tau([1, 2, 3], [1, 2, 3]) == 1.0 and kendall_tau([1, 2, 3], [3, 2, 1]) == -1.0
    assert kendall_tau([1, 1, 2, 3], [1, 2, 2, 3]) == pytest.approx(0.8)  # tau-b: 4 concordant, one tie each side
    assert kendall_tau([1, 2, 3, 4], [2, 1, 4, 3]) == pytest.approx(1 / 3)  # 4 concordant, 2 discordant
    with pytest.raises(EGSError):
        kendall_tau([1], [1])
