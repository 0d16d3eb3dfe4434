"""The sampled step costs what the sampled network costs: straight-through without an extra copy, and
one host sync per search step (reading the codes that choose which ops run)."""
from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F

from egs.profiles.experiments import settings
from egs.conv.search import Search
from egs.method.supernet import active_ops_of
from egs.conv.supernet import Supernet

pytestmark = pytest.mark.usefixtures("one_thread")


def test_straight_through_gives_alpha_exactly_the_gradient_of_the_product():
    """The gated step (op output used as it is) and the old formulation (output * code) give identical
    gradients to alpha and to every weight, on the same codes and batch."""
    torch.manual_seed(0)
    model = Supernet(4, 10, 3, M=4).eval()  # eval: BatchNorm statistics are not updated between the passes
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
    codes = model.sample(torch.Generator().manual_seed(0))
    active = active_ops_of(codes, model.space)
    grads = []
    for hard in (True, False):
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model.net(x, weights=codes, active=active, hard=hard), y).backward(retain_graph=True)
        grads.append([p.grad.clone() if p.grad is not None else None for p in model.parameters()])
    for a, b in zip(*grads):
        assert (a is None) == (b is None) and (a is None or torch.allclose(a, b, atol=1e-7, rtol=1e-6))
    assert all(g is not None and g.abs().sum() > 0 for g in grads[0][:2])  # alpha_normal, alpha_reduce


def test_the_gated_forward_keeps_no_product_tensor():
    """In the gated forward the value an op produces is the value the cell uses (same storage)."""
    from egs.method.sampler import straight_through
    out = torch.randn(2, 3, requires_grad=True) * 1.0
    gated = straight_through(out, torch.ones((), requires_grad=True))
    assert gated.data_ptr() == out.data_ptr() and torch.equal(gated, out)


class SyncCounter:
    """Counts calls made from egs's own code that read a tensor's value to the host. (Torch's Adam reads
    its step counter with ``.item()``, but that counter lives on the CPU whatever the device: no sync.)"""

    NAMES = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__")

    def __init__(self, monkeypatch) -> None:
        self.calls: list[str] = []
        for name in self.NAMES:
            original = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self._wrap(name, original))

    def _wrap(self, name, original):
        def counted(tensor, *args, **kwargs):
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if caller.startswith("egs"):
                self.calls.append(f"{caller}.{name}")
            return original(tensor, *args, **kwargs)
        return counted


@pytest.mark.parametrize("kind", ["search", "rnn_search"])
def test_a_search_step_syncs_with_the_host_once(tmp_path, data_root, monkeypatch, kind):
    from egs.rnn.search import RNNSearch
    loop = (Search if kind == "search" else RNNSearch)(settings(kind, "smoke", epochs=1, log_every=10**6, device="cpu"),
                                                       tmp_path / kind, data_root=data_root, progress=False)
    batches = loop.batches(0, 0)
    loop.train_step(next(batches))  # warm up (lazy initialisations)
    counter = SyncCounter(monkeypatch)
    for _ in range(3):
        loop.train_step(next(batches))
    # one read of the codes per step: .cpu() (the sync) then .tolist() of the host copy
    assert counter.calls == ["egs.method.supernet.cpu", "egs.method.supernet.tolist"] * 3, counter.calls
    loop.close()


@pytest.mark.parametrize("name, stride, affine", [("sep_conv_3x3", 1, False), ("dil_conv_5x5", 2, False),
                                                  ("max_pool_3x3", 1, False), ("skip_connect", 2, False),
                                                  ("skip_connect", 1, False), ("sep_conv_5x5", 1, True)])
def test_a_gated_op_is_its_output_times_the_gate(name, stride, affine):
    """gated_op: the forward value is the op's output (bit for bit) and every gradient, the gate's included,
    is that of ``op(x) * gate``; BatchNorm's running statistics move exactly as under ``op(x)``."""
    import copy

    from egs.method.gate import final_batch_norm, gated_op
    from egs.conv.ops import make_conv_op
    torch.manual_seed(0)
    op = make_conv_op(name, 4, stride, affine=affine, search=True).train()
    twin = copy.deepcopy(op)
    x = torch.randn(3, 4, 7, 7)
    outs, grads = [], []
    for module, gated in ((op, True), (twin, False)):
        xi = x.clone().requires_grad_()
        gate = (torch.ones(()) + torch.zeros((), requires_grad=True)).requires_grad_()
        gate.retain_grad()
        out = gated_op(module, xi, gate) if gated else module(xi) * gate
        g = torch.randn_like(out, generator=torch.Generator().manual_seed(1))
        out.backward(g)
        outs.append(out.detach())
        grads.append([gate.grad, xi.grad, *(p.grad for p in module.parameters())])
    assert torch.equal(outs[0], outs[1])
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-5), (a, b)
    assert all(torch.equal(a, b) for a, b in zip(op.buffers(), twin.buffers()))
    assert (final_batch_norm(op) is None) == (name == "skip_connect" and stride == 1)


def test_a_gated_op_keeps_nothing_for_backward_that_the_op_does_not():
    """The gated op saves exactly the tensors the plain op saves (no copy of its output is kept)."""
    from egs.method.gate import gated_op
    from egs.conv.ops import make_conv_op
    op = make_conv_op("sep_conv_3x3", 8, 1, affine=False, search=True)
    x = torch.randn(2, 8, 8, 8, requires_grad=True)

    def saved_bytes(fn):
        seen = {}

        def pack(t):
            seen[(t.data_ptr(), t.numel())] = t.numel() * t.element_size()
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn()
        return sum(seen.values())
    plain = saved_bytes(lambda: op(x))
    gate = torch.ones((), requires_grad=True)
    assert saved_bytes(lambda: gated_op(op, x, gate)) <= plain + 64  # the gate and its expanded weight


def test_the_work_ratio_counts_dense_and_sampled_networks_alike():
    """benchmarks/work_ratio.py: where M draws switch on every op (M = 200 of 8 ops) the sampled network is the
    dense one (ratio exactly 1); at M = 1 it runs about one op per edge, so the dense network does several
    times its work."""
    from benchmarks.work_ratio import work_ratios
    assert work_ratios(C=4, layers=3, M=200, pairs=2) == [1.0, 1.0]
    assert all(r > 2 for r in work_ratios(C=4, layers=3, M=1, pairs=3))


def test_picking_every_gate_in_one_indexing_op_changes_no_bit(monkeypatch):
    """The cell picks the code values of the ops that run in one indexing op (Cell._gates); weights, alpha and
    every gradient equal, bit for bit, those of the per-op ``weights[e, k]`` it replaced (overhead only)."""
    from egs.conv.network import Cell

    def per_op(self, weights, active):
        return {(e, name): weights[e, self.index[name]] for e, ops in enumerate(self.ops)
                for name in (ops.keys() if active is None else active[e])}

    def steps():
        torch.manual_seed(0)
        model = Supernet(4, 10, 5, M=7).train()
        opt = torch.optim.SGD(model.parameters(), 0.1, momentum=0.9)
        x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))
        for i in range(3):
            opt.zero_grad()
            F.cross_entropy(model(x, codes=model.sample(torch.Generator().manual_seed(i))), y).backward()
            grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
            opt.step()
        return grads, list(model.state_dict().values())

    batched = steps()
    monkeypatch.setattr(Cell, "_gates", per_op)
    reference = steps()
    assert all(torch.equal(a, b) for a, b in zip(batched[0], reference[0])) and len(batched[0]) == len(reference[0])
    assert all(torch.equal(a, b) for a, b in zip(batched[1], reference[1]))


def test_the_training_benchmark_pairs_two_checkouts_and_adds_up_its_phases(data_root, capsys):
    """benchmarks/train_time.py at smoke, this checkout against itself: the same errors on both sides, phases that
    add up to the measured total."""
    from benchmarks.train_time import PHASES, ROOT, main
    out = main(["--baseline", ROOT, "--profile", "smoke", "--threads", "1", "--seeds", "0", "--data", str(data_root)])
    (res,) = out["results"]
    (base,), (cur,) = res["runs"]["baseline"], res["runs"]["current"]
    assert base["test_top1_err"] == cur["test_top1_err"] and base["threads"] == cur["threads"] == 1
    for run in (base, cur):
        assert set(run["phases_s"]) == set(PHASES) and run["phases_s"]["forward"] > 0
        assert sum(run["phases_s"].values()) == pytest.approx(run["total_s"])
    assert res["speedup"]["pairs"] == 1 and "speed-up baseline / current" in capsys.readouterr().out
