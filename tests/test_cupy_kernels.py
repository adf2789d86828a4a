"""The GPU backend: host-side launch arithmetic (always) and the CUDA kernels (with a GPU).

The first half tests ``minift.kernels.cupy.launch``, plain Python, on any machine: that the
GEMM's threads cover every output exactly once, that grids respect CUDA's limits, and that
shapes, strides and bad arguments are handled as the reference handles them.

The second half runs every contract entry on CuPy arrays (so on the kernels of
``minift.kernels.cupy.backend``) against the NumPy reference on the cases every kernel
test shares (``strategies``: shapes, strides, padding, dilation, memory layouts); it is
skipped, with the reason, unless ``minift.backend`` reports the cupy backend usable.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

from minift import backend, contract
from minift.kernels.cupy import launch
from strategies import KERNEL_DTYPES, LAYOUTS, SEEDS, conv_cases, pool_cases

CUPY_OK, CUPY_REASON = backend.available_backends()["cupy"]
if CUPY_OK:
    import cupy

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


@given(rows=st.integers(0, launch.MAX_GRID_X))
def test_row_launch_gives_each_row_one_block_of_the_sources_width(rows):
    (blocks, _, _), (threads, _, _) = launch.row_launch(rows, "softmax_forward")
    assert blocks == rows
    source = launch.cuda_source("transformer.cu")
    assert f"constexpr int ROW_THREADS = {threads};" in source


def test_row_launch_refuses_more_rows_than_cuda_allows():
    with pytest.raises(ValueError, match="layer_norm_forward: .* at most"):
        launch.row_launch(launch.MAX_GRID_X + 1, "layer_norm_forward")


@given(total=st.integers(0, 3000), threads=st.sampled_from([32, 256]))
def test_grid_stride_loop_visits_every_element_once(total, threads):
    (blocks, _, _), _ = launch.elementwise_launch(total, threads)
    grid_threads = blocks * threads
    visited = np.concatenate([np.arange(t, total, grid_threads) for t in range(grid_threads)] + [np.arange(0)])
    assert np.array_equal(np.sort(visited), np.arange(total))


@given(outputs=st.integers(1, 5000), terms=st.integers(0, 3000))
def test_reduction_launch_gives_each_output_a_block_whose_threads_share_every_term_once(outputs, terms):
    (blocks, _, _), (threads, _, _) = launch.reduction_launch(outputs)
    assert blocks == outputs and threads == launch.REDUCTION_THREADS
    visited = np.concatenate([np.arange(t, terms, threads) for t in range(threads)])  # t, t + T, ... (the kernel's loop)
    assert np.array_equal(np.sort(visited), np.arange(terms))
    halves = []
    active = threads
    while active > 1:  # the shared-memory tree: thread t < half adds t + half
        active //= 2
        halves.append(active)
    assert sum(halves) == threads - 1  # every partial sum but thread 0's is added exactly once


def test_reduction_launch_refuses_more_blocks_than_cuda_allows():
    with pytest.raises(ValueError, match="blocks"):
        launch.reduction_launch(launch.MAX_GRID_X + 1)


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


def test_batch_norm_shapes_beyond_the_kernels_32_bit_counts_are_refused():
    launch.check_int32_channels("batch_norm_forward", (2**15, 3, 2**8, 2**8 - 1))  # N * L just below 2**31
    with pytest.raises(ValueError, match=r"batch_norm_forward: x \(32768, 3, 256, 256\) is too large"):
        launch.check_int32_channels("batch_norm_forward", (2**15, 3, 2**8, 2**8))


@given(samples=st.integers(0, 500), bytes_per_sample=st.integers(0, 10**6), budget=st.integers(1, 10**7))
def test_sample_chunks_cover_the_batch_in_order_within_the_budget(samples, bytes_per_sample, budget):
    chunks = launch.sample_chunks(samples, bytes_per_sample, budget)
    covered = [i for start, stop in chunks for i in range(start, stop)]
    assert covered == list(range(samples))
    assert all(stop - start == 1 or (stop - start) * bytes_per_sample <= budget for start, stop in chunks)


# ----------------------------------------------------------------------------------------
# strides, matmul batching
# ----------------------------------------------------------------------------------------

def test_element_strides_divide_byte_strides_by_the_item_size():
    array = np.zeros((3, 4, 5), np.float32)[:, ::2, ::-1]
    assert launch.element_strides(array.strides, array.itemsize) == (20, 10, -1)
    with pytest.raises(ValueError, match="multiples"):
        launch.element_strides((6, 4), 4)


def test_matrices_beyond_the_gemm_32_bit_sizes_are_refused():
    launch.check_int32_matrix("matmul", 2**31 - 1, 3, 4)
    with pytest.raises(ValueError, match=r"matmul: M, K and N must be below 2\*\*31, got 3, 2147483648, 4"):
        launch.check_int32_matrix("matmul", 3, 2**31, 4)


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

def on_device(array, layout):
    """A CuPy array equal to ``array``, stored in ``layout`` (one of ``strategies.LAYOUTS``)."""
    return None if array is None else layout(cupy.asarray(np.ascontiguousarray(array)), cupy)


def on_reference(entry, *args):
    """Contract entry ``entry`` (a name) on the NumPy reference, every float array in float64."""
    up = (lambda a: a.astype(np.float64) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a)
    with backend.use_backend("numpy"):
        return getattr(contract, entry)(*map(up, args))


def _assert_matches(got, want, dtype):
    """``got`` (CuPy) is a new C-contiguous array of ``dtype`` equal to ``want`` up to rounding."""
    assert isinstance(got, cupy.ndarray) and got.flags.c_contiguous
    assert got.dtype == dtype and got.shape == want.shape
    tolerance = 2e-5 if dtype == np.float32 else 1e-12
    scale = 1 + np.abs(want[np.isfinite(want)]).max(initial=0)
    np.testing.assert_allclose(cupy.asnumpy(got), want, rtol=tolerance, atol=tolerance * scale)


def _assert_unchanged(device_arrays, host_copies):
    for device, host in zip(device_arrays, host_copies):
        np.testing.assert_array_equal(cupy.asnumpy(device), host)


dtypes = st.sampled_from(KERNEL_DTYPES)
layouts = st.sampled_from(LAYOUTS)
# sizes around the 128-wide GEMM tile as well as small and odd ones
gemm_sizes = st.one_of(st.integers(1, 200), st.sampled_from([127, 128, 129, 255, 257]))


@needs_gpu
@settings(max_examples=40, deadline=None)
@given(batch=mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3), m=gemm_sizes,
       k=gemm_sizes, n=gemm_sizes, dtype=dtypes, layout_pair=st.tuples(layouts, layouts), seed=SEEDS)
def test_matmul_matches_reference(batch, m, k, n, dtype, layout_pair, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((*batch.input_shapes[0], m, k)).astype(dtype)
    b = rng.standard_normal((*batch.input_shapes[1], k, n)).astype(dtype)
    a_dev, b_dev = on_device(a, layout_pair[0]), on_device(b, layout_pair[1])
    _assert_matches(contract.matmul(a_dev, b_dev), on_reference("matmul", a, b), dtype)
    _assert_unchanged((a_dev, b_dev), (a, b))


@needs_gpu
@pytest.mark.parametrize(
    "a_shape, b_shape", [((3, 0), (0, 4)), ((0, 5), (5, 4)), ((2, 0, 3, 5), (5, 2)), ((7, 1), (1, 1))]
)
def test_matmul_handles_empty_and_degenerate_sizes(a_shape, b_shape):
    a = np.arange(math.prod(a_shape), dtype=np.float32).reshape(a_shape)
    b = np.ones(b_shape, np.float32)
    _assert_matches(contract.matmul(cupy.asarray(a), cupy.asarray(b)), on_reference("matmul", a, b), np.float32)


@needs_gpu
def test_matmul_batch_larger_than_grid_z():
    """More batch entries than grid.z's 65535: the kernel's z loop takes the rest."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((70_000, 2, 3)).astype(np.float32)
    b = rng.standard_normal((3, 2)).astype(np.float32)
    _assert_matches(contract.matmul(cupy.asarray(a), cupy.asarray(b)), on_reference("matmul", a, b), np.float32)


CONV_CASES = conv_cases(dtypes=KERNEL_DTYPES)


@needs_gpu
@settings(max_examples=40, deadline=None)
@given(case=CONV_CASES, layout=layouts)
def test_conv2d_forward_matches_reference(case, layout):
    x_dev, weight_dev, bias_dev = (on_device(a, layout) for a in (case.x, case.weight, case.bias))
    got = contract.conv2d_forward(x_dev, weight_dev, bias_dev, *case.geometry)
    _assert_matches(got, on_reference("conv2d_forward", case.x, case.weight, case.bias, *case.geometry), case.x.dtype)
    _assert_unchanged((x_dev, weight_dev), (case.x, case.weight))


@needs_gpu
@settings(max_examples=40, deadline=None)
@given(case=CONV_CASES, layout=layouts)
def test_conv2d_backward_input_matches_reference(case, layout):
    grad_y_dev, weight_dev = on_device(case.grad_y, layout), on_device(case.weight, layout)
    got = contract.conv2d_backward_input(grad_y_dev, weight_dev, case.x.shape, *case.geometry)
    want = on_reference("conv2d_backward_input", case.grad_y, case.weight, case.x.shape, *case.geometry)
    _assert_matches(got, want, case.x.dtype)
    _assert_unchanged((grad_y_dev, weight_dev), (case.grad_y, case.weight))


@needs_gpu
@settings(max_examples=40, deadline=None)
@given(case=CONV_CASES, layout=layouts)
def test_conv2d_backward_weight_matches_reference(case, layout):
    grad_y_dev, x_dev = on_device(case.grad_y, layout), on_device(case.x, layout)
    got = contract.conv2d_backward_weight(grad_y_dev, x_dev, case.weight.shape, *case.geometry)
    want = on_reference("conv2d_backward_weight", case.grad_y, case.x, case.weight.shape, *case.geometry)
    _assert_matches(got, want, case.x.dtype)
    _assert_unchanged((grad_y_dev, x_dev), (case.grad_y, case.x))


@needs_gpu
def test_conv2d_in_chunks_of_one_sample_gives_the_same_results(monkeypatch):
    """A workspace budget too small for two samples' im2col: every chunk is one sample."""
    monkeypatch.setattr(launch, "IM2COL_WORKSPACE_BYTES", 1)
    rng = np.random.default_rng(1)
    x, weight = rng.standard_normal((4, 3, 9, 7)), rng.standard_normal((5, 3, 3, 2))
    geometry = ((2, 1), (1, 1), (1, 2))
    grad_y = rng.standard_normal(on_reference("conv2d_forward", x, weight, None, *geometry).shape)
    x_dev, weight_dev, grad_y_dev = cupy.asarray(x), cupy.asarray(weight), cupy.asarray(grad_y)
    _assert_matches(contract.conv2d_forward(x_dev, weight_dev, None, *geometry),
                    on_reference("conv2d_forward", x, weight, None, *geometry), np.float64)
    _assert_matches(contract.conv2d_backward_input(grad_y_dev, weight_dev, x.shape, *geometry),
                    on_reference("conv2d_backward_input", grad_y, weight, x.shape, *geometry), np.float64)
    _assert_matches(contract.conv2d_backward_weight(grad_y_dev, x_dev, weight.shape, *geometry),
                    on_reference("conv2d_backward_weight", grad_y, x, weight.shape, *geometry), np.float64)


MAX_POOL_CASES = pool_cases(kinds=("distinct", "ties", "-inf", "nan"), dtypes=KERNEL_DTYPES)
AVG_POOL_CASES = pool_cases(kinds=("distinct", "ties"), max_dilation=1, dtypes=KERNEL_DTYPES)


@needs_gpu
@settings(max_examples=40, deadline=None)
@given(case=MAX_POOL_CASES, layout=layouts)
def test_max_pool2d_forward_matches_reference_exactly(case, layout):
    x_dev = on_device(case.x, layout)
    y, indices = contract.max_pool2d_forward(x_dev, *case.max_args)
    with backend.use_backend("numpy"):
        want_y, want_indices = contract.max_pool2d_forward(case.x, *case.max_args)
    assert y.dtype == case.x.dtype and indices.dtype == np.int64
    np.testing.assert_array_equal(cupy.asnumpy(y), want_y)  # NaN == NaN here
    np.testing.assert_array_equal(cupy.asnumpy(indices), want_indices)
    _assert_unchanged((x_dev,), (case.x,))


@needs_gpu
@settings(max_examples=40, deadline=None)
@given(case=MAX_POOL_CASES, seed=SEEDS)
def test_max_pool2d_backward_matches_reference(case, seed):
    _, indices = on_reference("max_pool2d_forward", case.x, *case.max_args)
    grad_y = np.random.default_rng(seed).standard_normal(indices.shape).astype(case.x.dtype)
    grad_y_dev, indices_dev = cupy.asarray(grad_y), cupy.asarray(indices)
    got = contract.max_pool2d_backward(grad_y_dev, indices_dev, case.x.shape)
    _assert_matches(got, on_reference("max_pool2d_backward", grad_y, indices, case.x.shape), case.x.dtype)
    _assert_unchanged((grad_y_dev, indices_dev), (grad_y, indices))


@needs_gpu
def test_max_pool2d_backward_refuses_indices_outside_the_plane():
    grad_y = cupy.ones((1, 1, 2, 2), cupy.float32)
    indices = cupy.asarray(np.array([0, 1, 2, 16]).reshape(1, 1, 2, 2))
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        contract.max_pool2d_backward(grad_y, indices, (1, 1, 4, 4))


@needs_gpu
@settings(max_examples=40, deadline=None)
@given(case=AVG_POOL_CASES, layout=layouts)
def test_avg_pool2d_forward_matches_reference(case, layout):
    x_dev = on_device(case.x, layout)
    got = contract.avg_pool2d_forward(x_dev, *case.avg_args)
    _assert_matches(got, on_reference("avg_pool2d_forward", case.x, *case.avg_args), case.x.dtype)
    _assert_unchanged((x_dev,), (case.x,))


@needs_gpu
@settings(max_examples=40, deadline=None)
@given(case=AVG_POOL_CASES, seed=SEEDS)
def test_avg_pool2d_backward_matches_reference(case, seed):
    grad_y = np.random.default_rng(seed).standard_normal(case.output_shape).astype(case.x.dtype)
    got = contract.avg_pool2d_backward(cupy.asarray(grad_y), case.x.shape, *case.avg_args)
    want = on_reference("avg_pool2d_backward", grad_y, case.x.shape, *case.avg_args)
    _assert_matches(got, want, case.x.dtype)


# (N, C, ...): L = 1 (BatchNorm1d), short and long runs, and channels of more values than a block's threads
BATCH_NORM_SHAPES = st.one_of(
    st.tuples(st.integers(1, 6), st.integers(1, 7)),
    st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(1, 9), st.integers(1, 9)),
    st.sampled_from([(3, 2, 300), (1, 3, 257), (600, 2)]),
)


@needs_gpu
@settings(max_examples=40, deadline=None)
@given(shape=BATCH_NORM_SHAPES, dtype=dtypes, training=st.booleans(), affine=st.booleans(), seed=SEEDS)
def test_batch_norm_forward_and_backward_match_reference(shape, dtype, training, affine, seed):
    rng = np.random.default_rng(seed)
    channels = shape[1]
    x = (rng.standard_normal(shape) * 2 + 3).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    weight, bias = (rng.standard_normal(channels).astype(dtype) for _ in range(2)) if affine else (None, None)
    statistics = (None, None) if training else (rng.standard_normal(channels).astype(dtype),
                                               (rng.random(channels) + 0.5).astype(dtype))
    device = [None if a is None else cupy.asarray(a) for a in (x, g, weight, bias, *statistics)]
    x_dev, g_dev, weight_dev, bias_dev, mean_dev, var_dev = device

    got = contract.batch_norm_forward(x_dev, weight_dev, bias_dev, 1e-5, mean_dev, var_dev)
    want = on_reference("batch_norm_forward", x, weight, bias, 1e-5, *statistics)
    for actual, wanted in zip(got, want):
        _assert_matches(actual, wanted, dtype)

    mean, rstd = want[1].astype(dtype), (1 / np.sqrt(want[2] + 1e-5)).astype(dtype)
    got = contract.batch_norm_backward(g_dev, x_dev, cupy.asarray(mean), cupy.asarray(rstd), weight_dev, training)
    want = on_reference("batch_norm_backward", g, x, mean, rstd, weight, training)
    for actual, wanted in zip(got, want):
        if wanted is None:
            assert actual is None
        else:
            _assert_matches(actual, wanted, dtype)
    _assert_unchanged([a for a in device if a is not None], [a for a in (x, g, weight, bias, *statistics) if a is not None])


@needs_gpu
def test_batch_norm_of_an_empty_batch_in_inference():
    x = cupy.zeros((0, 3, 4), cupy.float32)
    stats = cupy.zeros(3, cupy.float32), cupy.ones(3, cupy.float32)
    y, mean, var = contract.batch_norm_forward(x, None, None, 1e-5, *stats)
    assert y.shape == (0, 3, 4) and mean.shape == var.shape == (3,)
    grad_x, grad_weight, grad_bias = contract.batch_norm_backward(x, x, *stats, cupy.ones(3, cupy.float32), False)
    assert grad_x.shape == (0, 3, 4) and not grad_weight.any() and not grad_bias.any()


ROW_SHAPES = st.one_of(st.tuples(st.integers(1, 5), st.integers(1, 300)),  # row widths around a block's 256 threads
                       st.sampled_from([(2, 3, 128, 128), (7, 257), (1, 1)]))


@needs_gpu
@settings(max_examples=40, deadline=None)
@given(shape=ROW_SHAPES, dtype=dtypes, masked=st.booleans(), affine=st.booleans(), seed=SEEDS)
def test_the_transformer_row_kernels_match_reference(shape, dtype, masked, affine, seed):
    """softmax (with a broadcast -inf mask), layer norm and GELU, forward and backward."""
    rng = np.random.default_rng(seed)
    x, g = (rng.standard_normal(shape) * 3).astype(dtype), rng.standard_normal(shape).astype(dtype)
    bias = np.where(rng.random(shape[-1]) < 0.3, -np.inf, 0).astype(dtype) if masked else None
    width = shape[-1]
    weight, shift = (rng.standard_normal(width).astype(dtype) for _ in range(2)) if affine else (None, None)
    x_dev, g_dev = cupy.asarray(x), cupy.asarray(g)

    def both(entry, *args):  # run on the GPU and on the reference, compare, return the reference's
        got = getattr(contract, entry)(*[cupy.asarray(a) if isinstance(a, np.ndarray) else a for a in args])
        want = on_reference(entry, *args)
        for actual, wanted in zip(*((got, want) if isinstance(want, tuple) else ((got,), (want,)))):
            if wanted is None:
                assert actual is None
            else:
                finite = np.isfinite(wanted)  # a row masked everywhere is NaN in both
                assert np.array_equal(np.isnan(cupy.asnumpy(actual)), ~finite)
                _assert_matches(cupy.where(cupy.asarray(finite), actual, 0), np.where(finite, wanted, 0), dtype)
        return want

    z = both("softmax_forward", x, bias).astype(dtype)
    both("softmax_backward", g, np.nan_to_num(z))
    _, mean, rstd = both("layer_norm_forward", x, weight, shift, 1e-5)
    both("layer_norm_backward", g, x, mean.astype(dtype), rstd.astype(dtype), weight)
    _, cdf = both("gelu_forward", x)
    both("gelu_backward", g, x, cdf.astype(dtype))
    _assert_unchanged((x_dev, g_dev), (x, g))


@needs_gpu
@settings(max_examples=30, deadline=None)
@given(batch=st.sampled_from([(), (3,), (2, 4)]), sizes=st.tuples(*[st.integers(1, 70)] * 3), dtype=dtypes,
       masked=st.booleans(), seed=SEEDS)
def test_attention_forward_matches_reference(batch, sizes, dtype, masked, seed):
    length, keys, width = sizes
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal((*batch, rows, width)).astype(dtype) for rows in (length, keys, keys))
    bias = np.where(rng.random(keys) < 0.3, -np.inf, 0).astype(dtype) if masked else None
    got = contract.attention_forward(*map(cupy.asarray, (q, k, v)), None if bias is None else cupy.asarray(bias), 0.25)
    want = on_reference("attention_forward", q, k, v, bias, 0.25)
    finite = np.isfinite(want)  # every key masked: NaN in both
    assert np.array_equal(np.isnan(cupy.asnumpy(got)), ~finite)
    _assert_matches(cupy.where(cupy.asarray(finite), got, 0), np.where(finite, want, 0), dtype)


@needs_gpu
@settings(max_examples=40, deadline=None)
@given(shape=ROW_SHAPES, dtype=dtypes, p=st.floats(0, 1, exclude_max=True), key=st.integers(0, 2**64 - 1),
       seed=SEEDS)
def test_dropout_makes_the_reference_mask_bit_for_bit(shape, dtype, p, key, seed):
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    x_dev = cupy.asarray(x)
    got = contract.dropout(x_dev, p, key)
    with backend.use_backend("numpy"):
        want = contract.dropout(x, p, key)
    assert isinstance(got, cupy.ndarray) and got.dtype == dtype and got.flags.c_contiguous
    np.testing.assert_array_equal(cupy.asnumpy(got), want)
    _assert_unchanged((x_dev,), (x,))


@needs_gpu
def test_the_contract_runs_cupy_arrays_on_the_gpu_kernels():
    from minift.kernels.cupy import backend as cupy_gpu

    x = cupy.zeros((1, 1, 2, 2))
    for name in contract.CONTRACT:
        assert backend.implementation(name, x) is getattr(cupy_gpu, name)


@needs_gpu
def test_the_contract_refuses_host_and_device_arrays_together_and_mixed_dtypes():
    with pytest.raises(TypeError, match="cupy.asarray"):
        contract.matmul(np.ones((2, 2), np.float32), cupy.ones((2, 2), cupy.float32))
    with pytest.raises(TypeError, match="one dtype"):
        contract.matmul(cupy.ones((2, 2), cupy.float32), cupy.ones((2, 2), cupy.float64))
