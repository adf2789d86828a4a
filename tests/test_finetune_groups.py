"""Layer groups: the default cuts, splitters, and the rule that every parameter is in
exactly one group."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minift import nn
from minift.finetune import LayerGroup, layer_groups, resolve_groups
from minift.models import SmallCNN
from test_finetune_strategies import layer_stacks


def ids(params) -> list[int]:
    return [id(p) for p in params]


@settings(max_examples=40)
@given(layer_stacks())
def test_sequential_default_is_one_group_per_child_with_parameters_in_order(drawn):
    model, _ = drawn
    groups = layer_groups(model)
    children = list(model.children())
    with_params = [c for c in children if list(c.parameters())]
    assert len(groups) == len(with_params)
    assert all(any(m is child for m in g.modules) for g, child in zip(groups, with_params))
    # groups in order hold the model's parameters in order, each once
    assert ids(p for g in groups for p in g.parameters()) == ids(model.parameters())
    # every child is in some group, and a parameterless child sits with the child before it
    flat = [m for g in groups for m in g.modules]
    assert ids(flat) == ids(children)
    for group in groups[1:]:
        assert list(group.modules[0].parameters())


def test_parameterless_children_join_the_group_before_them():
    relu1, lin1, relu2, lin2, tanh = nn.ReLU(), nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1), nn.Tanh()
    groups = layer_groups(nn.Sequential(relu1, lin1, relu2, lin2, tanh))
    assert [g.modules for g in groups] == [[relu1, lin1, relu2], [lin2, tanh]]
    assert [g.name for g in groups] == ["1", "3"]


def test_a_models_own_layer_groups_method_is_used():
    model = SmallCNN(width=4)
    groups = layer_groups(model)
    assert [g.name for g in groups] == ["body.block1", "body.block2", "body.block3", "head"]
    assert [g.modules for g in groups] == [[model.body.block1], [model.body.block2], [model.body.block3], [model.head]]


class TwoTowers(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(3, 4)
        self.act = nn.ReLU()
        self.decoder = nn.Linear(4, 2)

    def forward(self, x):
        return self.decoder(self.act(self.encoder(x)))


def test_other_modules_get_one_group_per_top_level_child_with_parameters():
    model = TwoTowers()
    groups = layer_groups(model)
    assert [(g.name, g.modules) for g in groups] == [("encoder", [model.encoder]), ("decoder", [model.decoder])]


def test_a_splitter_function_and_named_groups():
    model = SmallCNN(width=4)
    groups = layer_groups(model, lambda m: [[m.body.block1, m.body.block2], m.body.block3,
                                            LayerGroup("classifier", [m.head])])
    assert [g.name for g in groups] == ["body.block1+body.block2", "body.block3", "classifier"]
    assert ids(p for g in groups for p in g.parameters()) == ids(model.parameters())


def test_prefixes_match_whole_name_components():
    model = nn.Sequential(*[nn.Linear(2, 2) for _ in range(11)])
    groups = layer_groups(model, ["1", "10", *[str(i) for i in (0, *range(2, 10))]])
    assert ids(groups[0].parameters()) == ids(model[1].parameters())
    assert ids(groups[1].parameters()) == ids(model[10].parameters())


def test_prefixes_may_name_single_parameters():
    model = SmallCNN(width=4)
    groups = layer_groups(model, ["body.", "head.weight", "head.bias"])
    assert [g.name for g in groups] == ["body", "head.weight", "head.bias"]
    assert groups[1].parameters() == [model.head.weight]


def test_shared_modules_and_parameters_are_listed_once():
    shared = nn.Linear(2, 2)
    group = LayerGroup("g", [shared, nn.Sequential(shared, nn.ReLU())])
    assert ids(group.parameters()) == ids(shared.parameters())
    assert group.numel() == 6


@pytest.mark.parametrize("splitter, message", [
    (lambda m: [[m.body], [m.body.block3, m.head]], "in both group"),
    (lambda m: [[m.body.block1], [m.head]], "body.block2.conv.weight is in no group"),
    (lambda m: [[m.body], [], [m.head]], "holds no parameters"),
    (lambda m: [[m.body], [nn.Linear(2, 2)], [m.head]], "not in the model"),
    (["body.block1", "body.block2", "body.block3", "head", "neck"], r"\['neck'\] match no parameter"),
    (["body", "body.block1", "head"], "in both group"),
    ([], "empty list of prefixes"),
])
def test_bad_splitters_are_clear_errors(splitter, message):
    with pytest.raises(ValueError, match=message):
        layer_groups(SmallCNN(width=4), splitter)


@pytest.mark.parametrize("splitter", ["body", 3, lambda m: m.head, lambda m: [[m.head, "body"]]])
def test_splitters_of_the_wrong_type_are_type_errors(splitter):
    with pytest.raises(TypeError):
        layer_groups(SmallCNN(width=4), splitter)


def test_tied_weights_across_children_must_be_split_by_hand():
    encoder, decoder = nn.Linear(3, 3), nn.Linear(3, 3)
    decoder.weight = encoder.weight
    with pytest.raises(ValueError, match="0.weight is in both group '0' and group '1'"):
        layer_groups(nn.Sequential(encoder, decoder))
    groups = layer_groups(nn.Sequential(encoder, decoder), lambda m: [[m[0]], LayerGroup("1", [], [m[1].bias])])
    assert len(groups) == 2


def test_a_model_without_parameters_has_no_groups():
    with pytest.raises(ValueError, match="no parameters"):
        layer_groups(nn.Sequential(nn.ReLU()))


def test_resolve_groups_rechecks_precomputed_groups_and_accepts_splitters():
    model = SmallCNN(width=4)
    groups = layer_groups(model)
    assert resolve_groups(model, groups) == groups
    assert [g.name for g in resolve_groups(model, ["body", "head"])] == ["body", "head"]
    model.head = nn.Linear(model.num_features, 2)
    with pytest.raises(ValueError, match="head.weight is in no group"):
        resolve_groups(model, groups)
