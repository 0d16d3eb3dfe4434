"""Recurrent cell, language model and EGS search supernet (Chang et al., 2019, Sec. 4; DARTS's PTB space).

**Node counting.** The paper's recurrent cell has n = 12 nodes: the inputs x_t and h_{t-1}, node 0,
8 intermediate nodes 1..8 and the output h_t. As in DARTS (quark0/darts, rnn/model.py) and
:mod:`egs.genotype` (space "rnn", ``n_nodes = 9`` numbers nodes 0..8), node 0 is not searched:

    (c0, h0) = split([x_t, h_{t-1}] W0),   s_0 = h_{t-1} + sigmoid(c0) * (tanh(h0) - h_{t-1}).

Every node j = 1..8 has one matrix W_j (nhid -> 2 nhid) shared by all its incoming edges; edge
(i -> j) with activation f computes the highway term ``s_i + sigmoid(c) * (f(h) - s_i)``,
(c, h) = split(s_i W_j). Every edge i < j (E = 1 + 2 + ... + 8 = 36) carries a code over
``RNN_OPS``; only active (edge, activation) pairs are computed ("none" adds nothing), each term is
multiplied by its straight-through code value, an edge averages its active terms (as our conv
cells do, :mod:`egs.cnn`), and node j averages its active incoming edges. h_t = mean of the
``concat`` nodes (1..8).

Decision (node averaging): Eq. 1-2 sum a node's incoming edges. In the recurrent cell each highway
term has the scale of its source state, so a sum over up to 8 edges grows like 2^j across nodes and
again through time: a random dense cell's language model produced NaN on its first step (measured,
embedding 128, 35 steps). Averaging keeps every node a convex-like mix of its sources; a DARTS cell
(one edge per node) is unchanged, so DARTS equivalence and parameter counts hold.

Decision (the paper is silent, as for conv cells): a node with no active input edge is zero and is
*absent*: edges leaving it are not computed and it adds zeros to the output mean (whose divisor stays
``len(concat)``). The same rule serves the search supernet and the evaluation cell of a genotype
(which holds only the genotype's edges and a W_j only for nodes with an input), so a DARTS genotype
gives exactly DARTS's cell and parameter count.

Search mode (``batch_norm=True``) normalises s_0 and every node with one BatchNorm1d(nhid,
affine=False) shared by all nodes (DARTS rnn/model_search.py). In training, variational dropout masks
(drawn once per sequence, DARTS's dropoutx / dropouth) multiply x_t and every state entering a
matrix (h_{t-1} and s_i); the language model adds embedding dropout (dropoute), locked dropout on its
input (dropouti) and output (dropout), and a decoder tied to the embedding (DARTS RNNModel).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from egs.errors import EGSError
from egs.genotype import CellGenotype, Edge, Genotype
from egs.ops import RNN_OPS, ZERO, rnn_activation
from egs.checks import check_int, check_lam, check_M, check_rate, check_tau
from egs.sampler import derivation_codes, ensemble_gumbel_softmax, most_probable_code

N_NODES = 9          # node 0 + 8 intermediate nodes (the paper's n = 12 adds x_t, h_{t-1}, h_t)
_DROPOUT_FIX = "DARTS PTB: dropout 0.75, dropouth 0.25, dropoutx 0.75, dropouti 0.2, dropoute 0.1"
INITRANGE = 0.04     # DARTS's uniform initialisation range for W0, W_j and the embedding
OP_INDEX = {name: k for k, name in enumerate(RNN_OPS)}
Plan = list[tuple[list[int], list[tuple[str, torch.Tensor | None, torch.Tensor | None]]]]


def rnn_edges(n_nodes: int = N_NODES) -> list[Edge]:
    """All edges (i, j), 0 <= i < j, j = 1..n_nodes-1, by target then source (DARTS's row order)."""
    return [(i, j) for j in range(1, n_nodes) for i in range(j)]


def _mask(like: torch.Tensor, shape: tuple[int, ...], p: float) -> torch.Tensor:
    """Inverted-dropout mask: Bernoulli(1 - p) / (1 - p)."""
    return like.new_empty(shape).bernoulli_(1.0 - p).div_(1.0 - p)


def locked_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Variational dropout on (T, B, D): one mask per sequence, shared by all time steps."""
    return x if not training or p == 0 else x * _mask(x, (1, *x.shape[1:]), p)


def embedded_dropout(weight: torch.Tensor, words: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Embedding lookup with whole words dropped (rows of ``weight`` zeroed, rest rescaled)."""
    if training and p > 0:
        weight = weight * _mask(weight, (weight.shape[0], 1), p)
    return F.embedding(words, weight)


def _uniform(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.empty(shape).uniform_(-INITRANGE, INITRANGE))


class RNNCell(nn.Module):
    """The recurrent cell (module doc) whose edge (i, j) holds ``edge_ops[(i, j)]``; unrolled over time."""

    def __init__(self, ninp: int, nhid: int, edge_ops: Mapping[Edge, Sequence[str]],
                 concat: Sequence[int], n_nodes: int = N_NODES, batch_norm: bool = False,
                 dropouth: float = 0.25, dropoutx: float = 0.75) -> None:
        super().__init__()
        self.ninp, self.nhid = check_int(ninp, "ninp"), check_int(nhid, "nhid")
        self.n_nodes = check_int(n_nodes, "n_nodes", 2)
        self.dropouth = check_rate(dropouth, "dropouth", _DROPOUT_FIX)
        self.dropoutx = check_rate(dropoutx, "dropoutx", _DROPOUT_FIX)
        self.concat = tuple(concat)
        self.edges = rnn_edges(n_nodes)
        self.edge_ops = [tuple(op for op in RNN_OPS if op != ZERO and op in edge_ops.get(e, ()))
                         for e in self.edges]
        fed = sorted({j for (_, j), ops in zip(self.edges, self.edge_ops) if ops})
        self.W0 = _uniform(ninp + nhid, 2 * nhid)
        self.Ws = nn.ParameterDict({str(j): _uniform(nhid, 2 * nhid) for j in fed})
        self.bn = nn.BatchNorm1d(nhid, affine=False) if batch_norm else None

    def plan(self, weights: torch.Tensor | None, active: Sequence[Sequence[str]] | None) -> Plan:
        """Per node j = 1.., its present sources and, per activation, (name, source rows, scales).

        Scales are code value / number of active ops of the edge (None: all ones). Built once per
        forward pass: the code is the same at every time step.
        """
        if active is None:
            active = self.edge_ops
        elif len(active) != len(self.edges):
            raise EGSError(f"active lists {len(active)} edges; this cell has {len(self.edges)}.")
        dev = self.W0.device
        present, out, e = [True], [], 0
        for j in range(1, self.n_nodes):
            sources: list[int] = []
            groups: dict[str, tuple[list[int], list[int], list[float]]] = {}
            for i in range(j):
                names = [n for n in active[e] if n != ZERO] if present[i] else []
                for name in names:
                    if name not in self.edge_ops[e]:
                        raise EGSError(f"edge {self.edges[e]} has no op {name!r}; it holds "
                                       f"{list(self.edge_ops[e]) or 'nothing'}.")
                    rows, es, inv = groups.setdefault(name, ([], [], []))
                    rows.append(len(sources))
                    es.append(e)
                    inv.append(1.0 / len(names))
                if names:
                    sources.append(i)
                e += 1
            for _, _, inv in groups.values():  # a node averages its active incoming edges
                inv[:] = [v / len(sources) for v in inv]
            node = []
            for name in sorted(groups, key=OP_INDEX.__getitem__):
                rows, es, inv = groups[name]
                idx = None if rows == list(range(len(sources))) else torch.tensor(rows, device=dev)
                scale = None
                if weights is not None:
                    scale = weights[torch.tensor(es, device=dev), OP_INDEX[name]] * torch.tensor(inv, device=dev)
                elif any(v != 1.0 for v in inv):
                    scale = torch.tensor(inv, device=dev)
                node.append((name, idx, scale))
            present.append(bool(sources))
            out.append((sources, node))
        return out

    def step(self, x: torch.Tensor, h_prev: torch.Tensor, plan: Plan,
             x_mask: torch.Tensor | None, h_mask: torch.Tensor | None) -> torch.Tensor:
        """One time step: h_t from x_t (B, ninp) and h_{t-1} (B, nhid)."""
        xh = torch.cat([x if x_mask is None else x * x_mask, h_prev if h_mask is None else h_prev * h_mask], -1)
        c0, h0 = (xh @ self.W0).split(self.nhid, -1)
        s0 = h_prev + c0.sigmoid() * (h0.tanh() - h_prev)
        states: list[torch.Tensor | None] = [s0 if self.bn is None else self.bn(s0)]
        for j, (sources, groups) in enumerate(plan, start=1):
            if not sources:
                states.append(None)
                continue
            S = torch.stack([states[i] for i in sources])  # (n_sources, B, nhid)
            c, h = ((S if h_mask is None else S * h_mask) @ self.Ws[str(j)]).split(self.nhid, -1)
            c = c.sigmoid()
            node = None
            for name, idx, scale in groups:
                s_i, c_i, h_i = (S, c, h) if idx is None else (S[idx], c[idx], h[idx])
                term = s_i + c_i * (rnn_activation(name)(h_i) - s_i)
                term = (term if scale is None else term * scale.view(-1, 1, 1)).sum(0)
                node = term if node is None else node + term
            states.append(node if self.bn is None else self.bn(node))
        outs = [states[c] for c in self.concat if states[c] is not None]
        return torch.stack(outs).sum(0) / len(self.concat) if outs else torch.zeros_like(h_prev)

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor, weights: torch.Tensor | None = None,
                active: Sequence[Sequence[str]] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Unroll over inputs (T, B, ninp) from hidden (1, B, nhid).

        Returns every h_t, (T, B, nhid), and the last one, (1, B, nhid).

        ``weights``: (E, 5) code values multiplying each term (None: unweighted); ``active``: per
        edge, the ops to run (None: every op the edge holds).
        """
        B = inputs.shape[1]
        x_mask = h_mask = None
        if self.training and self.dropoutx > 0:
            x_mask = _mask(inputs, (B, self.ninp), self.dropoutx)
        if self.training and self.dropouth > 0:
            h_mask = _mask(inputs, (B, self.nhid), self.dropouth)
        plan = self.plan(weights, active)
        h, hiddens = hidden[0], []
        for t in range(inputs.shape[0]):
            h = self.step(inputs[t], h, plan, x_mask, h_mask)
            hiddens.append(h)
        return torch.stack(hiddens), h.unsqueeze(0)


class RNNModel(nn.Module):
    """DARTS's one-layer language model: embedding, the cell over time, decoder tied to the embedding.

    ``genotype=None`` builds the search cell (every op on every edge, batch norm on by default);
    a recurrent genotype builds the evaluation cell of its edges (same parameters as DARTS's
    RNNModel). Dropout defaults are DARTS's PTB evaluation settings (rnn/train.py).
    """

    def __init__(self, ntoken: int, ninp: int, nhid: int, genotype: Genotype | None = None, *,
                 dropout: float = 0.75, dropouth: float = 0.25, dropoutx: float = 0.75,
                 dropouti: float = 0.2, dropoute: float = 0.1, batch_norm: bool | None = None,
                 n_nodes: int = N_NODES) -> None:
        super().__init__()
        self.ntoken, self.ninp, self.nhid = (check_int(v, name) for v, name in ((ntoken, "ntoken"), (ninp, "ninp"),
                                                                                (nhid, "nhid")))
        if ninp != nhid:
            raise EGSError(f"ninp={ninp} != nhid={nhid}: the decoder is tied to the embedding, so the "
                           "embedding and hidden sizes must be equal (DARTS PTB: 850, WT2: 700).")
        self.dropout, self.dropouti, self.dropoute = (check_rate(v, name, _DROPOUT_FIX) for v, name in (
            (dropout, "dropout"), (dropouti, "dropouti"), (dropoute, "dropoute")))
        if genotype is None:
            n_nodes = check_int(n_nodes, "n_nodes", 2)
            edge_ops: Mapping[Edge, Sequence[str]] = {e: RNN_OPS for e in rnn_edges(n_nodes)}
            concat: Sequence[int] = range(1, n_nodes)
        elif isinstance(genotype, Genotype) and genotype.space == "rnn":
            n_nodes, edge_ops, concat = genotype.normal.n_nodes, genotype.normal.edges, genotype.normal.concat
        else:
            what = genotype.space if isinstance(genotype, Genotype) else type(genotype).__name__
            raise EGSError(f"a recurrent model needs an rnn genotype, got {what!r}; pass e.g. "
                           "egs.genotype.DARTS_V2_RNN, or None for the search cell.")
        self.search = genotype is None
        bn = self.search if batch_norm is None else bool(batch_norm)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.cell = RNNCell(ninp, nhid, edge_ops, concat, n_nodes, bn, dropouth, dropoutx)
        self.decoder = nn.Linear(nhid, ntoken)
        self.decoder.weight = self.encoder.weight
        nn.init.uniform_(self.encoder.weight, -INITRANGE, INITRANGE)
        nn.init.zeros_(self.decoder.bias)

    def init_hidden(self, batch_size: int) -> torch.Tensor:
        """Zero initial hidden state (1, batch_size, nhid)."""
        return self.cell.W0.new_zeros(1, check_int(batch_size, "batch_size"), self.nhid)

    def _check(self, inputs: torch.Tensor, hidden: torch.Tensor) -> None:
        if not isinstance(inputs, torch.Tensor) or inputs.dim() != 2 or inputs.dtype != torch.long:
            what = (f"{tuple(inputs.shape)} {inputs.dtype}" if isinstance(inputs, torch.Tensor)
                    else type(inputs).__name__)
            raise EGSError(f"inputs must be a (T, B) tensor of token ids (torch.long), got {what}.")
        if inputs.numel() and inputs.device.type != "meta":
            lo, hi = (int(v) for v in inputs.aminmax())
            if lo < 0 or hi >= self.ntoken:
                raise EGSError(f"token ids span [{lo}, {hi}], outside the vocabulary 0..{self.ntoken - 1}.")
        want = (1, inputs.shape[1], self.nhid)
        if not isinstance(hidden, torch.Tensor) or tuple(hidden.shape) != want:
            got = tuple(hidden.shape) if isinstance(hidden, torch.Tensor) else type(hidden).__name__
            raise EGSError(f"hidden must have shape {want} (use model.init_hidden({inputs.shape[1]})), got {got}.")

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor, weights: torch.Tensor | None = None,
                active: Sequence[Sequence[str]] | None = None,
                return_logits: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities (or logits) (T, B, ntoken) of the next token, and the new hidden (1, B, nhid)."""
        self._check(inputs, hidden)
        emb = embedded_dropout(self.encoder.weight, inputs, self.dropoute, self.training)
        emb = locked_dropout(emb, self.dropouti, self.training)
        outputs, hidden = self.cell(emb, hidden, weights, active)
        logits = self.decoder(locked_dropout(outputs, self.dropout, self.training))
        return (logits if return_logits else F.log_softmax(logits, -1)), hidden


def active_ops(codes: torch.Tensor) -> list[list[str]]:
    """Names of the non-zero activations whose bit is set, per edge, from (E, 5) codes (one host sync)."""
    bits = (codes.detach() > 0.5).cpu().tolist()
    return [[RNN_OPS[k] for k, on in enumerate(row) if on and RNN_OPS[k] != ZERO] for row in bits]


def codes_to_cell(codes: torch.Tensor, n_nodes: int = N_NODES) -> CellGenotype:
    """The recurrent cell genotype that binary codes (E, 5) describe (h_t = mean of nodes 1..n-1)."""
    edges = rnn_edges(n_nodes)
    if tuple(codes.shape) != (len(edges), len(RNN_OPS)):
        raise EGSError(f"codes of shape {tuple(codes.shape)} do not fit a {n_nodes}-node recurrent cell; "
                       f"expected ({len(edges)}, {len(RNN_OPS)}).")
    return CellGenotype("rnn", n_nodes, dict(zip(edges, active_ops(codes))), tuple(range(1, n_nodes)))


class RNNSupernet(nn.Module):
    """EGS search over the recurrent cell: logits ``alpha`` (E = 36, K = 5), sparse sampled cells.

    ``p = lam * softmax(alpha) + (1 - lam) * l`` (Eq. 5). Decision: the paper gives no resource
    cost for activations, so for the recurrent space lam = 1 by default and the efficiency credit l
    is uniform (1/5) unless ``credit`` ((E, 5) or (5,), rows summing to 1) is given. One code per
    edge is sampled per step (one batched sampler call) and shared by all time steps of the batch.
    Dropout defaults are DARTS's search settings (rnn/train_search.py: dropoute 0).
    """

    def __init__(self, ntoken: int, ninp: int, nhid: int, M: int = 4, lam: float = 1.0,
                 tau: float = 1.0, credit: torch.Tensor | None = None, n_nodes: int = N_NODES, *,
                 dropout: float = 0.75, dropouth: float = 0.25, dropoutx: float = 0.75,
                 dropouti: float = 0.2, dropoute: float = 0.0, batch_norm: bool = True) -> None:
        super().__init__()
        self.M, self.tau, self.lam = check_M(M), check_tau(tau), check_lam(lam, "lambda")
        self.net = RNNModel(ntoken, ninp, nhid, None, dropout=dropout, dropouth=dropouth, dropoutx=dropoutx,
                            dropouti=dropouti, dropoute=dropoute, batch_norm=batch_norm, n_nodes=n_nodes)
        self.n_nodes = self.net.cell.n_nodes
        E, K = len(rnn_edges(self.n_nodes)), len(RNN_OPS)
        self.alpha = nn.Parameter(1e-3 * torch.randn(E, K))
        self.register_buffer("credit", self._credit(credit, E, K))

    @staticmethod
    def _credit(credit: object, E: int, K: int) -> torch.Tensor:
        if credit is None:
            return torch.full((E, K), 1.0 / K)
        if not isinstance(credit, torch.Tensor) or tuple(credit.shape) not in ((E, K), (K,)):
            shape = tuple(credit.shape) if isinstance(credit, torch.Tensor) else type(credit).__name__
            raise EGSError(f"credit must be a tensor of shape ({E}, {K}) or ({K},), got {shape}.")
        c = credit.detach().float().expand(E, K).clone()
        sums_to_one = bool(((c.sum(-1) - 1).abs() < 1e-5).all())
        if not bool(torch.isfinite(c).all()) or bool((c < 0).any()) or not sums_to_one:
            raise EGSError("credit rows must be finite, non-negative and sum to 1 (a distribution over RNN_OPS).")
        return c

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alpha]

    def weight_parameters(self) -> list[nn.Parameter]:
        return list(self.net.parameters())

    def init_hidden(self, batch_size: int) -> torch.Tensor:
        return self.net.init_hidden(batch_size)

    def probabilities(self) -> torch.Tensor:
        """p = lam * softmax(alpha) + (1 - lam) * l, (E, 5) (Eq. 3-5)."""
        return self.lam * torch.softmax(self.alpha, -1) + (1 - self.lam) * self.credit

    def log_probabilities(self) -> torch.Tensor:
        return torch.log_softmax(self.alpha, -1) if self.lam == 1.0 else self.probabilities().log()

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Straight-through EGS codes (E, 5): one batched sampler call (Definition 1)."""
        return ensemble_gumbel_softmax(self.log_probabilities(), self.M, self.tau, hard=True, generator=generator)

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor, codes: torch.Tensor | None = None,
                generator: torch.Generator | None = None,
                return_logits: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Sparse forward pass (only the active activations run); codes sampled if None."""
        codes = self.sample(generator) if codes is None else codes
        if not isinstance(codes, torch.Tensor) or tuple(codes.shape) != tuple(self.alpha.shape):
            shape = tuple(codes.shape) if isinstance(codes, torch.Tensor) else type(codes).__name__
            raise EGSError(f"codes must have shape {tuple(self.alpha.shape)} (one code per edge), got {shape}.")
        return self.net(inputs, hidden, weights=codes, active=active_ops(codes), return_logits=return_logits)

    @torch.no_grad()
    def most_probable_codes(self) -> torch.Tensor:
        """The most probable code (E, 5) of every edge under p (exact, from the code distribution)."""
        return most_probable_code(self.probabilities(), self.M)

    @torch.no_grad()
    def derive(self, method: str = "most_probable", generator: torch.Generator | None = None) -> Genotype:
        """The recurrent genotype read from p: each edge's most probable code (exact), or a sample."""
        return Genotype(codes_to_cell(derivation_codes(self, method, generator), self.n_nodes))
