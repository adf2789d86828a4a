"""Draw the autograd graph behind a tensor: what micrograd's ``draw_dot`` shows, for minift.

``draw_graph(loss)`` walks the graph that ``loss`` remembers (each op's output holds its
``grad_fn``: the ``Function`` that made it and that op's input tensors) and writes it in
Graphviz's DOT language. One box per tensor, one arrow per use of a tensor as an op's
input, data flowing left to right::

    x = minift.randn(4, 3, requires_grad=True)
    w = minift.randn(3, 2, requires_grad=True)
    loss = (x @ w).relu().sum()
    drawing = draw_graph(loss, names={"x": x, "w": w})
    print(drawing.source)           # DOT text: always, no dependency
    drawing.save("graph.svg")       # needs the graphviz package and its `dot` program

Each box names what made the tensor (the op, e.g. ``MatMul``, or ``leaf`` for a tensor
the user made), its shape and its dtype. Leaves say whether they require grad; an
``nn.Parameter`` says ``parameter``, and ``frozen parameter`` when its ``requires_grad``
is off (a frozen layer: it gets no gradient). A tensor computed only from tensors that do
not require grad is a leaf too: no graph was recorded for it, exactly as in PyTorch.

In a notebook a drawing shows itself as SVG when Graphviz is installed, as DOT text when
it is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .engine.tensor import Tensor
from .nn.module import Parameter

INSTALL_HINT = ("pip install graphviz (the Python package) and the Graphviz programs "
                "(e.g. apt-get install graphviz)")

_STYLES = {  # kind of box -> DOT attributes
    "op": 'shape=box, style="rounded"',
    "leaf, requires grad": 'shape=box, style="filled", fillcolor="#cfe2ff"',
    "leaf, no grad": 'shape=box, style="filled", fillcolor="#eeeeee"',
    "parameter": 'shape=box, style="filled", fillcolor="#cfe2ff", penwidth=2',
    "frozen parameter": 'shape=box, style="filled,dashed", fillcolor="#dddddd", penwidth=2',
}


@dataclass(frozen=True)
class GraphDrawing:
    """The drawing of one graph: ``source`` is its DOT text."""

    source: str

    def pipe(self, format: str = "svg") -> bytes:
        """The graph rendered by Graphviz's ``dot`` as ``format`` bytes ("svg", "png", ...)."""
        try:
            import graphviz
        except ImportError as missing:
            raise ImportError(f"rendering a drawing needs Graphviz: {INSTALL_HINT}") from missing
        try:
            return graphviz.Source(self.source).pipe(format=format)
        except graphviz.ExecutableNotFound as missing:
            raise RuntimeError(f"rendering a drawing needs Graphviz's `dot` program: {INSTALL_HINT}") from missing

    def save(self, path) -> Path:
        """Write the drawing to ``path``: DOT text for ``.dot`` / ``.gv``, else rendered by
        Graphviz in the format the suffix names (``.svg``, ``.png``, ``.pdf``)."""
        path = Path(path)
        suffix = path.suffix.lower().lstrip(".")
        if not suffix:
            raise ValueError(f"save needs a file name with a suffix (.dot, .svg, .png, ...), got {str(path)!r}")
        if suffix in ("dot", "gv"):
            path.write_text(self.source, encoding="utf-8")
        else:
            path.write_bytes(self.pipe(format=suffix))
        return path

    def _repr_svg_(self):
        """Jupyter's rich display: SVG when Graphviz can render, else None (the text repr shows)."""
        try:
            return self.pipe("svg").decode("utf-8")
        except (ImportError, RuntimeError):
            return None

    def __str__(self) -> str:
        return self.source

    def __repr__(self) -> str:
        return self.source


def draw_graph(tensor: Tensor, names=None) -> GraphDrawing:
    """The autograd graph that ends at ``tensor``, as a ``GraphDrawing`` (DOT text in ``.source``).

    ``names``: optional labels for tensors, a mapping ``{name: tensor}`` or pairs
    ``(name, tensor)``, e.g. ``dict(model.named_parameters())``.

    Boxes appear in the order a depth-first walk from ``tensor`` first meets them, so the
    same computation always gives the same text. Raises ``TypeError`` for a non-Tensor and
    ``RuntimeError`` for a graph that ``backward()`` has already freed.
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"draw_graph needs a minift Tensor, got {type(tensor).__name__}")
    labels = _names_by_id(names)
    order = _reachable(tensor)
    ids = {id(t): f"t{i}" for i, t in enumerate(order)}
    lines = ["digraph autograd {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=10];']
    for t in order:
        kind = _kind(t)
        title = kind if kind != "op" else t.grad_fn.name()
        label = "\\n".join(_escape(part) for part in (labels.get(id(t)), title, _shape_and_dtype(t)) if part)
        extra = ", peripheries=2" if t is tensor else ""
        lines.append(f'  {ids[id(t)]} [label="{label}", {_STYLES[kind]}{extra}];')
    for t in order:
        if t.grad_fn is not None:
            for parent in t.grad_fn.inputs:
                lines.append(f"  {ids[id(parent)]} -> {ids[id(t)]};")
    lines.append("}")
    return GraphDrawing("\n".join(lines) + "\n")


def _reachable(root: Tensor) -> list:
    """Every tensor ``root`` was computed from (itself first), depth-first, each once."""
    order, seen, stack = [], set(), [root]
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        if t.grad_fn is not None and t.grad_fn.ctx is None:  # backward() emptied the node
            raise RuntimeError(
                "this graph was freed by backward(): draw it before calling backward(), "
                "or call backward(retain_graph=True)"
            )
        seen.add(id(t))
        order.append(t)
        if t.grad_fn is not None:
            stack.extend(reversed(t.grad_fn.inputs))
    return order


def _kind(t: Tensor) -> str:
    if t.grad_fn is not None:
        return "op"
    if isinstance(t, Parameter):
        return "parameter" if t.requires_grad else "frozen parameter"
    return "leaf, requires grad" if t.requires_grad else "leaf, no grad"


def _shape_and_dtype(t: Tensor) -> str:
    return f"{tuple(t.shape)} {t.dtype}"


def _names_by_id(names) -> dict:
    if names is None:
        return {}
    pairs = names.items() if hasattr(names, "items") else names
    by_id = {}
    for name, t in pairs:
        if not isinstance(t, Tensor):
            raise TypeError(f"names must map names to Tensors; {name!r} maps to {type(t).__name__}")
        by_id[id(t)] = str(name)
    return by_id


def _escape(text: str) -> str:
    """``text`` as the inside of a DOT string: backslashes and quotes escaped."""
    return text.replace("\\", "\\\\").replace('"', '\\"')

