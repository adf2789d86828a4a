"""minift.viz.draw_graph: the DOT text names every op, shape and dtype, its edges follow the
graph, leaves and frozen parameters are marked; Graphviz renders it when installed."""

from __future__ import annotations

import re
import shutil
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minift
from minift import nn
from minift.viz import draw_graph

NODE = re.compile(r'^\s*(t\d+) \[label="((?:[^"\\]|\\.)*)"(.*)\];$', re.MULTILINE)
EDGE = re.compile(r"^\s*(t\d+) -> (t\d+);$", re.MULTILINE)


def parse(source: str):
    """{node id: (label lines, attributes)} and the list of (from, to) edges of a DOT text."""
    nodes = {name: (label.split("\\n"), attrs) for name, label, attrs in NODE.findall(source)}
    return nodes, EDGE.findall(source)


def first_line_edges(source: str) -> list:
    """The edges as (first label line of the source box, first label line of the target box)."""
    nodes, edges = parse(source)
    return sorted((nodes[a][0][0], nodes[b][0][0]) for a, b in edges)


def small_computation():
    x = minift.randn(4, 3, requires_grad=True)
    w = minift.randn(3, 2, requires_grad=True)
    b = minift.zeros(2, requires_grad=True)
    loss = (x @ w + b).relu().sum()
    return loss, {"x": x, "w": w, "b": b}


def test_every_op_of_a_known_computation_is_named_with_its_shape_and_dtype():
    loss, names = small_computation()
    nodes, _ = parse(draw_graph(loss, names=names).source)
    by_title = {lines[0]: lines for lines, _ in nodes.values()}
    assert set(by_title) == {"Sum", "ReLU", "Add", "MatMul", "x", "w", "b"}
    assert by_title["MatMul"][1] == "(4, 2) float32" and by_title["Sum"][1] == "() float32"
    assert by_title["w"] == ["w", "leaf, requires grad", "(3, 2) float32"]


def test_edges_run_from_each_input_to_the_op_that_used_it():
    loss, names = small_computation()
    assert first_line_edges(draw_graph(loss, names=names).source) == sorted([
        ("x", "MatMul"), ("w", "MatMul"), ("MatMul", "Add"), ("b", "Add"), ("Add", "ReLU"), ("ReLU", "Sum"),
    ])


def test_the_output_is_drawn_twice_framed():
    loss, names = small_computation()
    nodes, _ = parse(draw_graph(loss, names=names).source)
    framed = [lines[0] for lines, attrs in nodes.values() if "peripheries=2" in attrs]
    assert framed == ["Sum"]


def test_frozen_parameters_and_leaves_without_grad_are_marked():
    layer = nn.Linear(3, 2)
    layer.weight.requires_grad = False                    # a frozen layer's weight
    x = minift.randn(5, 3)                                # data: a leaf that needs no grad
    out = layer(x).sum()
    nodes, _ = parse(draw_graph(out, names={"input": x, **dict(layer.named_parameters())}).source)
    marks = {lines[0]: lines[1] for lines, _ in nodes.values() if len(lines) == 3}
    assert marks == {"input": "leaf, no grad", "weight": "frozen parameter", "bias": "parameter"}
    frozen_attrs = [attrs for lines, attrs in nodes.values() if lines[0] == "weight"]
    assert "dashed" in frozen_attrs[0]


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple),
       dtype=st.sampled_from(["float32", "float64"]))
def test_each_use_of_a_tensor_is_one_edge_and_boxes_state_shape_and_dtype(shape, dtype):
    x = minift.tensor(np.ones(shape), dtype=dtype, requires_grad=True)
    y = (x * x + x).sum()                                 # x is used three times
    nodes, edges = parse(draw_graph(y, names={"x": x}).source)
    x_id = next(name for name, (lines, _) in nodes.items() if lines[0] == "x")
    assert sum(1 for a, _ in edges if a == x_id) == 3
    assert nodes[x_id][0][2] == f"{shape} {dtype}"
    assert len(nodes) == 4 and len(edges) == 5             # x, Mul, Add, Sum


def test_a_freed_graph_and_wrong_inputs_are_clear_errors():
    loss, _ = small_computation()
    with pytest.raises(TypeError, match="needs a minift Tensor, got ndarray"):
        draw_graph(np.ones(3))
    with pytest.raises(TypeError, match="'x' maps to list"):
        draw_graph(loss, names={"x": [1.0]})
    loss.backward()
    with pytest.raises(RuntimeError, match="freed by backward"):
        draw_graph(loss)


def test_dot_text_is_saved_without_graphviz(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)    # as if the package were not installed
    loss, names = small_computation()
    drawing = draw_graph(loss, names=names)
    assert drawing.save(tmp_path / "graph.dot").read_text(encoding="utf-8") == drawing.source == repr(drawing)
    assert drawing._repr_svg_() is None                   # a notebook then shows the DOT text
    with pytest.raises(ImportError, match="pip install graphviz"):
        drawing.save(tmp_path / "graph.svg")
    with pytest.raises(ValueError, match="a suffix"):
        drawing.save(tmp_path / "graph")
    assert not (tmp_path / "graph.svg").exists()


def test_names_with_quotes_and_backslashes_stay_inside_their_label():
    x = minift.randn(2, requires_grad=True)
    nodes, _ = parse(draw_graph((x * x).sum(), names={'say "hi" \\o/': x}).source)
    assert len(nodes) == 3
    assert ['say \\"hi\\" \\\\o/', "leaf, requires grad", "(2,) float32"] in [lines for lines, _ in nodes.values()]


@pytest.fixture
def graphviz_installed():
    pytest.importorskip("graphviz", reason="the graphviz Python package is not installed (pip install graphviz)")
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's `dot` program is not installed (apt-get install graphviz)")


def test_graphviz_renders_svg_and_png(graphviz_installed, tmp_path):
    loss, names = small_computation()
    drawing = draw_graph(loss, names=names)
    svg = drawing.pipe("svg").decode("utf-8")
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    for text in ("MatMul", "ReLU", "leaf, requires grad", "(4, 3) float32"):
        assert text in svg
    assert drawing._repr_svg_() == svg
    png = drawing.save(tmp_path / "graph.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
