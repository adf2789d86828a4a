"""The GPU backend: host-side launch arithmetic (always) and the CUDA kernels (with a GPU).

The first half tests ``minift.kernels.cupy.launch``, plain Python, on any machine: that the
GEMM's threads cover every output exactly once, that grids respect CUDA's limits, and that
shapes, strides and bad arguments are handled as the reference handles them.

The second half runs every kernel of ``minift.kernels.cupy.backend`` against the NumPy
reference ``minift.reference`` on hypothesis-drawn shapes, strides, padding and dilation;
it is skipped, with the reason, unless ``minift.backend`` reports the cupy backend usable.
"""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

from minift import backend
from minift.kernels.cupy import launch
from minift.contract.geometry import pool2d_geometry

CUPY_OK, CUPY_REASON = backend.available_backends()["cupy"]
if CUPY_OK:
    import cupy

    from minift import reference
    from minift.kernels.cupy import backend as cupy_gpu

needs_gpu = pytest.mark.skipif(not CUPY_OK, reason=f"cupy backend unavailable: {CUPY_REASON}")


# ----------------------------------------------------------------------------------------
# GEMM tiling and launch geometry
# ----------------------------------------------------------------------------------------

def test_gemm_slab_loads_cover_each_slab_exactly_once():
    tiling = launch.GEMM_TILING
    tid = np.arange(tiling.threads)
    a_count = np.zeros((tiling.block_m, tiling.block_k), int)
    np.add.at(a_count, tiling.a_slab_loads(tid), 1)
    b_count = np.zeros((tiling.block_k, tiling.block_n), int)
    np.add.at(b_count, tiling.b_slab_loads(tid), 1)
    assert (a_count == 1).all() and (b_count == 1).all()


def test_gemm_thread_runs_are_aligned_for_vector_loads():
    """Each run of a thread's rows (columns) starts at a multiple of 4: one float4 in shared memory."""
    tiling = launch.GEMM_TILING
    rows, cols = tiling.thread_outputs(np.arange(tiling.threads))
    assert (rows[:, ::tiling.run, 0] % tiling.run == 0).all()
    assert (cols[:, 0, ::tiling.run] % tiling.run == 0).all()
    assert (np.diff(rows[:, :tiling.run, 0], axis=1) == 1).all()


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 700), n=st.integers(1, 700))
def test_gemm_launch_covers_every_output_once(m, n):
    tiling = launch.GEMM_TILING
    (grid_x, grid_y, _), (threads, _, _) = launch.gemm_launch(m, n, batch=1)
    assert threads == tiling.threads
    tile_rows, tile_cols = tiling.thread_outputs(np.arange(threads))
    block_y, block_x = np.meshgrid(np.arange(grid_y), np.arange(grid_x), indexing="ij")
    rows = block_y.reshape(-1, 1, 1, 1) * tiling.block_m + tile_rows
    cols = block_x.reshape(-1, 1, 1, 1) * tiling.block_n + tile_cols
    inside = (rows < m) & (cols < n)  # the kernel skips stores outside C
    count = np.zeros((m, n), int)
    np.add.at(count, (rows[inside], cols[inside]), 1)
    assert (count == 1).all()


@settings(max_examples=30, deadline=None)
@given(batch=st.integers(1, 200_000))
def test_gemm_batch_loop_visits_every_batch_entry_once(batch):
    """grid.z is capped at 65535; each block then walks z = blockIdx.z, + gridDim.z, ..."""
    (_, _, grid_z), _ = launch.gemm_launch(4, 4, batch)
    assert 1 <= grid_z <= launch.MAX_GRID_YZ
    visited = np.concatenate([np.arange(z, batch, grid_z) for z in range(grid_z)])
    assert np.array_equal(np.sort(visited), np.arange(batch))


def test_gemm_launch_refuses_more_row_tiles_than_cuda_allows():
    too_many_rows = (launch.MAX_GRID_YZ + 1) * launch.GEMM_TILING.block_m
    with pytest.raises(ValueError, match="grid"):
        launch.gemm_launch(too_many_rows, 4, 1)


@given(total=st.integers(0, 10**12))
def test_elementwise_launch_has_no_idle_block_and_respects_limits(total):
    (blocks, _, _), (threads, _, _) = launch.elementwise_launch(total)
    assert blocks <= launch.MAX_ELEMENTWISE_BLOCKS
    assert (blocks == 0) == (total == 0)
    assert (blocks - 1) * threads < total or total == 0  # the last block has work


@given(total=st.integers(0, 3000), threads=st.sampled_from([32, 256]))
def test_grid_stride_loop_visits_every_element_once(total, threads):
    (blocks, _, _), _ = launch.elementwise_launch(total, threads)
    grid_threads = blocks * threads
    visited = np.concatenate([np.arange(t, total, grid_threads) for t in range(grid_threads)] + [np.arange(0)])
    assert np.array_equal(np.sort(visited), np.arange(total))


# ----------------------------------------------------------------------------------------
# Index limits and im2col chunks (the output sizes: test_reference_geometry.py)
# ----------------------------------------------------------------------------------------

def test_shapes_beyond_the_kernels_32_bit_indices_are_refused():
    launch.check_int32_planes("conv2d_forward", x=(2**15, 2**16 - 1, 3, 3), weight=(4, 3, 3, 3))
    too_large = r"conv2d_forward: x \(1, 3, 65536, 32768\) is too large .* H\*W must be below 2\*\*31"
    with pytest.raises(ValueError, match=too_large):
        launch.check_int32_planes("conv2d_forward", x=(1, 3, 2**16, 2**15), weight=(4, 3, 3, 3))
    with pytest.raises(ValueError, match=r"weight \(65536, 32768, 1, 1\) .* N\*C"):
        launch.check_int32_planes("conv2d_forward", x=(1, 3, 8, 8), weight=(2**16, 2**15, 1, 1))


@given(samples=st.integers(0, 500), bytes_per_sample=st.integers(0, 10**6), budget=st.integers(1, 10**7))
def test_sample_chunks_cover_the_batch_in_order_within_the_budget(samples, bytes_per_sample, budget):
    chunks = launch.sample_chunks(samples, bytes_per_sample, budget)
    covered = [i for start, stop in chunks for i in range(start, stop)]
    assert covered == list(range(samples))
    assert all(stop - start == 1 or (stop - start) * bytes_per_sample <= budget for start, stop in chunks)


# ----------------------------------------------------------------------------------------
# dtypes, strides, matmul batching
# ----------------------------------------------------------------------------------------

def test_common_float_dtype_names_what_disagrees():
    assert launch.common_float_dtype("op", x=np.float32, bias=None) == np.float32
    with pytest.raises(TypeError, match="x is float32, weight is float64"):
        launch.common_float_dtype("op", x=np.float32, weight=np.float64)
    with pytest.raises(TypeError, match="float16"):
        launch.common_float_dtype("op", x=np.float16)


def test_element_strides_divide_byte_strides_by_the_item_size():
    array = np.zeros((3, 4, 5), np.float32)[:, ::2, ::-1]
    assert launch.element_strides(array.strides, array.itemsize) == (20, 10, -1)
    with pytest.raises(ValueError, match="multiples"):
        launch.element_strides((6, 4), 4)


@given(shapes=mutually_broadcastable_shapes(signature="(m,k),(k,n)->(m,n)", max_dims=5, max_side=4))
def test_matmul_geometry_agrees_with_numpy(shapes):
    a_shape, b_shape = shapes.input_shapes
    batch_shape, m, k, n = launch.matmul_geometry(a_shape, b_shape)
    assert (*batch_shape, m, n) == np.matmul(np.zeros(a_shape), np.zeros(b_shape)).shape
    assert k == a_shape[-1]


@pytest.mark.parametrize(
    "a_shape, b_shape, words",
    [((2, 3), (4, 5), "inner sizes must match"), ((2, 3, 4), (3, 4, 5), "do not broadcast"),
     ((3,), (3, 4), "at least 2-D")],
)
def test_matmul_geometry_rejects_mismatched_shapes(a_shape, b_shape, words):
    with pytest.raises(ValueError, match=words):
        launch.matmul_geometry(a_shape, b_shape)


def _batch_offsets(batch_shape, strides):
    """Offset of every batch entry, in C order: sum over dims of index * stride."""
    index = np.indices(batch_shape).reshape(len(batch_shape), math.prod(batch_shape))
    return (index * np.array(strides, dtype=np.int64).reshape(-1, 1)).sum(axis=0)


@given(data=st.data(), batch_shape=st.lists(st.integers(1, 4), max_size=4))
def test_flat_batch_stride_exists_exactly_when_the_offsets_are_evenly_spaced(data, batch_shape):
    strides = data.draw(st.lists(st.sampled_from([0, 1, 2, 3, 6, 12, 24, -4]), min_size=len(batch_shape),
                                 max_size=len(batch_shape)))
    offsets = _batch_offsets(batch_shape, strides)
    stride = launch.flat_batch_stride(batch_shape, strides)
    step = offsets[1] if offsets.size > 1 else 0
    evenly_spaced = np.array_equal(offsets, step * np.arange(offsets.size))
    assert (stride is not None) == evenly_spaced
    if stride is not None:
        assert np.array_equal(offsets, stride * np.arange(offsets.size))


@given(shapes=mutually_broadcastable_shapes(num_shapes=2, max_dims=4, max_side=3))
def test_broadcast_batch_strides_address_the_same_elements_as_numpy(shapes):
    (operand_shape, _), batch_shape = shapes.input_shapes, shapes.result_shape
    operand = np.zeros((*operand_shape, 2, 3), np.float64)
    strides = launch.element_strides(operand.strides, operand.itemsize)[:-2]
    ours = launch.broadcast_batch_strides(batch_shape, operand_shape, strides)
    view = np.broadcast_to(operand, (*batch_shape, 2, 3))
    numpys = launch.element_strides(view.strides, view.itemsize)[:-2]
    assert np.array_equal(_batch_offsets(batch_shape, ours), _batch_offsets(batch_shape, numpys))


# ----------------------------------------------------------------------------------------
# The kernels on a GPU, against the NumPy reference
# ----------------------------------------------------------------------------------------

LAYOUTS = ("contiguous", "transposed", "strided")


def _to_device(array, layout):
    """A CuPy array equal to ``array``, laid out C-contiguous, as a transposed view, or strided."""
    if layout == "transposed":
        return cupy.asarray(np.ascontiguousarray(np.swapaxes(array, -1, -2))).swapaxes(-1, -2)
    if layout == "strided":
        wide = np.zeros((*array.shape[:-1], 2 * array.shape[-1]), array.dtype)
        wide[..., ::2] = array
        return cupy.asarray(wide)[..., ::2]
    return cupy.asarray(array)


def _assert_matches(got, want, dtype):
    """``got`` (CuPy) is a new C-contiguous array of ``dtype`` equal to ``want`` up to rounding."""
    assert isinstance(got, cupy.ndarray) and got.flags.c_contiguous
    assert got.dtype == dtype and got.shape == want.shape
    tolerance = 2e-5 if dtype == np.float32 else 1e-12
    scale = 1 + np.abs(want).max(initial=0)
    np.testing.assert_allclose(cupy.asnumpy(got), want, rtol=tolerance, atol=tolerance * scale)


def _assert_unchanged(device_arrays, host_copies):
    for device, host in zip(device_arrays, host_copies):
        np.testing.assert_array_equal(cupy.asnumpy(device), host)


dtypes = st.sampled_from([np.float32, np.float64])
# sizes around the 128-wide GEMM tile as well as small and odd ones
gemm_sizes = st.one_of(st.integers(1, 200), st.sampled_from([127, 128, 129, 255, 257]))
pairs = st.tuples(st.integers(1, 4), st.integers(1, 4))  # kernel sizes and dilations


@needs_gpu
@settings(max_examples=40, deadline=None)
@given(batch=mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3), m=gemm_sizes,
       k=gemm_sizes, n=gemm_sizes, dtype=dtypes, layouts=st.tuples(st.sampled_from(LAYOUTS), st.sampled_from(LAYOUTS)),
       seed=st.integers(0, 2**32 - 1))
def test_matmul_matches_reference(batch, m, k, n, dtype, layouts, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((*batch.input_shapes[0], m, k)).astype(dtype)
    b = rng.standard_normal((*batch.input_shapes[1], k, n)).astype(dtype)
    a_dev, b_dev = _to_device(a, layouts[0]), _to_device(b, layouts[1])
    got = cupy_gpu.matmul(a_dev, b_dev)
    _assert_matches(got, reference.matmul(a.astype(np.float64), b.astype(np.float64)), dtype)
    _assert_unchanged((a_dev, b_dev), (a, b))


@needs_gpu
@pytest.mark.parametrize(
    "a_shape, b_shape", [((3, 0), (0, 4)), ((0, 5), (5, 4)), ((2, 0, 3, 5), (5, 2)), ((7, 1), (1, 1))]
)
def test_matmul_handles_empty_and_degenerate_sizes(a_shape, b_shape):
    a = np.arange(math.prod(a_shape), dtype=np.float32).reshape(a_shape)
    b = np.ones(b_shape, np.float32)
    _assert_matches(cupy_gpu.matmul(cupy.asarray(a), cupy.asarray(b)), reference.matmul(a, b), np.float32)


@needs_gpu
def test_matmul_batch_larger_than_grid_z():
    """More batch entries than grid.z's 65535: the kernel's z loop takes the rest."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((70_000, 2, 3)).astype(np.float32)
    b = rng.standard_normal((3, 2)).astype(np.float32)
    _assert_matches(cupy_gpu.matmul(cupy.asarray(a), cupy.asarray(b)), reference.matmul(a, b), np.float32)


@st.composite
def conv_cases(draw):
    """(x, weight, bias, stride, padding, dilation) as NumPy arrays and pairs, with output >= 1x1."""
    dtype = draw(dtypes)
    n, c, o = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 5))
    kernel, stride, dilation = draw(pairs), draw(st.tuples(st.integers(1, 3), st.integers(1, 3))), draw(pairs)
    padding = draw(st.tuples(st.integers(0, 3), st.integers(0, 3)))
    h, w = (
        draw(st.integers(max(1, d * (k - 1) + 1 - 2 * p), 14))
        for k, d, p in zip(kernel, dilation, padding)
    )
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((o, c, *kernel)).astype(dtype)
    bias = rng.standard_normal(o).astype(dtype) if draw(st.booleans()) else None
    return x, weight, bias, stride, padding, dilation


@needs_gpu
@settings(max_examples=40, deadline=None)
@given(case=conv_cases(), layout=st.sampled_from(LAYOUTS))
def test_conv2d_forward_matches_reference(case, layout):
    x, weight, bias, *geometry = case
    x_dev, weight_dev = _to_device(x, layout), cupy.asarray(weight)
    bias_dev = None if bias is None else cupy.asarray(bias)
    got = cupy_gpu.conv2d_forward(x_dev, weight_dev, bias_dev, *geometry)
    up = (lambda array: None if array is None else array.astype(np.float64))
    _assert_matches(got, reference.conv2d_forward(up(x), up(weight), up(bias), *geometry), x.dtype)
    _assert_unchanged((x_dev, weight_dev), (x, weight))


@needs_gpu
@settings(max_examples=40, deadline=None)
@given(case=conv_cases(), layout=st.sampled_from(LAYOUTS), seed=st.integers(0, 2**32 - 1))
def test_conv2d_backward_input_matches_reference(case, layout, seed):
    x, weight, _, *geometry = case
    y_shape = reference.conv2d_forward(x, weight, None, *geometry).shape
    grad_y = np.random.default_rng(seed).standard_normal(y_shape).astype(x.dtype)
    grad_y_dev, weight_dev = _to_device(grad_y, layout), _to_device(weight, layout)
    got = cupy_gpu.conv2d_backward_input(grad_y_dev, weight_dev, x.shape, *geometry)
    want = reference.conv2d_backward_input(grad_y.astype(np.float64), weight.astype(np.float64), x.shape, *geometry)
    _assert_matches(got, want, x.dtype)
    _assert_unchanged((grad_y_dev, weight_dev), (grad_y, weight))


@needs_gpu
@settings(max_examples=40, deadline=None)
@given(case=conv_cases(), layout=st.sampled_from(LAYOUTS), seed=st.integers(0, 2**32 - 1))
def test_conv2d_backward_weight_matches_reference(case, layout, seed):
    x, weight, _, *geometry = case
    y_shape = reference.conv2d_forward(x, weight, None, *geometry).shape
    grad_y = np.random.default_rng(seed).standard_normal(y_shape).astype(x.dtype)
    grad_y_dev, x_dev = _to_device(grad_y, layout), _to_device(x, layout)
    got = cupy_gpu.conv2d_backward_weight(grad_y_dev, x_dev, weight.shape, *geometry)
    want = reference.conv2d_backward_weight(grad_y.astype(np.float64), x.astype(np.float64), weight.shape, *geometry)
    _assert_matches(got, want, x.dtype)
    _assert_unchanged((grad_y_dev, x_dev), (grad_y, x))


@needs_gpu
def test_conv2d_in_chunks_of_one_sample_gives_the_same_results(monkeypatch):
    """A workspace budget too small for two samples' im2col: every chunk is one sample."""
    monkeypatch.setattr(launch, "IM2COL_WORKSPACE_BYTES", 1)
    rng = np.random.default_rng(1)
    x, weight = rng.standard_normal((4, 3, 9, 7)), rng.standard_normal((5, 3, 3, 2))
    geometry = ((2, 1), (1, 1), (1, 2))
    grad_y = rng.standard_normal(reference.conv2d_forward(x, weight, None, *geometry).shape)
    x_dev, weight_dev, grad_y_dev = cupy.asarray(x), cupy.asarray(weight), cupy.asarray(grad_y)
    _assert_matches(cupy_gpu.conv2d_forward(x_dev, weight_dev, None, *geometry),
                    reference.conv2d_forward(x, weight, None, *geometry), np.float64)
    _assert_matches(cupy_gpu.conv2d_backward_input(grad_y_dev, weight_dev, x.shape, *geometry),
                    reference.conv2d_backward_input(grad_y, weight, x.shape, *geometry), np.float64)
    _assert_matches(cupy_gpu.conv2d_backward_weight(grad_y_dev, x_dev, weight.shape, *geometry),
                    reference.conv2d_backward_weight(grad_y, x, weight.shape, *geometry), np.float64)


@st.composite
def pool_cases(draw, with_dilation):
    """(x, kernel_size, stride, padding, dilation) whose windows all touch the input.

    Values come from a few integers so that windows have tied maxima, and sometimes NaN.
    """
    dtype = draw(dtypes)
    kernel = draw(pairs)
    stride = draw(st.tuples(st.integers(1, 3), st.integers(1, 3)))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    dilation = draw(pairs) if with_dilation else (1, 1)
    h, w = (draw(st.integers(max(1, d * (k - 1) + 1 - 2 * p), 14)) for k, d, p in zip(kernel, dilation, padding))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), h, w)
    try:
        pool2d_geometry("pool", shape, kernel, stride, padding, dilation)
    except ValueError:
        assume(False)  # a window wholly in the padding: refused (test_reference_geometry.py)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(-3, 4, shape).astype(dtype)
    if draw(st.booleans()):
        x[rng.random(shape) < 0.05] = np.nan
    return x, kernel, stride, padding, dilation


@needs_gpu
@settings(max_examples=40, deadline=None)
@given(case=pool_cases(with_dilation=True), layout=st.sampled_from(LAYOUTS))
def test_max_pool2d_forward_matches_reference_exactly(case, layout):
    x, *geometry = case
    x_dev = _to_device(x, layout)
    y, indices = cupy_gpu.max_pool2d_forward(x_dev, *geometry)
    want_y, want_indices = reference.max_pool2d_forward(x, *geometry)
    assert y.dtype == x.dtype and indices.dtype == np.int64
    np.testing.assert_array_equal(cupy.asnumpy(y), want_y)  # NaN == NaN here
    np.testing.assert_array_equal(cupy.asnumpy(indices), want_indices)
    _assert_unchanged((x_dev,), (x,))


@needs_gpu
@settings(max_examples=40, deadline=None)
@given(case=pool_cases(with_dilation=True), seed=st.integers(0, 2**32 - 1))
def test_max_pool2d_backward_matches_reference(case, seed):
    x, *geometry = case
    _, indices = reference.max_pool2d_forward(x, *geometry)
    grad_y = np.random.default_rng(seed).standard_normal(indices.shape).astype(x.dtype)
    grad_y_dev, indices_dev = cupy.asarray(grad_y), cupy.asarray(indices)
    got = cupy_gpu.max_pool2d_backward(grad_y_dev, indices_dev, x.shape)
    _assert_matches(got, reference.max_pool2d_backward(grad_y.astype(np.float64), indices, x.shape), x.dtype)
    _assert_unchanged((grad_y_dev, indices_dev), (grad_y, indices))


@needs_gpu
def test_max_pool2d_backward_refuses_indices_outside_the_plane():
    grad_y = cupy.ones((1, 1, 2, 2), cupy.float32)
    indices = cupy.asarray(np.array([0, 1, 2, 16]).reshape(1, 1, 2, 2))
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        cupy_gpu.max_pool2d_backward(grad_y, indices, (1, 1, 4, 4))


@needs_gpu
@settings(max_examples=40, deadline=None)
@given(case=pool_cases(with_dilation=False), layout=st.sampled_from(LAYOUTS))
def test_avg_pool2d_forward_matches_reference(case, layout):
    x, kernel, stride, padding, _ = case
    x = np.nan_to_num(x)
    x_dev = _to_device(x, layout)
    got = cupy_gpu.avg_pool2d_forward(x_dev, kernel, stride, padding)
    _assert_matches(got, reference.avg_pool2d_forward(x.astype(np.float64), kernel, stride, padding), x.dtype)
    _assert_unchanged((x_dev,), (x,))


@needs_gpu
@settings(max_examples=40, deadline=None)
@given(case=pool_cases(with_dilation=False), seed=st.integers(0, 2**32 - 1))
def test_avg_pool2d_backward_matches_reference(case, seed):
    x, kernel, stride, padding, _ = case
    y_shape = reference.avg_pool2d_forward(np.nan_to_num(x), kernel, stride, padding).shape
    grad_y = np.random.default_rng(seed).standard_normal(y_shape).astype(x.dtype)
    got = cupy_gpu.avg_pool2d_backward(cupy.asarray(grad_y), x.shape, kernel, stride, padding)
    want = reference.avg_pool2d_backward(grad_y.astype(np.float64), x.shape, kernel, stride, padding)
    _assert_matches(got, want, x.dtype)


@needs_gpu
def test_backend_runs_cupy_arrays_on_the_gpu_kernels():
    rng = np.random.default_rng(2)
    x, weight = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3))
    got = backend.conv2d_forward(cupy.asarray(x), cupy.asarray(weight), None, (1, 1), (1, 1), (1, 1))
    _assert_matches(got, reference.conv2d_forward(x, weight, None, (1, 1), (1, 1), (1, 1)), np.float64)


@needs_gpu
def test_kernels_refuse_host_arrays_and_mixed_dtypes():
    with pytest.raises(TypeError, match="cupy.asarray"):
        cupy_gpu.matmul(np.ones((2, 2), np.float32), cupy.ones((2, 2), cupy.float32))
    with pytest.raises(TypeError, match="one dtype"):
        cupy_gpu.matmul(cupy.ones((2, 2), cupy.float32), cupy.ones((2, 2), cupy.float64))
