"""Recurrent cell, language model and EGS search supernet (Chang et al., 2019, Sec. 4; DARTS's PTB space).

**Node counting.** The paper's recurrent cell has n = 12 nodes: the inputs x_t and h_{t-1}, node 0,
8 intermediate nodes 1..8 and the output h_t. As in DARTS (quark0/darts, rnn/model.py) and
:mod:`egs.arch.genotype` (space "rnn", ``n_nodes = 9`` numbers nodes 0..8), node 0 is not searched:

    (c0, h0) = split([x_t, h_{t-1}] W0),   s_0 = h_{t-1} + sigmoid(c0) * (tanh(h0) - h_{t-1}).

Every node j = 1..8 has one matrix W_j (nhid -> 2 nhid) shared by all its incoming edges; edge
(i -> j) with activation f computes the highway term ``s_i + sigmoid(c) * (f(h) - s_i)``,
(c, h) = split(s_i W_j). Every edge i < j (E = 1 + 2 + ... + 8 = 36) carries a code over
``RNN_OPS``; only active (edge, activation) pairs are computed ("none" adds nothing), each term is
multiplied by its straight-through code value, an edge averages its active terms, and node j
averages its active incoming edges (see the decision below). h_t = mean of the ``concat`` nodes (1..8).

Decision (averaging, in search and evaluation): Eq. 1-2 sum the terms of an edge and the edges into a
node, and the conv evaluation cells do (:mod:`egs.conv.network`). In the recurrent cell each highway term has the
scale of its source state, so a sum over several terms grows from node to node and again through time:
a random cell of the node rule (M = 4, 24-26 activations) whose evaluation cell summed gave NaN
losses within its first 50 steps at the ``cpu`` training setting (3 of 3 random cells, measured:
``studies/rnn_sum.py``, record ``studies/results/rnn_sum_cpu.jsonl``, non-finite at step 1-2), and
a random dense cell's search supernet NaN on its first step; averaged, the same cells train normally
(validation perplexity 589 after one epoch against DARTS_V2's 608). Recurrent cells therefore average
both in search and in evaluation (``EVAL_AVERAGE``; ``RNNModel(..., average=False)`` sums). A DARTS
cell (one edge per node) is the same either way, so DARTS equivalence and parameter counts hold.

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

from egs.core.checks import check_int, check_rate
from egs.core.errors import EGSError
from egs.arch.genotype import Genotype
from egs.rnn.ops import activation
from egs.arch.space import ZERO, Edge, SearchSpace, get_space

N_NODES = 9          # node 0 + 8 intermediate nodes (the paper's n = 12 adds x_t, h_{t-1}, h_t)
_DROPOUT_FIX = "DARTS PTB: dropout 0.75, dropouth 0.25, dropoutx 0.75, dropouti 0.2, dropoute 0.1"
INITRANGE = 0.04     # DARTS's uniform initialisation range for W0, W_j and the embedding
EVAL_AVERAGE = True  # evaluation cells average too: summing is unstable (module docstring, "Decision")
Plan = list[tuple[list[int], list[tuple[str, torch.Tensor | None, torch.Tensor | None]]]]


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
                 dropouth: float = 0.25, dropoutx: float = 0.75, space: SearchSpace | str = "rnn",
                 average: bool = True) -> None:
        super().__init__()
        self.ninp, self.nhid = check_int(ninp, "ninp"), check_int(nhid, "nhid")
        self.n_nodes = check_int(n_nodes, "n_nodes", 2)
        self.dropouth = check_rate(dropouth, "dropouth", _DROPOUT_FIX)
        self.dropoutx = check_rate(dropoutx, "dropoutx", _DROPOUT_FIX)
        self.concat, self.average = tuple(concat), average
        self.space = get_space(space)
        self.index = {name: k for k, name in enumerate(self.space.ops)}
        self.activations = {name: activation(self.space, name) for name in self.space.ops if name != ZERO}
        self.edges = self.space.edges(n_nodes)
        self.edge_ops = [tuple(op for op in self.space.ops if op != ZERO and op in edge_ops.get(e, ()))
                         for e in self.edges]
        fed = sorted({j for (_, j), ops in zip(self.edges, self.edge_ops) if ops})
        self.W0 = _uniform(ninp + nhid, 2 * nhid)
        self.Ws = nn.ParameterDict({str(j): _uniform(nhid, 2 * nhid) for j in fed})
        self.bn = nn.BatchNorm1d(nhid, affine=False) if batch_norm else None

    def plan(self, weights: torch.Tensor | None, active: Sequence[Sequence[str]] | None) -> Plan:
        """Per node j = 1.., its present sources and, per activation, (name, source rows, scales).

        Scales are the code value, divided (``average``) by the number of active ops of the edge and
        of active edges into the node (None: all ones). Built once per forward pass: the code is the
        same at every time step.
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
                    inv.append(1.0 / len(names) if self.average else 1.0)
                if names:
                    sources.append(i)
                e += 1
            for _, _, inv in groups.values() if self.average else ():  # a node averages its incoming edges
                inv[:] = [v / len(sources) for v in inv]
            node = []
            for name in sorted(groups, key=self.index.__getitem__):
                rows, es, inv = groups[name]
                idx = None if rows == list(range(len(sources))) else torch.tensor(rows, device=dev)
                scale = None
                if weights is not None:
                    scale = weights[torch.tensor(es, device=dev), self.index[name]] * torch.tensor(inv, device=dev)
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
                term = s_i + c_i * (self.activations[name](h_i) - s_i)
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

    Args:
        ntoken: vocabulary size; ninp, nhid: embedding and hidden sizes (equal: the decoder is tied).
        genotype: a recurrent genotype (its evaluation cell, DARTS's parameters), or None for the search
            cell (every op of ``space`` on every edge of an ``n_nodes``-node cell, batch norm on).
        dropout, dropouth, dropoutx, dropouti, dropoute: DARTS's dropouts (defaults: its PTB evaluation).
        batch_norm: batch-normalise the nodes (None: in search only).
        average: average the terms of an edge and the edges into a node (None: always, see the module
            docstring); False sums them as Eq. 1-2 write.
    """

    def __init__(self, ntoken: int, ninp: int, nhid: int, genotype: Genotype | None = None, *,
                 dropout: float = 0.75, dropouth: float = 0.25, dropoutx: float = 0.75,
                 dropouti: float = 0.2, dropoute: float = 0.1, batch_norm: bool | None = None,
                 n_nodes: int | None = None, space: SearchSpace | str = "rnn", average: bool | None = None) -> None:
        super().__init__()
        self.ntoken, self.ninp, self.nhid = (check_int(v, name) for v, name in ((ntoken, "ntoken"), (ninp, "ninp"),
                                                                                (nhid, "nhid")))
        if ninp != nhid:
            raise EGSError(f"ninp={ninp} != nhid={nhid}: the decoder is tied to the embedding, so the "
                           "embedding and hidden sizes must be equal (DARTS PTB: 850, WT2: 700).")
        self.dropout, self.dropouti, self.dropoute = (check_rate(v, name, _DROPOUT_FIX) for v, name in (
            (dropout, "dropout"), (dropouti, "dropouti"), (dropoute, "dropoute")))
        if genotype is None:
            space = get_space(space)
            n_nodes = check_int(space.n_nodes if n_nodes is None else n_nodes, "n_nodes", 2)
            edge_ops: Mapping[Edge, Sequence[str]] = {e: space.ops for e in space.edges(n_nodes)}
            concat: Sequence[int] = space.concat(n_nodes)
        elif isinstance(genotype, Genotype) and get_space(genotype.space).family == "rnn":
            space = get_space(genotype.space)
            n_nodes, edge_ops, concat = genotype.normal.n_nodes, genotype.normal.edges, genotype.normal.concat
        else:
            what = genotype.space if isinstance(genotype, Genotype) else type(genotype).__name__
            raise EGSError(f"a recurrent model needs an rnn genotype, got {what!r}; pass e.g. "
                           "egs.arch.published.DARTS_V2_RNN, or None for the search cell.")
        self.search = genotype is None
        bn = self.search if batch_norm is None else bool(batch_norm)
        average = (EVAL_AVERAGE or self.search) if average is None else average
        self.encoder = nn.Embedding(ntoken, ninp)
        self.cell = RNNCell(ninp, nhid, edge_ops, concat, n_nodes, bn, dropouth, dropoutx, space, average)
        self.decoder = nn.Linear(nhid, ntoken)
        self.decoder.weight = self.encoder.weight
        nn.init.uniform_(self.encoder.weight, -INITRANGE, INITRANGE)
        nn.init.zeros_(self.decoder.bias)

    def init_hidden(self, batch_size: int) -> torch.Tensor:
        """Zero initial hidden state (1, batch_size, nhid)."""
        return self.cell.W0.new_zeros(1, check_int(batch_size, "batch_size"), self.nhid)

    def _check(self, inputs: torch.Tensor, hidden: torch.Tensor, check_tokens: bool) -> None:
        if not isinstance(inputs, torch.Tensor) or inputs.dim() != 2 or inputs.dtype != torch.long:
            what = (f"{tuple(inputs.shape)} {inputs.dtype}" if isinstance(inputs, torch.Tensor)
                    else type(inputs).__name__)
            raise EGSError(f"inputs must be a (T, B) tensor of token ids (torch.long), got {what}.")
        if check_tokens and inputs.numel() and inputs.device.type != "meta":  # reading the range: a host sync
            lo, hi = (int(v) for v in inputs.aminmax())
            if lo < 0 or hi >= self.ntoken:
                raise EGSError(f"token ids span [{lo}, {hi}], outside the vocabulary 0..{self.ntoken - 1}.")
        want = (1, inputs.shape[1], self.nhid)
        if not isinstance(hidden, torch.Tensor) or tuple(hidden.shape) != want:
            got = tuple(hidden.shape) if isinstance(hidden, torch.Tensor) else type(hidden).__name__
            raise EGSError(f"hidden must have shape {want} (use model.init_hidden({inputs.shape[1]})), got {got}.")

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor, weights: torch.Tensor | None = None,
                active: Sequence[Sequence[str]] | None = None, return_logits: bool = False,
                check_tokens: bool = True, return_h: bool = False) -> tuple[torch.Tensor, ...]:
        """Log-probabilities (or logits) (T, B, ntoken) of the next token, and the new hidden (1, B, nhid).

        Args:
            inputs: token ids (T, B), time first.
            hidden: the previous hidden state (1, B, nhid) (zeros to start: :meth:`init_hidden`).
            weights, active: the cell's code values (E, K) and the ops to run per edge (search; None: a fixed
                cell, every op it holds, unweighted), as :meth:`RNNCell.forward`.
            return_logits: return logits instead of log-softmax.
            check_tokens: refuse token ids outside the vocabulary (a host sync; the training loops, whose
                streams come from the corpus's own vocabulary, turn it off).
            return_h: also return the cell's raw outputs h_t (T, B, nhid), before the output dropout (DARTS's
                ``return_h`` ``raw_outputs``, what its TAR regularises: :func:`egs.rnn.lm.lm_loss`).
        """
        self._check(inputs, hidden, check_tokens)
        emb = embedded_dropout(self.encoder.weight, inputs, self.dropoute, self.training)
        emb = locked_dropout(emb, self.dropouti, self.training)
        outputs, hidden = self.cell(emb, hidden, weights, active)
        logits = self.decoder(locked_dropout(outputs, self.dropout, self.training))
        out = logits if return_logits else F.log_softmax(logits, -1)
        return (out, hidden, outputs) if return_h else (out, hidden)


PAPER_EVAL = {"ptb": 850, "wikitext2": 700}  # embedding = hidden size of the paper-size models (Sec. 4.2)


def paper_params(genotype: Genotype, corpus: str = "ptb", ntoken: int = 10_000) -> int:
    """Parameters of the paper-size language model of a recurrent ``genotype`` for ``corpus`` (embedding = hidden
    = 850 on PTB, 700 on WikiText-2) with ``ntoken`` words (PTB's 10,000 by default), built on ``meta``."""
    emb = PAPER_EVAL[corpus]
    with torch.device("meta"):
        return sum(p.numel() for p in RNNModel(ntoken, emb, emb, genotype).parameters())

