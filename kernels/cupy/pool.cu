// Max and average pooling over (N, C, H, W), forward and backward.
//
// Implements the contract's max_pool2d_* and avg_pool2d_* (minift/contract/__init__.py). All
// arrays are C-contiguous (the host makes them so). Every kernel runs one thread per
// element it owns, in a grid-stride loop, with the last (width) index fastest, so a
// warp writes 32 consecutive outputs and, with stride 1, reads neighbouring inputs.
// An (n, c) pair is a "plane": plane = index / (rows * cols of that array).

#include "cuda_common.cuh"

// One thread per output. The window is scanned in row-major order and a value replaces
// the best so far only when strictly greater, so among equal maxima the first wins
// (PyTorch's rule); a NaN replaces a best that is not NaN, so NaN propagates and the
// first NaN wins (as in the reference; PyTorch reports the last). Taps in the -inf
// padding are skipped: the host refuses geometries where a window is all padding, so
// every window has a real element. indices holds h * W + w, the flat position in the
// unpadded input plane.
extern "C" __global__ void max_pool2d_forward(
    const scalar_t* __restrict__ x, scalar_t* __restrict__ y, long long* __restrict__ indices,
    int planes, int height, int width, int kernel_h, int kernel_w, int out_h, int out_w,
    int stride_h, int stride_w, int pad_h, int pad_w, int dilation_h, int dilation_w)
{
    const long long total = (long long)planes * out_h * out_w;
    for (long long index = grid_thread_index(); index < total; index += grid_thread_count()) {
        const int j = (int)(index % out_w);
        const int i = (int)((index / out_w) % out_h);
        const long long plane = index / ((long long)out_w * out_h);
        const scalar_t* x_plane = x + plane * height * width;

        scalar_t best = 0;            // replaced by the window's first real element
        long long best_index = -1;
        for (int p = 0; p < kernel_h; ++p) {
            const int h = i * stride_h - pad_h + p * dilation_h;
            if (h < 0 || h >= height) {
                continue;
            }
            for (int q = 0; q < kernel_w; ++q) {
                const int w = j * stride_w - pad_w + q * dilation_w;
                if (w < 0 || w >= width) {
                    continue;
                }
                const scalar_t value = x_plane[h * width + w];
                const bool is_nan = value != value;  // NaN is the only value unequal to itself
                const bool best_is_nan = best != best;
                if (best_index < 0 || value > best || (is_nan && !best_is_nan)) {
                    best = value;
                    best_index = (long long)h * width + w;
                }
            }
        }
        y[index] = best;
        indices[index] = best_index;
    }
}

// One thread per element of grad_y, scattering it to the input its window picked.
// Overlapping windows (stride < kernel) can pick the same input, so the add is atomic.
extern "C" __global__ void max_pool2d_backward(
    const scalar_t* __restrict__ grad_y, const long long* __restrict__ indices,
    scalar_t* __restrict__ grad_x, long long total, int out_plane_size, int in_plane_size)
{
    for (long long index = grid_thread_index(); index < total; index += grid_thread_count()) {
        const long long plane = index / out_plane_size;
        atomicAdd(&grad_x[plane * in_plane_size + indices[index]], grad_y[index]);
    }
}

// One thread per output: the window's sum over the zero-padded input, divided by
// divisor_rows[i] * divisor_cols[j] (the host computes them: PoolGeometry.divisors, which
// is KH * KW unless ceil_mode or count_include_pad=False say otherwise).
extern "C" __global__ void avg_pool2d_forward(
    const scalar_t* __restrict__ x, scalar_t* __restrict__ y,
    const scalar_t* __restrict__ divisor_rows, const scalar_t* __restrict__ divisor_cols,
    int planes, int height, int width, int kernel_h, int kernel_w, int out_h, int out_w,
    int stride_h, int stride_w, int pad_h, int pad_w)
{
    const long long total = (long long)planes * out_h * out_w;
    for (long long index = grid_thread_index(); index < total; index += grid_thread_count()) {
        const int j = (int)(index % out_w);
        const int i = (int)((index / out_w) % out_h);
        const long long plane = index / ((long long)out_w * out_h);
        const scalar_t* x_plane = x + plane * height * width;

        scalar_t sum = 0;
        for (int p = 0; p < kernel_h; ++p) {
            const int h = i * stride_h - pad_h + p;
            if (h < 0 || h >= height) {
                continue;
            }
            for (int q = 0; q < kernel_w; ++q) {
                const int w = j * stride_w - pad_w + q;
                if (w >= 0 && w < width) {
                    sum += x_plane[h * width + w];
                }
            }
        }
        y[index] = sum / (divisor_rows[i] * divisor_cols[j]);
    }
}

// The transpose of avg_pool2d_forward as a gather: one thread per input element adds
// grad_y / divisor of every window that contains it (found with window_position), so
// no two threads write the same element and no atomics are needed.
extern "C" __global__ void avg_pool2d_backward(
    const scalar_t* __restrict__ grad_y, scalar_t* __restrict__ grad_x,
    const scalar_t* __restrict__ divisor_rows, const scalar_t* __restrict__ divisor_cols,
    int planes, int height, int width, int kernel_h, int kernel_w, int out_h, int out_w,
    int stride_h, int stride_w, int pad_h, int pad_w)
{
    const long long total = (long long)planes * height * width;
    for (long long index = grid_thread_index(); index < total; index += grid_thread_count()) {
        const int w = (int)(index % width);
        const int h = (int)((index / width) % height);
        const long long plane = index / ((long long)width * height);
        const scalar_t* grad_y_plane = grad_y + plane * out_h * out_w;

        scalar_t sum = 0;
        for (int p = 0; p < kernel_h; ++p) {
            const int i = window_position(h, p, stride_h, pad_h, 1, out_h);
            if (i < 0) {
                continue;
            }
            for (int q = 0; q < kernel_w; ++q) {
                const int j = window_position(w, q, stride_w, pad_w, 1, out_w);
                if (j >= 0) {
                    sum += grad_y_plane[i * out_w + j] / (divisor_rows[i] * divisor_cols[j]);
                }
            }
        }
        grad_x[index] = sum;
    }
}
