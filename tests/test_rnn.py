"""Recurrent cell, language model and search supernet (egs.rnn.model): DARTS's PTB space with EGS codes."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from egs.conv.network import count_parameters
from egs.core.errors import EGSError
from egs.arch.genotype import CellGenotype, Genotype
from egs.arch.published import DARTS_V1_RNN, DARTS_V2_RNN
from egs.arch.space import RNN_OPS
from egs.rnn.ops import rnn_activation
from egs.rnn.model import RNNCell, RNNModel, locked_dropout
from egs.rnn.supernet import RNNSupernet, efficiency_credit, op_macs
from egs.rnn.lm import lm_loss, temporal_activation_reg
from egs.arch.space import RNN
from egs.method.supernet import active_ops

pytestmark = pytest.mark.usefixtures("one_thread")

# Parameter counts of DARTS's own language models, counted on CPU from quark0/darts (commit f276dd3)
# rnn/model.py RNNModel(ntoken, ninp, nhid, nhidlast, genotype=genotypes.DARTS_V2) and
# rnn/model_search.py RNNModelSearch(ntoken, 300, 300, 300) (arch weights are not parameters there),
# with .cuda() patched to the identity. Tied embedding/decoder weight counted once. Each equals
# ntoken * ninp + ntoken + (ninp + nhid) * 2 nhid + 8 * nhid * 2 nhid.
DARTS_PARAMS = {
    "ptb_eval": (10000, 850, DARTS_V2_RNN, 22_960_000),
    "wt2_eval": (33278, 700, DARTS_V2_RNN, 33_127_878),
    "ptb_search": (10000, 300, None, 4_810_000),
}


def _sig(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def test_node0_and_highway_edges_by_hand():
    # nodes 0, 1, 2; edges 0->1 relu, 0->2 tanh + identity (averaged), 1->2 sigmoid; node 2 averages
    # its two edges; h_t = mean(s1, s2)
    edges = {(0, 1): ("relu",), (0, 2): ("tanh", "identity"), (1, 2): ("sigmoid",)}
    cell = RNNCell(2, 2, edges, concat=(1, 2), n_nodes=3).eval()
    with torch.no_grad():
        cell.W0.copy_(torch.eye(4))                      # (c0, h0) = (x, h_prev)
        cell.Ws["1"].copy_(torch.tensor([[1., 0, -1, 0], [0, 1, 0, 2]]))  # c = s, h = (-s_a, 2 s_b)
        cell.Ws["2"].copy_(torch.tensor([[0., 0, 1, 0], [0, 0, 0, 1]]))   # c = 0, h = s
    x, hp = [1.0, -1.0], [0.5, 0.25]
    s0 = [hp[0] + _sig(x[0]) * (math.tanh(hp[0]) - hp[0]), hp[1] + _sig(x[1]) * (math.tanh(hp[1]) - hp[1])]
    h1 = [-s0[0], 2 * s0[1]]
    s1 = [s0[k] + _sig(s0[k]) * (max(h1[k], 0.0) - s0[k]) for k in range(2)]
    e02 = [((s0[k] + .5 * (math.tanh(s0[k]) - s0[k])) + (s0[k] + .5 * (s0[k] - s0[k]))) / 2 for k in range(2)]
    e12 = [s1[k] + .5 * (_sig(s1[k]) - s1[k]) for k in range(2)]
    s2 = [(e02[k] + e12[k]) / 2 for k in range(2)]  # node 2 averages its two incoming edges
    expected = torch.tensor([(s1[k] + s2[k]) / 2 for k in range(2)])
    out, last = cell(torch.tensor([[x]]), torch.tensor([[hp]]))
    assert out.shape == (1, 1, 2) and torch.allclose(last[0, 0], expected, atol=1e-6)


def _reference_step(cell: RNNCell, x, h_prev, codes):
    """Plain loops over every (edge, activation) pair: the EGS cell without batch norm or dropout."""
    c0, h0 = (torch.cat([x, h_prev], -1) @ cell.W0).split(cell.nhid, -1)
    states = [h_prev + c0.sigmoid() * (h0.tanh() - h_prev)]
    e = 0
    for j in range(1, cell.n_nodes):
        edges = []
        for i in range(j):
            on = [k for k in range(1, 5) if codes[e, k] > 0.5]
            if on and states[i] is not None:
                c, h = (states[i] @ cell.Ws[str(j)]).split(cell.nhid, -1)
                terms = [codes[e, k] * (states[i] + c.sigmoid() * (rnn_activation(RNN_OPS[k])(h) - states[i]))
                         for k in on]
                edges.append(sum(terms) / len(terms))
            e += 1
        states.append(sum(edges) / len(edges) if edges else None)  # a node averages its edges
    return sum(s for s in states[1:] if s is not None) / (cell.n_nodes - 1)


def _codes(seed: int, n_nodes: int = 9) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(len(RNN.edges(n_nodes)), 5, generator=g) < 0.4).float()


def test_only_active_activations_run_and_match_a_loop_reference(monkeypatch):
    torch.manual_seed(0)
    sup = RNNSupernet(20, 6, 6, batch_norm=False).eval()
    codes = _codes(1)
    codes[[e for e, (i, j) in enumerate(RNN.edges()) if j == 4], 1:] = 0.0  # node 4 absent
    calls: dict[str, int] = {}
    real = dict(sup.net.cell.activations)

    def counting(name):
        f = real[name]
        return lambda h: (calls.__setitem__(name, calls.get(name, 0) + h.shape[0]), f(h))[1]

    monkeypatch.setattr(sup.net.cell, "activations", {name: counting(name) for name in real})
    x = torch.randint(0, 20, (3, 2))
    out, hidden = sup(x, sup.init_hidden(2), codes={"normal": codes}, return_logits=True)
    expected: dict[str, int] = {}
    for e, (i, j) in enumerate(RNN.edges()):
        for k in range(1, 5):
            if codes[e, k] > 0.5 and i != 4:                 # edges leaving the absent node 4 never run
                expected[RNN_OPS[k]] = expected.get(RNN_OPS[k], 0) + 3  # per time step
    assert calls == expected and "none" not in calls
    monkeypatch.setattr(sup.net.cell, "activations", real)
    emb, h = sup.net.encoder(x), torch.zeros(2, 6)
    for t in range(3):
        h = _reference_step(sup.net.cell, emb[t], h, codes)
    assert torch.allclose(hidden[0], h, atol=1e-6)


def test_dropping_an_input_node_drops_its_outgoing_edges_in_the_reference_too():
    codes = torch.zeros(36, 5)
    codes[0, 1] = 1.0                                       # only 0 -> 1 (tanh); nodes 2..8 absent
    cell = RNNSupernet(10, 4, 4, batch_norm=False).eval().net.cell
    plan = cell.plan(codes, active_ops(codes, RNN))
    assert [bool(src) for src, _ in plan] == [True] + [False] * 7
    x, h = torch.randn(2, 4), torch.randn(2, 4)
    assert torch.allclose(cell.step(x, h, plan, None, None), _reference_step(cell, x, h, codes))


def test_alpha_gets_a_finite_non_zero_gradient_through_one_sampled_step():
    torch.manual_seed(0)
    sup = RNNSupernet(30, 8, 8, M=4).train()
    x, y = torch.randint(0, 30, (4, 3)), torch.randint(0, 30, (4, 3))
    logp, _ = sup(x, sup.init_hidden(3), generator=torch.Generator().manual_seed(0))
    nn.functional.nll_loss(logp.reshape(-1, 30), y.reshape(-1)).backward()
    g = sup.alpha_normal.grad
    assert g is not None and g.shape == (36, 5) and bool(torch.isfinite(g).all()) and g.abs().sum() > 0
    assert [id(p) for p in sup.arch_parameters()] == [id(sup.alpha_normal)]
    assert all(p is not sup.alpha_normal for p in sup.weight_parameters())


@pytest.mark.parametrize("name", sorted(DARTS_PARAMS))
def test_parameter_counts_equal_darts(name):
    ntoken, size, genotype, expected = DARTS_PARAMS[name]
    with torch.device("meta"):
        model = RNNSupernet(ntoken, size, size) if genotype is None else RNNModel(ntoken, size, size, genotype)
    assert count_parameters(model, exclude=("alpha",)) == expected
    assert expected == ntoken * size + ntoken + 2 * size * 2 * size + 8 * size * 2 * size


def test_darts_genotype_builds_an_evaluation_model_that_runs_only_its_edges(monkeypatch):
    torch.manual_seed(0)
    model = RNNModel(30, 12, 12, DARTS_V2_RNN).eval()
    assert sorted(model.cell.Ws.keys()) == [str(j) for j in range(1, 9)] and model.cell.bn is None
    calls = []
    real = dict(model.cell.activations)
    monkeypatch.setattr(model.cell, "activations", {n: (lambda f, n: lambda h: (calls.append(n), f(h))[1])(f, n)
                                                    for n, f in real.items()})
    logp, hidden = model(torch.randint(0, 30, (5, 3)), model.init_hidden(3))
    assert logp.shape == (5, 3, 30) and hidden.shape == (1, 3, 12)
    assert torch.allclose(logp.exp().sum(-1), torch.ones(5, 3), atol=1e-5)
    assert len(calls) == 5 * 8                                # one activation per DARTS node per step
    sparse = Genotype(CellGenotype("rnn", 9, {(0, 1): ["tanh", "relu"], (1, 3): ["sigmoid"]}, range(1, 9)))
    assert sorted(RNNModel(30, 12, 12, sparse).cell.Ws.keys()) == ["1", "3"]   # W_j only where used


def test_batch_norm_only_in_search_mode():
    sup = RNNSupernet(20, 6, 6).train()
    bn = sup.net.cell.bn
    assert isinstance(bn, nn.BatchNorm1d) and not bn.affine
    sup(torch.randint(0, 20, (2, 4)), sup.init_hidden(4))
    assert bn.num_batches_tracked > 0
    assert RNNModel(20, 6, 6, DARTS_V1_RNN).cell.bn is None
    assert RNNSupernet(20, 6, 6, batch_norm=False).net.cell.bn is None
    assert not any(isinstance(m, nn.BatchNorm1d) for m in RNNModel(20, 6, 6, DARTS_V2_RNN).modules())


def test_dropout_acts_only_in_training():
    torch.manual_seed(0)
    model = RNNModel(20, 6, 6, DARTS_V2_RNN, dropout=.5, dropouth=.5, dropoutx=.5, dropouti=.5, dropoute=.5)
    clean = RNNModel(20, 6, 6, DARTS_V2_RNN, dropout=0, dropouth=0, dropoutx=0, dropouti=0, dropoute=0)
    clean.load_state_dict(model.state_dict())
    x, h = torch.randint(0, 20, (4, 3)), model.init_hidden(3)
    model.eval(), clean.eval()
    a, b = model(x, h)[0], model(x, h)[0]
    assert torch.equal(a, b) and torch.allclose(a, clean(x, h)[0])
    model.train(), clean.train()
    assert not torch.allclose(model(x, h)[0], a) and torch.allclose(clean(x, h)[0], a)
    locked = locked_dropout(torch.ones(5, 2, 7), 0.5, True)
    assert torch.equal(locked, locked[:1].expand_as(locked))         # one mask for all time steps
    assert torch.equal(locked_dropout(torch.ones(5, 2, 7), 0.5, False), torch.ones(5, 2, 7))


def test_decoder_is_tied_to_the_embedding():
    model = RNNModel(20, 6, 6, DARTS_V2_RNN)
    assert model.decoder.weight is model.encoder.weight
    assert model.decoder.weight.data_ptr() == model.encoder.weight.data_ptr()
    assert count_parameters(model) == 20 * 6 + 20 + 12 * 12 + 8 * 6 * 12


def test_derive_reads_the_most_probable_code():
    sup = RNNSupernet(10, 4, 4, M=4)
    with torch.no_grad():
        sup.alpha_normal.fill_(-30.0)
        sup.alpha_normal[:, 1] = 0.0          # tanh ...
        sup.alpha_normal[::2, 2] = 0.0        # ... and on even edges relu equally likely: {tanh, relu} wins (14/16)
    cell = sup.derive("edge").normal
    assert cell.space == "rnn" and cell.n_nodes == 9 and cell.concat == tuple(range(1, 9))
    assert all(cell.edges[e] == (("tanh", "relu") if k % 2 == 0 else ("tanh",)) for k, e in enumerate(RNN.edges()))
    node = sup.derive("node").normal  # the node rule pools each node's (predecessor, activation) pairs
    assert node.space == "rnn" and RNNModel(10, 4, 4, sup.derive("node")).cell.n_nodes == 9
    assert all(sum(len(ops) for (i, j), ops in node.edges.items() if j == t) <= 4 for t in range(1, 9))


def test_uniform_credit_by_default_and_custom_credit_is_mixed_in():
    sup = RNNSupernet(10, 4, 4)
    assert torch.allclose(sup.probabilities()["normal"], torch.full((36, 5), 0.2), atol=1e-3)
    credit = torch.tensor([0.6, 0.1, 0.1, 0.1, 0.1])
    mixed = RNNSupernet(10, 4, 4, lam=0.0, credit=credit)
    assert torch.allclose(mixed.probabilities()["normal"], credit.expand(36, 5))


def _grads(model: nn.Module, loss: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, list(model.parameters()), retain_graph=True))


def test_tar_adds_beta_times_the_mean_squared_step_of_the_raw_outputs_to_the_gradient_only():
    torch.manual_seed(0)
    model = RNNModel(12, 4, 4, DARTS_V2_RNN, dropout=0.0, dropouth=0.0, dropoutx=0.0, dropouti=0.0,
                     dropoute=0.0).train()  # no dropout: every forward pass is the same function
    x, y, h0 = torch.randint(0, 12, (5, 3)), torch.randint(0, 12, (5, 3)), torch.zeros(1, 3, 4)
    logp, _, h = model(x, h0, return_h=True)
    nll = nn.functional.nll_loss(logp.reshape(-1, 12), y.reshape(-1))
    steps = [(h[t + 1, b, d] - h[t, b, d]) ** 2 for t in range(4) for b in range(3) for d in range(4)]
    by_hand = sum(steps) / len(steps)  # DARTS: beta * (h[1:] - h[:-1]).pow(2).mean()
    assert torch.allclose(temporal_activation_reg(h, 0.5), 0.5 * by_hand)
    off, _ = lm_loss(model, x, y, h0, tar_beta=0.0)  # tar_beta = 0 adds nothing: the plain NLL path
    assert torch.equal(off, nll) and all(map(torch.equal, _grads(model, off), _grads(model, nll)))
    on, _ = lm_loss(model, x, y, h0, tar_beta=0.5)  # the value stays the NLL (DARTS logs raw_loss) ...
    assert torch.equal(on.detach(), nll.detach())
    for got, want in zip(_grads(model, on), _grads(model, nll + 0.5 * by_hand)):  # ... the gradient has TAR's
        assert torch.allclose(got, want, atol=1e-7)
    assert max((g - n).abs().max() for g, n in zip(_grads(model, on), _grads(model, nll))) > 1e-6  # TAR moved them
    assert temporal_activation_reg(h[:1], 0.5).item() == 0.0  # a one-step window has no difference


def test_return_h_gives_the_raw_cell_outputs_before_the_output_dropout():
    torch.manual_seed(0)
    model = RNNModel(12, 4, 4, DARTS_V2_RNN, dropout=0.75, dropouth=0.0, dropoutx=0.0, dropouti=0.0,
                     dropoute=0.0).train()
    x, h0 = torch.randint(0, 12, (5, 3)), torch.zeros(1, 3, 4)
    _, hidden, h = model(x, h0, return_h=True)
    raw, last = model.cell(model.encoder(x), h0)
    assert torch.equal(h, raw) and torch.equal(hidden, last)
    sup = RNNSupernet(12, 4, 4)
    assert len(sup(x, h0, codes=sup.sample(torch.Generator().manual_seed(0)), return_h=True)) == 3


def test_efficiency_credit_counts_each_ops_multiply_adds_on_its_edge():
    assert op_macs("rnn", 300).tolist() == [0.0, 181_800.0, 181_800.0, 181_800.0, 181_500.0]  # 2 nhid^2 + 6 / 5 nhid
    credit = efficiency_credit("rnn", 300)
    assert torch.allclose(credit.sum(), torch.tensor(1.0)) and credit.argmax() == RNN_OPS.index("none")
    assert torch.allclose(credit[0], torch.tensor(0.4045), atol=1e-4)  # softmax(-c / max c): 1 : e^-1
    assert (credit[1:] - 0.1488).abs().max() < 5e-4  # the activations share the matmul: near-uniform
    assert torch.allclose(efficiency_credit("rnn", 300, beta=0.0), torch.full((5,), 0.2))


@pytest.mark.parametrize("build,match", [
    (lambda: RNNModel(20, 6, 8, DARTS_V2_RNN), "tied"),
    (lambda: RNNModel(0, 6, 6, DARTS_V2_RNN), "ntoken"),
    (lambda: RNNModel(20, 6, 6, DARTS_V2_RNN, dropout=1.0), "dropout"),
    (lambda: RNNModel(20, 6, 6, "DARTS_V2"), "rnn genotype"),
    (lambda: RNNSupernet(20, 6, 6, lam=1.5), "lambda"),
    (lambda: RNNSupernet(20, 6, 6, M=0), "M=0"),
    (lambda: RNNSupernet(20, 6, 6, credit=torch.ones(5)), "sum to 1"),
    (lambda: RNNSupernet(20, 6, 6, credit=torch.ones(3)), "shape"),
    (lambda: RNNSupernet(20, 6, 6).derive("best"), "rule='best'"),
    (lambda: RNNSupernet(20, 6, 6)(torch.zeros(3, 2, dtype=torch.long), torch.zeros(1, 2, 6),
                                   codes={"normal": torch.ones(14, 5)}), "codes must be"),
    (lambda: RNNModel(20, 6, 6, DARTS_V2_RNN)(torch.zeros(3, 2), torch.zeros(1, 2, 6)), "token ids"),
    (lambda: RNNModel(20, 6, 6, DARTS_V2_RNN)(torch.full((3, 2), 20), torch.zeros(1, 2, 6)), "vocabulary"),
    (lambda: RNNModel(20, 6, 6, DARTS_V2_RNN)(torch.zeros(3, 2, dtype=torch.long), torch.zeros(2, 6)), "hidden"),
    (lambda: RNNModel(20, 6, 6, DARTS_V2_RNN).init_hidden(0), "batch_size"),
])
def test_bad_inputs_raise_one_clear_error(build, match):
    with pytest.raises(EGSError, match=match):
        build()
