"""CIFAR-10 search: the supernet, sparse execution, joint/bilevel updates, determinism, resume."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from egs.arch.space import CONV
from egs.conv.network import Network, count_parameters
from egs.conv.credits import credit_from_cost, edge_costs
from egs.core.errors import EGSError
from egs.arch.genotype import Genotype, load_genotype
from egs.arch.published import DARTS_V2
from egs.arch.space import CONV_OPS
from egs.profiles.experiments import settings
from egs.conv.search import Search
from egs.engine.runs import derive
from egs.method.supernet import codes_to_cell
from egs.conv.supernet import Supernet

SMOKE = settings("search", "smoke")

# Parameter counts of DARTS's own networks (quark0/darts, cnn/model_search.py and cnn/model.py),
# counted on CPU side by side with ours: search network weights (logits excluded) and the CIFAR
# evaluation network of DARTS_V2 without its auxiliary head.
DARTS_SEARCH_PARAMS = {(16, 8): 1_930_618, (8, 5): 394_210, (4, 3): 72_854}
DARTS_V2_CIFAR_PARAMS_NO_AUX = 3_349_342


@pytest.mark.parametrize("C,layers", sorted(DARTS_SEARCH_PARAMS))
def test_supernet_has_the_parameter_count_of_the_darts_search_network(C, layers):
    model = Supernet(C, 10, layers, M=7)
    assert count_parameters(model.net) == DARTS_SEARCH_PARAMS[(C, layers)]
    assert sum(p.numel() for p in model.arch_parameters()) == 2 * 14 * 8
    assert {"alpha_normal", "alpha_reduce"} <= set(model.state_dict())


def test_fixed_network_from_a_darts_genotype_matches_darts():
    assert count_parameters(Network(36, 10, 20, DARTS_V2)) == DARTS_V2_CIFAR_PARAMS_NO_AUX


def _count_calls(model: Supernet) -> list[tuple[int, int, str]]:
    calls = []
    for c, cell in enumerate(model.net.cells):
        for e, ops in enumerate(cell.ops):
            for name, op in ops.items():  # every module inside: a gated op runs its layers, not its forward
                for module in op.modules():
                    module.register_forward_hook(lambda *_, key=(c, e, name): calls.append(key))
    return calls


def test_only_active_ops_are_executed():
    torch.manual_seed(0)
    model = Supernet(4, 10, 3, M=3)
    calls = _count_calls(model)
    gen = torch.Generator().manual_seed(0)
    codes = {k: torch.zeros(14, 8) for k in ("normal", "reduce")}
    for kind, c in codes.items():
        for e in range(14):  # every edge gets 1-3 random non-zero ops, some edges also "none"
            ops = torch.randperm(7, generator=gen)[: 1 + e % 3] + 1
            c[e, ops] = 1
        c[3, :] = 0
        c[3, 0] = 1  # edge 3 carries only the zero op: nothing runs there
    model(torch.randn(2, 3, 8, 8), codes=codes)
    expected = {(ci, e, CONV_OPS[k]) for ci, cell in enumerate(model.net.cells)
                for e in range(14) for k in codes["reduce" if cell.reduction else "normal"][e].nonzero().flatten().tolist()
                if k != 0}
    assert set(calls) == expected
    assert not any(e == 3 for _, e, _ in calls)


def test_sampled_step_runs_far_fewer_ops_than_dense():
    torch.manual_seed(0)
    model = Supernet(4, 10, 3, M=1)
    calls = _count_calls(model)
    model(torch.randn(2, 3, 8, 8), generator=torch.Generator().manual_seed(1))
    sparse = len(set(calls))
    calls.clear()
    model.forward_dense(torch.randn(2, 3, 8, 8))
    assert sparse <= 3 * 14 and len(set(calls)) == 3 * 14 * 7


def test_joint_step_gives_alpha_a_gradient_from_the_same_backward_pass():
    torch.manual_seed(0)
    model = Supernet(4, 10, 3, M=7)
    loss = F.cross_entropy(model(torch.randn(4, 3, 8, 8), generator=torch.Generator().manual_seed(0)),
                           torch.tensor([0, 1, 2, 3]))
    loss.backward()
    for a in model.arch_parameters():
        assert a.grad is not None and torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.net.stem.parameters())


def test_probabilities_follow_eq5():
    torch.manual_seed(0)
    model = Supernet(4, 10, 3, M=7, lam=0.5)
    p = model.probabilities()["normal"]
    expected = 0.5 * torch.softmax(model.alpha_normal, -1) + 0.5 * model.credit_normal
    assert torch.allclose(p, expected) and torch.allclose(p.sum(-1), torch.ones(14))
    off = Supernet(4, 10, 3, M=7, lam=1.0)
    assert torch.allclose(off.probabilities()["reduce"], torch.softmax(off.alpha_reduce, -1))
    with pytest.raises(EGSError, match="lambda=1.5"):
        Supernet(4, 10, 3, M=7, lam=1.5)


def test_efficiency_credits_favour_cheap_ops():
    net = Network(4, 10, 3)
    costs = edge_costs(net, "flops", image_size=8)
    credit = credit_from_cost(costs["normal"])
    assert torch.allclose(credit.sum(-1), torch.ones(14, dtype=torch.float64))
    order = credit[0].argsort(descending=True).tolist()
    assert order[0] in (CONV_OPS.index("none"), CONV_OPS.index("skip_connect"))  # free ops first
    assert order[-1] == CONV_OPS.index("sep_conv_5x5")  # the most expensive op last
    assert torch.allclose(credit_from_cost(costs["normal"], beta=0.0), torch.full((14, 8), 1 / 8, dtype=torch.float64))
    latency = edge_costs(net, "latency", image_size=8, batch_size=2, repeats=1)["reduce"]
    assert (latency[:, 0] == 0).all() and (latency[:, 1:] > 0).all()
    with pytest.raises(EGSError, match="unknown cost metric 'watts'"):
        edge_costs(net, "watts")


def test_edge_rule_reads_each_edges_most_probable_code():
    torch.manual_seed(0)
    model = Supernet(4, 10, 3, M=2, lam=1.0)
    with torch.no_grad():
        model.alpha_normal.zero_()
        model.alpha_normal[:, CONV_OPS.index("sep_conv_3x3")] = 10.0  # p ~ one-hot on sep_conv_3x3
        model.alpha_normal[0] = 0.0  # edge 0: uniform over 8 ops -> most probable code has 2 ops
    cell = model.derive("edge").normal
    assert all(ops == ("sep_conv_3x3",) for edge, ops in cell.edges.items() if edge != (0, 2))
    assert cell.edges[(0, 2)] == ("max_pool_3x3",)  # ties: "none" first in registry order, dropped
    node = model.derive("node").normal  # per node: at most M = 2 picks, the most probable pooled set
    assert all(len([e for e in node.edges if e[1] == j]) <= 2 for j in range(2, 6))
    with pytest.raises(EGSError, match="rule='best'"):
        model.derive("best")
    with pytest.raises(EGSError, match="select"):
        model.derive("select")  # needs a score: it compares candidates on search-val
    picked = model.derive("select", torch.Generator().manual_seed(0), score=lambda codes: float(codes["normal"].sum()),
                          candidates=5)
    assert picked.normal.num_active_ops() >= model.derive("select", torch.Generator().manual_seed(0),
                                                          score=lambda codes: 0.0, candidates=5).normal.num_active_ops()


def test_codes_to_cell_rejects_wrong_shapes():
    with pytest.raises(EGSError, match="do not fit"):
        codes_to_cell(torch.zeros(10, 8), "conv", 6)
    assert codes_to_cell(torch.zeros(14, 8), "conv", 6).num_active_ops() == 0
    assert len(CONV.edges()) == 14


def _run(tmp_path, name, data_root, **changes):
    cfg = dataclasses.replace(SMOKE, **changes)
    return Search(cfg, tmp_path / name, data_root=data_root, progress=False)


def test_same_seed_same_genotype_and_resume_equals_uninterrupted(tmp_path, data_root):
    full = _run(tmp_path, "full", data_root)
    full.run()
    again = _run(tmp_path, "again", data_root)
    again.run()
    assert load_genotype(tmp_path / "full" / "genotype.json") == load_genotype(tmp_path / "again" / "genotype.json")

    part = _run(tmp_path, "part", data_root)
    with pytest.raises(KeyboardInterrupt):
        part.run(stop_after_steps=len(part.train) + 2)  # stops mid-way through the second epoch
    assert json.loads((tmp_path / "part" / "config.json").read_text())["seed"] == SMOKE.seed
    resumed = Search(SMOKE, tmp_path / "part", resume=True, data_root=data_root, progress=False)
    assert (resumed.epoch, resumed.step) == (1, 2)
    resumed.run()
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert load_genotype(tmp_path / "full" / "genotype.json") == load_genotype(tmp_path / "part" / "genotype.json")
    epochs = lambda run: [r for r in run.log.read() if r["type"] == "epoch"]  # noqa: E731
    strip = lambda r: {k: v for k, v in r.items() if k != "elapsed_s"}  # noqa: E731
    assert [strip(r) for r in epochs(full)] == [strip(r) for r in epochs(resumed)]
    assert len(full.log.read()) == len(resumed.log.read())


def test_run_directory_contents_and_derive(tmp_path, data_root):
    run = _run(tmp_path, "run", data_root, mode="bilevel")
    alpha0 = run.model.alpha_normal.detach().clone()
    summary = run.run()
    assert not torch.equal(alpha0, run.model.alpha_normal.detach())  # alpha trained on search-val
    d = tmp_path / "run"
    for name in ("config.json", "metrics.jsonl", "checkpoint.pt", "genotype.json", "summary.json",
                 "genotypes/epoch_001.json", "genotypes/epoch_002.json"):
        assert (d / name).is_file(), name
    record = [r for r in run.log.read() if r["type"] == "epoch"][-1]
    for key in ("train_loss", "train_acc", "val_acc", "tau", "entropy", "expected_active_ops", "p"):
        assert key in record
    assert len(record["p"]["normal"]) == 14 and len(record["entropy"]["reduce"]) == 14
    assert summary["params_supernet"] == DARTS_SEARCH_PARAMS[(4, 3)]
    assert summary["params_derived_eval_size"] == count_parameters(
        Network(36, 10, 20, load_genotype(d / "genotype.json")))
    assert derive(d) == load_genotype(d / "genotype.json")


def test_resume_and_restart_errors(tmp_path, data_root):
    with pytest.raises(EGSError, match="cannot resume"):
        Search(SMOKE, tmp_path / "none", resume=True, data_root=data_root)
    run = _run(tmp_path, "r", data_root, epochs=1)
    run.run()
    with pytest.raises(EGSError, match="already holds a run"):
        Search(dataclasses.replace(SMOKE, epochs=1), tmp_path / "r", data_root=data_root)
    with pytest.raises(EGSError, match="differ in epochs"):
        Search(SMOKE, tmp_path / "r", resume=True, data_root=data_root)
    with pytest.raises(EGSError, match="mode='greedy'"):
        Search(dataclasses.replace(SMOKE, mode="greedy"), tmp_path / "g", data_root=data_root)


def test_cli_search_and_derive(tmp_path, data_root):
    env = {"EGS_DATA_DIR": str(data_root), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "egs", "search", "--profile", "smoke", "--run-dir",
                          str(tmp_path / "cli"), "--epochs", "1", "--set", "batch_size=16"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    # output to a pipe: the summary JSON alone on stdout, one progress line per epoch on stderr, no bar updates
    assert json.loads(run.stdout)["rule"] == "node"
    assert "search epoch 1/1 (" in run.stderr and "\r" not in run.stderr and "it/s" not in run.stderr
    assert json.loads((tmp_path / "cli" / "config.json").read_text())["batch_size"] == 16
    out = subprocess.run([sys.executable, "-m", "egs", "derive", str(tmp_path / "cli"), "--render",
                          str(tmp_path / "fig")], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "normal: conv cell" in out.stdout and (tmp_path / "fig" / "normal_cell.png").is_file()
    bad = subprocess.run([sys.executable, "-m", "egs", "search", "--profile", "smoke", "--set", "M=0",
                          "--run-dir", str(tmp_path / "bad")], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "M=0" in bad.stderr and "Traceback" not in bad.stderr


def test_batch_statistics_evaluation_leaves_the_supernet_untouched():
    from egs.engine.search import batch_statistics
    torch.manual_seed(0)
    model = Supernet(4, 10, 3, M=2)
    x = torch.randn(4, 3, 8, 8)
    codes = model.derivation_codes("node")[0]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        reference = model(x, codes=codes)  # training mode: batch statistics (and running-stat updates)
    model.load_state_dict(before)
    with torch.no_grad(), batch_statistics(model):
        assert not model.training
        out = model(x, codes=codes)
    assert torch.allclose(out, reference, atol=1e-6) and model.training
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_select_rule_records_its_candidates_and_provenance_travels(tmp_path, data_root):
    run = _run(tmp_path, "sel", data_root, epochs=1, rule="select", select_candidates=3, select_batches=2)
    summary = run.run()
    d = tmp_path / "sel"
    record = json.loads((d / "derivation.json").read_text())
    assert record["rule"] == "select" and [c["index"] for c in record["candidates"]] == [0, 1, 2]
    best = max(record["candidates"], key=lambda c: (c["score"], -c["index"]))
    assert record["chosen"] == best["index"] and summary["chosen_score"] == best["score"]
    assert 0.0 <= summary["node_score"] <= 1.0  # the node cell scored on the same search-val batches
    genotype = load_genotype(d / "genotype.json")
    assert genotype == Genotype.from_dict(best["genotype"])
    run_id = json.loads((d / "run.json").read_text())["run_id"]
    assert {k: genotype.provenance[k] for k in ("rule", "M", "lam", "space", "run_id", "seed")} == \
        {"rule": "select", "M": SMOKE.M, "lam": SMOKE.lam, "space": "conv", "run_id": run_id, "seed": SMOKE.seed}
    assert summary["run_id"] == run_id and summary["rule"] == "select"
    assert derive(d, data_root=data_root) == genotype  # the same seeded candidates and scores again
    node = derive(d, "node")
    assert node.provenance["rule"] == "node" and node.provenance["run_id"] == run_id
    with pytest.raises(EGSError, match="training run"):
        from egs.conv.train import Trainer
        Trainer(settings("train_cifar", "smoke", epochs=1), DARTS_V2, tmp_path / "t", data_root=data_root,
                progress=False).run()
        derive(tmp_path / "t")


def test_progress_style_follows_the_environment(monkeypatch):
    from egs.engine.progress import progress_style
    for style in ("bar", "epoch"):
        monkeypatch.setenv("EGS_PROGRESS", style)
        assert progress_style() == style
    monkeypatch.setenv("EGS_PROGRESS", "lines")
    with pytest.raises(EGSError, match="EGS_PROGRESS='lines'.*'bar' or 'epoch'"):
        progress_style()
    monkeypatch.delenv("EGS_PROGRESS")
    assert progress_style() == ("bar" if sys.stderr.isatty() else "epoch")
    monkeypatch.setitem(sys.modules, "ipykernel", sys)  # a kernel: papermill's (no session) or JupyterLab's
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    assert progress_style() == "epoch"
    session = "notebooks/02_cifar10_search.ipynb"
    monkeypatch.setenv("JPY_SESSION_NAME", session)
    assert progress_style() == "epoch"  # no kernel application: not a kernel that a Jupyter server started


def test_only_a_kernel_that_a_jupyter_server_started_gets_a_bar(monkeypatch, tmp_path):
    """JupyterLab's kernel has its session in its connection file; a papermill kernel started from one of its
    cells inherits JPY_SESSION_NAME but its connection file has no session: one line per epoch there."""
    from ipykernel.kernelapp import IPKernelApp

    from egs.engine.progress import progress_style
    session = "notebooks/02_cifar10_search.ipynb"
    monkeypatch.delenv("EGS_PROGRESS", raising=False)
    monkeypatch.setenv("JPY_SESSION_NAME", session)
    monkeypatch.setitem(sys.modules, "ipykernel", sys)
    connection = tmp_path / "kernel.json"
    app = type("App", (), {"connection_file": str(connection)})()
    monkeypatch.setattr(IPKernelApp, "initialized", classmethod(lambda cls: True))
    monkeypatch.setattr(IPKernelApp, "instance", classmethod(lambda cls: app))
    for info, style in (({"jupyter_session": session}, "bar"), ({"jupyter_session": ""}, "epoch"), ({}, "epoch")):
        connection.write_text(json.dumps({"key": "k", **info}))
        assert progress_style() == style, info
    connection.write_text("{torn")
    assert progress_style() == "epoch"
