"""Convolutional cells and networks (Chang et al., 2019, Sec. 3.1, Eq. 1-2; DARTS's macro structure).

One code path serves every conv network of the project:

* the **search supernet** (every op of its space instantiated on every edge; which ones run is
  decided per forward pass by the sampled binary codes), and
* the **fixed network** built from a :class:`~egs.arch.genotype.Genotype` (only the genotype's ops exist):
  the CIFAR evaluation network (:class:`Network`), the ImageNet mobile network
  (:class:`NetworkImageNet`), and the "fixed child" a sampled code describes.

Evaluation networks follow DARTS (quark0/darts, cnn/model.py) layer for layer, so a DARTS genotype
gives DARTS's parameter count: optional auxiliary head on cell ``2 * layers // 3`` (acts only in
training: ``net(x, with_aux=True)`` returns ``(logits, aux_logits or None)``) and drop-path on
non-identity ops in training (``net.drop_prob``, ramped by the training loop).

A cell has two input nodes (outputs of cells k-2 and k-1, each preprocessed to C channels),
``n_nodes - 2`` intermediate nodes and an output that concatenates ``concat`` along channels.
Node j is ``x_j = sum_{i<j} sum_k a_k(i, j) * o_k(x_i)`` (Eq. 1-2) in every **fixed** network: the
ops of a multi-op edge and the edges into a node are summed, as in the paper and the authors'
evaluation network (DATA-NAS ``model_gumbel.py``). **Only ops whose code bit is set are
executed**; in the supernet each output is gated by its code value, exactly 1 in the forward pass of
the straight-through estimator: the output is used as it is and the code receives the gradient of
``output * code``, so the architecture logits learn without a second copy of any activation: the gate
enters the op's final BatchNorm as its weight (:func:`egs.method.gate.gated_op`), so nothing is kept for the
backward pass that the fixed child would not keep.

Decision (search only): the **supernet** divides an edge by its number of active non-zero ops
n(i, j). With M = 7 about four ops are active per edge and a node sums up to 20 of them, which made
our CPU search diverge (training loss rising past 13 within 125 steps, measured). The authors'
search code normalises too (DATA-NAS ``model_search_relu.py`` divides the sampled code by its sum,
"none" counted); evaluation networks do not. An edge with one op, e.g. any DARTS genotype, is the
same either way, and parameter counts never depend on it.

Decision (the paper is silent): a node that receives no active op is the zero tensor, and ops on
edges leaving a zero node are not executed (their input is zero). The output concat still has its
channels (zeros), so a network's shape never depends on the sampled code.
"""
from __future__ import annotations

import abc
from typing import Mapping, Sequence

import torch
import torch.nn as nn

from egs.core.checks import check_int, check_rate
from egs.core.errors import EGSError
from egs.arch.genotype import Genotype
from egs.conv.ops import FactorizedReduce, Identity, ReLUConvBN, build_op
from egs.method.gate import gated_op
from egs.arch.space import ZERO, Edge, SearchSpace, get_space

N_NODES = 6  # two inputs + four intermediate nodes (the paper's n = 7 also counts the output)


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole samples with probability ``drop_prob`` and rescale the rest (DARTS drop-path), in place.

    ``x`` is an op's fresh output, which no backward pass keeps (BatchNorm and pooling keep their inputs;
    autograd would refuse otherwise), so it is scaled in place as DARTS does, without two full-size
    temporaries; ``x / keep * mask`` is ``x * mask / keep`` bit for bit (the mask is 0 or 1; tests/test_cnn.py).
    """
    keep = 1.0 - drop_prob
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x.div_(keep).mul_(mask)


class Cell(nn.Module):
    """One conv cell whose edge ``(i, j)`` holds the ops ``edge_ops[(i, j)]`` ("none" is skipped).

    ``search``: a supernet cell (ops built in search mode; a multi-op edge averages its active ops);
    otherwise a fixed cell, which sums them (Eq. 1-2).
    """

    def __init__(self, edge_ops: Mapping[Edge, Sequence[str]], concat: Sequence[int], C_pp: int,
                 C_p: int, C: int, reduction: bool, reduction_prev: bool, affine: bool,
                 search: bool, n_nodes: int = N_NODES, space: SearchSpace | str = "conv") -> None:
        super().__init__()
        self.reduction, self.n_nodes, self.concat, self.search = reduction, n_nodes, tuple(concat), search
        self.space = get_space(space)
        self.index = {name: k for k, name in enumerate(self.space.ops)}
        self.pre0 = (FactorizedReduce(C_pp, C, affine) if reduction_prev
                     else ReLUConvBN(C_pp, C, 1, 1, 0, affine))
        self.pre1 = ReLUConvBN(C_p, C, 1, 1, 0, affine)
        self.edges = self.space.edges(n_nodes)
        self.ops = nn.ModuleList(
            nn.ModuleDict({name: build_op(self.space, name, C, 2 if reduction and i < 2 else 1, affine, search)
                           for name in edge_ops.get((i, j), ()) if name != ZERO})
            for i, j in self.edges)
        self.C = C

    def _gates(self, weights: torch.Tensor, active: Sequence[Sequence[str]] | None) -> dict[tuple[int, str], torch.Tensor]:
        """The code value of every op that runs, ``(edge, op name) -> 0-d tensor``, picked from ``weights`` (E, K) in
        one indexing op per cell (one autograd node, not two per op): at small sizes the per-op selects and their
        backward passes were most of what an EGS step costs over its fixed child (benchmarks/README.md)."""
        keys = [(e, name) for e, ops in enumerate(self.ops) for name in (ops.keys() if active is None else active[e])]
        if not keys:
            return {}
        rows = torch.tensor([e for e, _ in keys], device=weights.device)
        cols = torch.tensor([self.index[name] for _, name in keys], device=weights.device)
        return dict(zip(keys, weights[rows, cols].unbind(0)))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor | None = None,
                active: Sequence[Sequence[str]] | None = None, drop_prob: float = 0.0,
                hard: bool = False) -> torch.Tensor:
        """Compute the cell.

        Args:
            weights: (E, K) code values multiplying each op's output (None: unweighted, fixed net).
            active: per edge, the names of the ops to execute (None: every op the edge holds).
            drop_prob: drop-path probability for non-identity ops (training only).
            hard: ``weights`` are hard straight-through codes (1 wherever an op runs): an op's output is
                then used as it is and the code only receives its gradient (:func:`egs.method.gate.gated_op`),
                instead of being multiplied in.
        """
        states: list[torch.Tensor | None] = [self.pre0(s0), self.pre1(s1)]
        gates = self._gates(weights, active) if hard and weights is not None else None
        e = 0
        for j in range(2, self.n_nodes):
            node = None
            for i in range(j):
                x, ops = states[i], self.ops[e]
                names = list(ops.keys() if active is None else active[e]) if x is not None else []
                edge = None
                for name in names:
                    op = ops[name]
                    if weights is None:
                        out = op(x)
                    elif hard:
                        out = gated_op(op, x, gates[e, name])
                    else:
                        out = op(x) * weights[e, self.index[name]]
                    if drop_prob > 0 and self.training and not isinstance(op, Identity):
                        out = drop_path(out, drop_prob)
                    edge = out if edge is None else edge + out
                if edge is not None:
                    edge = edge / len(names) if self.search and len(names) > 1 else edge
                    node = edge if node is None else node + edge
                e += 1
            states.append(node)
        ref = states[1]
        N, _, H, W = ref.shape
        if self.reduction:
            H, W = -(-H // 2), -(-W // 2)
        zeros = None
        outs = []
        for c in self.concat:
            if states[c] is None:
                zeros = ref.new_zeros(N, self.C, H, W) if zeros is None else zeros
            outs.append(states[c] if states[c] is not None else zeros)
        return torch.cat(outs, dim=1)


def reduction_layers(layers: int) -> tuple[int, ...]:
    """Indices of the reduction cells: at 1/3 and 2/3 of the depth (DARTS)."""
    return (layers // 3, 2 * layers // 3)


def auxiliary_layer(layers: int) -> int:
    """Index of the cell whose output feeds the auxiliary head: the second reduction cell (DARTS)."""
    return 2 * layers // 3


class AuxiliaryHead(nn.Module):
    """DARTS's auxiliary classifier tower, fed by the output of cell ``2 * layers // 3``.

    ReLU -> AvgPool 5x5 (stride ``pool_stride``, no padding, padding not counted) -> 1x1 conv C->128
    -> BN -> ReLU -> 2x2 conv 128->768 -> [BN] -> ReLU -> Linear 768->classes. The pool must leave a
    2x2 map: CIFAR's 8x8 map with stride 3, ImageNet's 7x7 map with stride 2. DARTS's ImageNet head
    has no BN after the 2x2 conv (``final_bn=False``; quark0/darts cnn/model.py, as in its paper runs).
    """

    def __init__(self, C: int, num_classes: int, pool_stride: int = 3, final_bn: bool = True) -> None:
        super().__init__()
        self.pool_stride = pool_stride
        layers: list[nn.Module] = [
            nn.ReLU(inplace=False),  # its input is also the next cells' input: never modify it in place
            nn.AvgPool2d(5, stride=pool_stride, padding=0, count_include_pad=False),
            nn.Conv2d(C, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False)]
        self.features = nn.Sequential(*layers, *([nn.BatchNorm2d(768)] if final_bn else []),
                                      nn.ReLU(inplace=True))
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[-2:]
        if min(H, W) < 5 or ((H - 5) // self.pool_stride, (W - 5) // self.pool_stride) != (1, 1):
            raise EGSError(f"the auxiliary head got a {H}x{W} feature map but needs one that pools to 2x2 "
                           "(8x8 for CIFAR, 7x7 for ImageNet): feed 32x32 (CIFAR) or 224x224 (ImageNet) "
                           "images, or build the network with auxiliary=False.")
        return self.classifier(self.features(x).flatten(1))


class _CellNetwork(nn.Module, metaclass=abc.ABCMeta):
    """Cells over a stem, global pooling, a linear classifier and an optional auxiliary head.

    ``net(x)`` returns the logits. ``net(x, with_aux=True)`` returns ``(logits, aux_logits)`` where
    ``aux_logits`` is None unless the network has an auxiliary head *and* is in training mode: the
    head never acts in evaluation. Drop-path (``drop_prob``, set by the training loop) likewise
    acts only in training.

    A subclass builds its stem, then calls :meth:`_build_cells` and :meth:`_build_head` (which set
    the attributes declared below), and implements :meth:`stem_states`.
    """

    search: bool                            # set by _build_cells: a supernet (no genotype)
    space: SearchSpace
    cells: nn.ModuleList
    aux_layer: int
    global_pooling: nn.Module               # set by _build_head
    classifier: nn.Linear
    auxiliary_head: AuxiliaryHead | None

    @abc.abstractmethod
    def stem_states(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two inputs (s0, s1) of the first cell, from a batch of images ``x`` (B, 3, H, W)."""

    def _build_cells(self, C: int, layers: int, genotype: Genotype | None, C_pp: int, C_p: int,
                     reduction_prev: bool, affine: bool, n_nodes: int | None,
                     space: SearchSpace | str) -> tuple[int, int]:
        """Create ``self.cells``; return the channels into the auxiliary head and out of the last cell.

        The space is the genotype's (a fixed network) or ``space`` (the supernet); ``n_nodes`` None
        takes the genotype's cell size, else the space's.
        """
        self.search = genotype is None
        self.space = get_space(space if genotype is None else genotype.space)
        if n_nodes is None:
            n_nodes = self.space.n_nodes if genotype is None else genotype.normal.n_nodes
        full = {e: self.space.ops for e in self.space.edges(n_nodes)}
        cells = {kind: (full, self.space.concat(n_nodes)) for kind in ("normal", "reduce")}
        if genotype is not None:
            for kind, cell in genotype.cells().items():
                if cell.n_nodes != n_nodes:
                    raise EGSError(f"the {kind} cell has {cell.n_nodes} nodes, the network expects "
                                   f"{n_nodes}; pass n_nodes={cell.n_nodes}.")
                cells[kind] = (dict(cell.edges), cell.concat)
        self.cells = nn.ModuleList()
        self.aux_layer = auxiliary_layer(layers)
        C_curr, C_aux = C, C_p
        for layer in range(layers):
            reduction = layer in reduction_layers(layers)
            C_curr = C_curr * 2 if reduction else C_curr
            edge_ops, concat = cells["reduce" if reduction else "normal"]
            self.cells.append(Cell(edge_ops, concat, C_pp, C_p, C_curr, reduction, reduction_prev,
                                   affine, self.search, n_nodes, self.space))
            reduction_prev = reduction
            C_pp, C_p = C_p, len(concat) * C_curr
            C_aux = C_p if layer == self.aux_layer else C_aux
        self._drop_prob = 0.0
        return C_aux, C_p

    def _build_head(self, C_aux: int, C_out: int, num_classes: int, auxiliary: bool, aux_pool_stride: int,
                    aux_final_bn: bool) -> None:
        """Global average pooling and the linear classifier over the last cell's ``C_out`` channels and,
        with ``auxiliary``, DARTS's auxiliary head on the ``C_aux`` channels of cell ``aux_layer``."""
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_out, num_classes)
        self.auxiliary_head = AuxiliaryHead(C_aux, num_classes, aux_pool_stride, aux_final_bn) if auxiliary else None

    @property
    def drop_prob(self) -> float:
        """Drop-path probability of non-identity ops in training (DARTS: 0.2 * epoch / epochs)."""
        return self._drop_prob

    @drop_prob.setter
    def drop_prob(self, value: float) -> None:
        self._drop_prob = check_rate(value, "drop_prob", "DARTS ramps it from 0 to 0.2")

    def forward(self, x: torch.Tensor, weights: Mapping[str, torch.Tensor] | None = None,
                active: Mapping[str, Sequence[Sequence[str]]] | None = None, *,
                with_aux: bool = False, hard: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]:
        """Logits for images ``x`` (``(logits, aux_logits)`` with ``with_aux``; see the class doc).

        ``weights``/``active`` give, per cell type ("normal", "reduce"), the code values and the ops
        to run (search supernet); None runs every op the cells hold, unweighted. ``hard``: the weights
        are hard straight-through codes (see :meth:`Cell.forward`).
        """
        head = self.auxiliary_head if with_aux and self.training else None
        aux = None
        s0, s1 = self.stem_states(x)
        for layer, cell in enumerate(self.cells):
            kind = "reduce" if cell.reduction else "normal"
            s0, s1 = s1, cell(s0, s1, None if weights is None else weights[kind],
                              None if active is None else active[kind], self._drop_prob, hard)
            if head is not None and layer == self.aux_layer:
                aux = head(s1)
        logits = self.classifier(self.global_pooling(s1).flatten(1))
        return (logits, aux) if with_aux else logits


class Network(_CellNetwork):
    """The CIFAR network: 3x3 conv stem, ``layers`` cells (channels doubled at each reduction), global
    average pooling, classifier; with ``auxiliary=True`` DARTS's CIFAR auxiliary head.

    ``genotype=None`` builds the search supernet (every op on every edge, BN without affine, BN
    after pooling, as in DARTS's search network); a genotype builds the fixed network of its ops
    (DARTS NetworkCIFAR: same parameter count).

    Args: ``C`` initial channels, ``num_classes``, ``layers`` cells, ``genotype``, ``stem_multiplier``
    (stem channels = multiplier * C), ``affine`` (BatchNorm; None: only in fixed networks), ``n_nodes``
    (None: the genotype's or the space's), ``auxiliary`` (DARTS's head), ``space`` (the supernet's).
    """

    def __init__(self, C: int, num_classes: int, layers: int, genotype: Genotype | None = None,
                 stem_multiplier: int = 3, affine: bool | None = None, n_nodes: int | None = None,
                 auxiliary: bool = False, space: SearchSpace | str = "conv") -> None:
        super().__init__()
        _check_args(C, num_classes, layers, genotype)
        if auxiliary and genotype is None:
            raise EGSError("auxiliary=True needs a genotype: the auxiliary head belongs to evaluation "
                           "networks, not to the search supernet; pass a genotype or auxiliary=False.")
        affine = (genotype is not None) if affine is None else affine
        C_stem = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(3, C_stem, 3, padding=1, bias=False), nn.BatchNorm2d(C_stem))
        C_aux, C_out = self._build_cells(C, layers, genotype, C_stem, C_stem, False, affine, n_nodes, space)
        self._build_head(C_aux, C_out, num_classes, auxiliary, 3, True)

    def stem_states(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The stem's output on images ``x`` (B, 3, H, W), twice: both inputs of the first cell."""
        s = self.stem(x)
        return s, s


class NetworkImageNet(_CellNetwork):
    """DARTS's ImageNet mobile network (224x224 inputs; paper: 14 cells, C = 48, < 600M multiply-adds).

    stem0 = conv 3->C/2 3x3 s2, BN, ReLU, conv C/2->C 3x3 s2, BN (56x56); stem1 = ReLU, conv C->C
    3x3 s2, BN (28x28). The first cell reads stem0 through a FactorizedReduce (as after a reduction);
    reductions at 1/3 and 2/3 of the depth; global average pooling, classifier; ``auxiliary=True``
    adds DARTS's ImageNet auxiliary head on the 7x7 output of cell ``2 * layers // 3``.

    Decision: DARTS pools with AvgPool2d(7), which equals global pooling on the 7x7 map of a 224 px
    image; global pooling also serves the small images of the smoke/cpu profiles (any size >= 32).

    Args: ``C``, ``num_classes``, ``layers``, ``genotype`` (required), ``auxiliary``, ``n_nodes`` as
    :class:`Network`.
    """

    def __init__(self, C: int, num_classes: int, layers: int, genotype: Genotype,
                 auxiliary: bool = False, n_nodes: int | None = None) -> None:
        super().__init__()
        _check_args(C, num_classes, layers, genotype)
        if genotype is None:
            raise EGSError("NetworkImageNet needs a genotype (it is an evaluation network); pass one, "
                           "e.g. egs.arch.published.DARTS_V2.")
        if C % 2:
            raise EGSError(f"C={C} is odd: the ImageNet stem starts with C/2 channels; use an even C "
                           "(the paper uses 48).")
        self.stem0 = nn.Sequential(
            nn.Conv2d(3, C // 2, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(C // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(C // 2, C, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(C))
        self.stem1 = nn.Sequential(  # s0 also feeds the first cell: the ReLU must not work in place
            nn.ReLU(inplace=False), nn.Conv2d(C, C, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(C))
        C_aux, C_out = self._build_cells(C, layers, genotype, C, C, True, True, n_nodes, "conv")
        self._build_head(C_aux, C_out, num_classes, auxiliary, 2, False)  # global pooling: DARTS's AvgPool2d(7)

    def stem_states(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(stem0(x), stem1(stem0(x))) on images ``x`` (B, 3, H, W; 224 px in the paper): the first cell's inputs."""
        s0 = self.stem0(x)
        return s0, self.stem1(s0)


def _check_args(C: object, num_classes: object, layers: object, genotype: Genotype | None) -> None:
    check_int(C, "C")
    check_int(num_classes, "num_classes")
    check_int(layers, "layers", 3, "a conv network needs >= 3 cells (two of them are reduction cells)")
    if genotype is not None and (not isinstance(genotype, Genotype) or get_space(genotype.space).family != "conv"):
        space = genotype.space if isinstance(genotype, Genotype) else type(genotype).__name__
        raise EGSError(f"a conv network needs a conv genotype, got {space!r}; load or derive a conv "
                       "genotype (egs.arch.genotype).")


def count_parameters(module: nn.Module, exclude: Sequence[str] = ()) -> int:
    """Number of parameters of ``module``, leaving out those whose name starts with ``exclude``."""
    return sum(p.numel() for name, p in module.named_parameters()
               if not any(name.startswith(prefix) for prefix in exclude))
