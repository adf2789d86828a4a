"""``nn.Module``: registration, traversal, modes, state_dict / load_state_dict, repr, to(), hooks.

The traversal properties run on random trees of layers and containers, against plain
recursive definitions written here; ``load_state_dict`` is attacked with random subsets of
keys dropped, renamed, reshaped and added, and must either load or change nothing.
"""

import keyword

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minift
from minift import nn

# ---------------------------------------------------------------- random models

SIZES = st.integers(1, 4)
LEAVES = st.one_of(
    st.builds(nn.Linear, SIZES, SIZES, bias=st.booleans()),
    st.builds(nn.BatchNorm1d, SIZES, affine=st.booleans()),
    st.builds(nn.LayerNorm, SIZES),
    st.builds(nn.Embedding, SIZES, SIZES),
    st.builds(nn.ReLU),
    st.builds(nn.Dropout, st.floats(0, 1)),
)
NAMES = st.sampled_from(["body", "head", "encoder", "pool", "block_1"])


def _containers(children):
    return st.one_of(
        st.lists(children, min_size=1, max_size=3).map(lambda modules: nn.Sequential(*modules)),
        st.lists(children, max_size=3).map(nn.ModuleList),
        st.dictionaries(NAMES, children, max_size=3).map(nn.ModuleDict),
    )


MODELS = st.recursive(LEAVES, _containers, max_leaves=8)
MODELS_WITH_STATE = MODELS.filter(lambda model: len(model.state_dict()) > 0)


def walk(module, prefix=""):
    """``(qualified_name, module)``, parents before children, by plain recursion."""
    yield prefix, module
    for name, child in module.named_children():
        yield from walk(child, f"{prefix}.{name}" if prefix else name)


def qualified(prefix, name):
    return f"{prefix}.{name}" if prefix else name


def snapshot(model):
    """Every parameter and buffer as (dtype, shape, bytes): equal snapshots mean byte-identical models."""
    return {key: (value.dtype, value.shape, value.tobytes()) for key, value in model.state_dict().items()}


class Scaled(nn.Module):
    """A module that uses every kind of attribute."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(np.full(2, 3.0, dtype=np.float32))
        self.inner = nn.Linear(3, 2)
        self.register_buffer("calls", minift.tensor(0, dtype="int64"))
        self.constant = minift.ones(2)  # a plain Tensor attribute: neither parameter nor buffer
        self.note = "not registered"

    def forward(self, x):
        self.calls.data += 1
        return self.inner(x) * self.scale


# ---------------------------------------------------------------- registration

def test_assignment_registers_parameters_buffers_and_submodules():
    module = Scaled()
    assert [name for name, _ in module.named_parameters(recurse=False)] == ["scale"]
    assert [name for name, _ in module.named_parameters()] == ["scale", "inner.weight", "inner.bias"]
    assert [name for name, _ in module.named_buffers()] == ["calls"]
    assert list(module.named_children()) == [("inner", module.inner)]
    assert list(module.state_dict()) == ["scale", "calls", "inner.weight", "inner.bias"]  # own state first
    assert module.note == "not registered" and module.constant.shape == (2,)


def test_reassignment_moves_a_name_between_registries_and_delattr_unregisters():
    module = Scaled()
    module.inner = nn.Parameter(np.zeros(1, dtype=np.float32))  # a submodule name becomes a parameter
    assert "inner" not in dict(module.named_children())
    assert [name for name, _ in module.named_parameters()] == ["scale", "inner"]
    module.scale = None  # a parameter may be set to None: it stays declared but is skipped
    assert [name for name, _ in module.named_parameters()] == ["inner"]
    assert module.scale is None
    del module.inner
    assert list(module.parameters()) == []
    with pytest.raises(AttributeError):
        module.inner


def test_assigning_the_wrong_kind_to_a_registered_name_is_refused_and_changes_nothing():
    module = Scaled()
    scale, inner = module.scale, module.inner
    with pytest.raises(TypeError, match="scale"):
        module.scale = minift.ones(2)  # a Tensor is not a Parameter
    with pytest.raises(TypeError, match="inner"):
        module.inner = "a string"
    with pytest.raises(TypeError, match="calls"):
        module.calls = 3
    assert module.scale is scale and module.inner is inner and module.calls.item() == 0


@pytest.mark.parametrize("call", [
    lambda m: m.register_parameter("w", minift.ones(2)),
    lambda m: m.register_buffer("b", np.zeros(2)),
    lambda m: m.add_module("child", "not a module"),
])
def test_register_methods_check_the_kind_of_value(call):
    module = nn.Module()
    with pytest.raises(TypeError):
        call(module)
    assert module.state_dict() == {} and list(module.children()) == []


def test_assignment_before_module_init_is_an_error():
    class Forgetful(nn.Module):
        def __init__(self):
            self.weight = nn.Parameter(np.ones(2))

    with pytest.raises(AttributeError, match="__init__"):
        Forgetful()


@given(model=MODELS, name=st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True))
def test_an_unknown_attribute_raises_attribute_error_never_none(model, name):
    known = set(dir(model)) | set(dict(model.named_children())) | {n for n, _ in model.named_parameters(recurse=False)}
    if name in known or keyword.iskeyword(name):
        return
    with pytest.raises(AttributeError, match=name):
        getattr(model, name)
    assert not hasattr(model, name)


def test_parameter_is_a_tensor_that_requires_grad_by_default():
    weight = nn.Parameter(np.ones((2, 3), dtype=np.float32))
    assert isinstance(weight, minift.Tensor) and weight.requires_grad and weight.is_leaf
    assert not nn.Parameter(np.ones(2), requires_grad=False).requires_grad
    assert repr(weight).startswith("Parameter containing:")


# ---------------------------------------------------------------- traversal

@given(MODELS)
def test_named_modules_visit_parents_before_children_with_qualified_names(model):
    assert [(name, id(m)) for name, m in model.named_modules()] == [(name, id(m)) for name, m in walk(model)]
    assert [id(m) for m in model.modules()] == [id(m) for _, m in walk(model)]


@given(MODELS)
def test_parameters_and_buffers_are_each_module_s_own_in_walk_order(model):
    params = [(qualified(prefix, name), p) for prefix, m in walk(model) for name, p in m.named_parameters(recurse=False)]
    buffers = [(qualified(prefix, name), b) for prefix, m in walk(model) for name, b in m.named_buffers(recurse=False)]
    assert [(n, id(p)) for n, p in model.named_parameters()] == [(n, id(p)) for n, p in params]
    assert [id(p) for p in model.parameters()] == [id(p) for _, p in params]
    assert [(n, id(b)) for n, b in model.named_buffers()] == [(n, id(b)) for n, b in buffers]
    assert [id(b) for b in model.buffers()] == [id(b) for _, b in buffers]
    assert model.num_parameters() == sum(p.numel() for _, p in params)


@given(st.lists(LEAVES, min_size=1, max_size=4))
def test_children_are_the_direct_submodules_in_order(layers):
    model = nn.Sequential(*layers, nn.Sequential(*layers[:1]))
    assert [id(m) for m in model.children()] == [id(m) for m in layers] + [id(model[-1])]
    assert [name for name, _ in model.named_children()] == [str(i) for i in range(len(layers) + 1)]


def test_a_shared_module_and_a_tied_weight_are_listed_once_but_saved_under_every_name():
    shared = nn.Linear(3, 3)
    embedding, head = nn.Embedding(5, 3), nn.Linear(3, 5, bias=False)
    head.weight = embedding.weight  # weight tying, as in language models
    model = nn.Sequential(embedding, shared, nn.ReLU(), shared, head)
    assert [name for name, _ in model.named_modules()] == ["", "0", "1", "2", "4"]
    assert [name for name, _ in model.named_parameters()] == ["0.weight", "1.weight", "1.bias"]
    assert model.num_parameters() == 5 * 3 + 3 * 3 + 3
    # PyTorch's state_dict names every path: a checkpoint from torch loads, strict.
    assert list(model.state_dict()) == ["0.weight", "1.weight", "1.bias", "3.weight", "3.bias", "4.weight"]
    model.load_state_dict(model.state_dict())


# ---------------------------------------------------------------- modes and gradients

@given(MODELS, st.integers(0, 20))
def test_train_and_eval_recurse_into_every_module(model, which):
    modules = list(model.modules())
    assert model.eval() is model and not any(m.training for m in modules)
    assert model.train() is model and all(m.training for m in modules)
    child = modules[which % len(modules)]
    child.train(False)  # a subtree's mode is its own business: the parents keep theirs
    below = {id(m) for m in child.modules()}
    assert all(m.training == (id(m) not in below) for m in modules)


def test_requires_grad_freezes_and_unfreezes_every_parameter():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    assert model[0].requires_grad_(False) is model[0]
    x = minift.randn(5, 3)
    model(x).sum().backward()
    assert model[0].weight.grad is None and model[0].bias.grad is None
    assert all(p.grad is not None for p in model[1:].parameters())
    model.requires_grad_()
    assert all(p.requires_grad for p in model.parameters())


def test_zero_grad_sets_to_none_or_to_zeros():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    model(minift.randn(5, 3)).sum().backward()
    model.zero_grad(set_to_none=False)
    for p in model.parameters():
        assert p.grad.shape == p.shape and not p.grad.data.any()
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


@given(MODELS)
def test_apply_visits_every_module_once_children_before_parents(model):
    def post_order(module):
        for child in module.children():
            yield from post_order(child)
        yield module

    visited = []
    assert model.apply(visited.append) is model
    assert [id(m) for m in visited] == [id(m) for m in post_order(model)]


# ---------------------------------------------------------------- state_dict

def test_state_dict_holds_parameters_and_batchnorm_statistics_as_copies():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    state = model.state_dict()
    assert list(state) == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                           "1.num_batches_tracked"]
    assert all(isinstance(v, np.ndarray) for v in state.values())
    before = snapshot(model)
    for value in state.values():
        value[...] = 7  # writing into the saved copy does not reach the model
    assert snapshot(model) == before
    saved = model.state_dict()
    model(minift.randn(6, 3))  # a training step moves the running statistics
    assert snapshot(model) != before
    assert {k: (v.dtype, v.shape, v.tobytes()) for k, v in saved.items()} == before


@st.composite
def corrupted_checkpoints(draw):
    """A model, and a checkpoint for it with some keys dropped, renamed, reshaped or added.

    Returns the model, the checkpoint, and what a correct loader must report about it.
    """
    model = draw(MODELS_WITH_STATE)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    checkpoint, dropped, renamed, reshaped = {}, [], [], []
    for key, value in model.state_dict().items():
        action = draw(st.sampled_from(["keep", "keep", "drop", "rename", "reshape"]))
        shape = value.shape[:-1] + (value.shape[-1] + 1,) if value.ndim else (1,)
        shape = shape if action == "reshape" else value.shape
        fresh = rng.integers(1, 100, shape) if value.dtype.kind == "i" else rng.standard_normal(shape)
        if action == "drop":
            dropped.append(key)
        elif action == "rename":
            renamed.append(key)
            checkpoint["module." + key] = fresh  # the classic: saved from a DataParallel wrapper
        else:
            checkpoint[key] = fresh
            if action == "reshape":
                reshaped.append(key)
    extras = [f"extra.{i}" for i in range(draw(st.integers(0, 2)))]
    checkpoint.update({key: rng.standard_normal(2) for key in extras})
    # a BatchNorm's count is never missing: PyTorch's loader fills it with the layer's own
    missing = [key for key in model.state_dict()
               if (key in dropped or key in renamed) and not key.endswith("num_batches_tracked")]
    unexpected = [key for key in checkpoint if key not in model.state_dict()]
    return model, checkpoint, missing, unexpected, reshaped


@given(corrupted_checkpoints(), st.booleans())
def test_load_state_dict_loads_everything_or_names_every_bad_key_and_changes_nothing(case, strict):
    model, checkpoint, missing, unexpected, reshaped = case
    before = snapshot(model)
    bad = reshaped + (missing + unexpected if strict else [])
    if bad:
        with pytest.raises(RuntimeError) as error:
            model.load_state_dict(checkpoint, strict=strict)
        for key in bad:
            assert key in str(error.value)
        assert snapshot(model) == before
        return
    result = model.load_state_dict(checkpoint, strict=strict)
    assert (result.missing_keys, result.unexpected_keys) == (missing, unexpected)
    after = model.state_dict()
    for key, (dtype, shape, data) in before.items():
        assert (after[key].dtype, after[key].shape) == (dtype, shape)  # in place: dtype kept
        if key in checkpoint:
            np.testing.assert_array_equal(after[key], checkpoint[key].astype(dtype))
        else:
            assert after[key].tobytes() == data


def test_load_state_dict_writes_in_place_and_accepts_tensors():
    source, target = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)), nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    source(minift.randn(5, 3))
    params = list(target.parameters())
    target.load_state_dict({key: minift.Tensor(value) for key, value in source.state_dict().items()})
    assert [id(p) for p in target.parameters()] == [id(p) for p in params]  # an optimizer still holds them
    assert snapshot(target) == snapshot(source)
    x = minift.randn(4, 3)
    np.testing.assert_array_equal(target.eval()(x).numpy(), source.eval()(x).numpy())


def test_load_state_dict_refuses_a_non_numeric_entry_and_changes_nothing():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    checkpoint = model.state_dict()
    checkpoint = {key: np.full_like(value, 5.0) for key, value in checkpoint.items()}
    checkpoint["1.bias"] = np.array(["a", "b"])
    before = snapshot(model)
    with pytest.raises((TypeError, ValueError, RuntimeError), match="1.bias"):
        model.load_state_dict(checkpoint)
    assert snapshot(model) == before


# ---------------------------------------------------------------- repr, to(), hooks

def test_repr_is_a_tree_with_parameter_counts():
    model = nn.Sequential(nn.Linear(3, 4), nn.Sequential(nn.ReLU(), nn.Linear(4, 2)))
    total, inner = (3 * 4 + 4) + (4 * 2 + 2), 4 * 2 + 2
    assert repr(model) == (
        f"Sequential(  # {total} params\n"
        "  (0): Linear(in_features=3, out_features=4, bias=True)\n"
        f"  (1): Sequential(  # {inner} params\n"
        "    (0): ReLU()\n"
        "    (1): Linear(in_features=4, out_features=2, bias=True)\n"
        "  )\n"
        ")"
    )


@given(MODELS)
def test_repr_shows_every_submodule_at_its_depth(model):
    def expected_heads(module, depth=1):
        for name, child in module.named_children():
            yield "  " * depth + f"({name}): {type(child).__name__}("
            yield from expected_heads(child, depth + 1)

    lines = repr(model).splitlines()
    heads = [line for line in lines if line.lstrip().startswith("(")]
    assert len(heads) == len(list(expected_heads(model)))
    for line, head in zip(heads, expected_heads(model)):
        assert line.startswith(head)
    if len(lines) > 1 and model.num_parameters():
        assert lines[0].endswith(f"# {model.num_parameters():,} params")


def test_to_dtype_casts_floating_state_in_place_and_keeps_integer_buffers():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    model(minift.randn(5, 3)).sum().backward()
    params = list(model.parameters())
    values = model.state_dict()
    assert model.to(minift.float64) is model
    assert [id(p) for p in model.parameters()] == [id(p) for p in params]
    state = model.state_dict()
    assert {k: v.dtype for k, v in state.items()} == {
        k: np.dtype(np.int64 if k.endswith("num_batches_tracked") else np.float64) for k in state}
    for key in state:
        np.testing.assert_array_equal(state[key], values[key])  # float32 -> float64 is exact
    assert all(p.grad is None for p in params)  # a gradient of the old dtype would be wrong
    assert model(minift.randn(5, 3, dtype="float64")).dtype == np.float64
    assert model.float().state_dict()["0.weight"].dtype == np.float32


def test_forward_hooks_see_inputs_and_output_may_replace_it_and_can_be_removed():
    layer = nn.Linear(3, 2)
    calls = []
    handle = layer.register_forward_hook(lambda module, args, output: calls.append((module, args, output)))
    x = minift.randn(4, 3)
    y = layer(x)
    assert len(calls) == 1 and calls[0][0] is layer and calls[0][1][0] is x and calls[0][2] is y
    replace = layer.register_forward_hook(lambda module, args, output: output * 0)
    assert not layer(x).numpy().any()
    replace.remove()
    handle.remove()
    np.testing.assert_array_equal(layer(x).numpy(), y.numpy())
    assert len(calls) == 2


def test_calling_a_module_runs_forward_and_a_module_without_forward_says_so():
    module = Scaled()
    x = minift.randn(2, 3)
    np.testing.assert_allclose(module(x).numpy(), (x.numpy() @ module.inner.weight.numpy().T
                                                   + module.inner.bias.numpy()) * 3.0, rtol=1e-6)
    assert module.calls.item() == 1
    with pytest.raises(NotImplementedError, match="forward"):
        nn.Module()(x)


def test_replacing_a_child_keeps_its_position():
    """PyTorch semantics: assigning to an existing child's name replaces it in place."""
    from minift.nn import Linear, ReLU, Sequential

    model = Sequential(Linear(3, 5), ReLU(), Linear(5, 2))
    model[0] = Linear(3, 5)
    model.__setattr__("1", ReLU())
    assert [name for name, _ in model.named_children()] == ["0", "1", "2"]
    assert [type(m).__name__ for m in model] == ["Linear", "ReLU", "Linear"]
