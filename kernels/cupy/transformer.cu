// The transformer's row-wise and element-wise kernels: softmax with an additive mask,
// layer norm, GELU (erf), forward and backward.
//
// Implements the contract's softmax_*, layer_norm_* and gelu_* (formulas in
// minift/reference/transformer.py). All arrays are C-contiguous (the host makes them so,
// and lays a broadcast mask out in full); rows are the last axis.
//
// Row kernels run one block of ROW_THREADS threads per row: thread t takes the row's
// elements t, t + ROW_THREADS, ... (consecutive threads, consecutive elements: the loads
// coalesce), and the row's max and sums are reduced across the block (block_reduce),
// in double. No double division, square root or exponential: their slow paths spill
// registers, so 1 / width comes from the host and those run in scalar_t. Element-wise
// kernels use the grid-stride loop of cuda_common.cuh.

#include "cuda_common.cuh"

constexpr int ROW_THREADS = 256;  // launch.row_launch uses the same number
constexpr int WARPS = ROW_THREADS / 32;

// The sum (is_max false) or the maximum (is_max true) of every thread's value, returned to
// every thread: first within each warp (shuffles), then across the warps (shared memory).
__device__ __forceinline__ double block_reduce(double value, bool is_max)
{
    __shared__ double partial[WARPS];
    for (int offset = 16; offset > 0; offset /= 2) {
        const double other = __shfl_down_sync(0xffffffffu, value, offset);
        value = is_max ? fmax(value, other) : value + other;
    }
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    if (lane == 0) {
        partial[warp] = value;
    }
    __syncthreads();
    double result = partial[0];
    for (int w = 1; w < WARPS; ++w) {
        result = is_max ? fmax(result, partial[w]) : result + partial[w];
    }
    __syncthreads();  // partial is reused by the next call
    return result;
}

// z = softmax(x + bias) per row; bias (same shape as x) only when has_bias. A row that is
// -inf everywhere gives NaN (-inf - -inf), as in the reference.
extern "C" __global__ void __launch_bounds__(ROW_THREADS) softmax_forward(
    const scalar_t* __restrict__ x, const scalar_t* __restrict__ bias, scalar_t* __restrict__ z,
    int length, int has_bias)
{
    const long long start = (long long)blockIdx.x * length;
    double top = -INFINITY;
    for (int j = threadIdx.x; j < length; j += ROW_THREADS) {
        const scalar_t v = x[start + j] + (has_bias ? bias[start + j] : (scalar_t)0);
        z[start + j] = v;
        top = fmax(top, (double)v);
    }
    top = block_reduce(top, true);
    double total = 0;
#pragma unroll 1
    for (int j = threadIdx.x; j < length; j += ROW_THREADS) {
        const double e = exp((scalar_t)(z[start + j] - top));  // in scalar_t: float's exp has no slow path
        z[start + j] = (scalar_t)e;
        total += e;
    }
    const double scale = __drcp_rn(block_reduce(total, false));
    for (int j = threadIdx.x; j < length; j += ROW_THREADS) {
        z[start + j] = (scalar_t)(z[start + j] * scale);
    }
}

// dL/dx = z * (g - sum(g * z)) per row.
extern "C" __global__ void __launch_bounds__(ROW_THREADS) softmax_backward(
    const scalar_t* __restrict__ grad_z, const scalar_t* __restrict__ z, scalar_t* __restrict__ grad_x, int length)
{
    const long long start = (long long)blockIdx.x * length;
    double dot = 0;
    for (int j = threadIdx.x; j < length; j += ROW_THREADS) {
        dot += (double)grad_z[start + j] * z[start + j];
    }
    dot = block_reduce(dot, false);
    for (int j = threadIdx.x; j < length; j += ROW_THREADS) {
        grad_x[start + j] = (scalar_t)(z[start + j] * (grad_z[start + j] - dot));
    }
}

// y = (x - mean) * rstd * weight + bias per row (weight, bias only when given).
extern "C" __global__ void __launch_bounds__(ROW_THREADS) layer_norm_forward(
    const scalar_t* __restrict__ x, const scalar_t* __restrict__ weight, const scalar_t* __restrict__ bias,
    scalar_t* __restrict__ y, scalar_t* __restrict__ mean, scalar_t* __restrict__ rstd,
    int width, double inv_width, double eps, int has_weight, int has_bias)
{
    const long long start = (long long)blockIdx.x * width;
    double total = 0;
    for (int j = threadIdx.x; j < width; j += ROW_THREADS) {
        total += x[start + j];
    }
    const double mu = block_reduce(total, false) * inv_width;
    double spread = 0;
    for (int j = threadIdx.x; j < width; j += ROW_THREADS) {
        const double d = x[start + j] - mu;
        spread += d * d;
    }
    const double r = rsqrt((scalar_t)(block_reduce(spread, false) * inv_width + eps));  // in scalar_t, as above
    for (int j = threadIdx.x; j < width; j += ROW_THREADS) {
        double v = (x[start + j] - mu) * r;
        if (has_weight) {
            v *= weight[j];
        }
        if (has_bias) {
            v += bias[j];
        }
        y[start + j] = (scalar_t)v;
    }
    if (threadIdx.x == 0) {
        mean[blockIdx.x] = (scalar_t)mu;
        rstd[blockIdx.x] = (scalar_t)r;
    }
}

// dL/dx = rstd * (g_hat - mean(g_hat) - x_hat * mean(g_hat * x_hat)) per row, g_hat = g * weight.
extern "C" __global__ void __launch_bounds__(ROW_THREADS) layer_norm_backward_input(
    const scalar_t* __restrict__ grad_y, const scalar_t* __restrict__ x, const scalar_t* __restrict__ mean,
    const scalar_t* __restrict__ rstd, const scalar_t* __restrict__ weight, scalar_t* __restrict__ grad_x,
    int width, double inv_width, int has_weight)
{
    const long long start = (long long)blockIdx.x * width;
    const double mu = mean[blockIdx.x], r = rstd[blockIdx.x];
    double sum_g = 0, sum_gx = 0;
    for (int j = threadIdx.x; j < width; j += ROW_THREADS) {
        const double g_hat = (double)grad_y[start + j] * (has_weight ? (double)weight[j] : 1.0);
        sum_g += g_hat;
        sum_gx += g_hat * (x[start + j] - mu) * r;
    }
    const double mean_g = block_reduce(sum_g, false) * inv_width;
    const double mean_gx = block_reduce(sum_gx, false) * inv_width;
    for (int j = threadIdx.x; j < width; j += ROW_THREADS) {
        const double g_hat = (double)grad_y[start + j] * (has_weight ? (double)weight[j] : 1.0);
        grad_x[start + j] = (scalar_t)(r * (g_hat - mean_g - (x[start + j] - mu) * r * mean_gx));
    }
}

// dL/dweight[j] = sum over rows of g * x_hat, dL/dbias[j] = sum over rows of g: one thread
// per column j, walking down the rows (neighbouring threads read neighbouring columns).
extern "C" __global__ void layer_norm_backward_parameters(
    const scalar_t* __restrict__ grad_y, const scalar_t* __restrict__ x, const scalar_t* __restrict__ mean,
    const scalar_t* __restrict__ rstd, scalar_t* __restrict__ grad_weight, scalar_t* __restrict__ grad_bias,
    long long rows, int width)
{
    for (long long j = grid_thread_index(); j < width; j += grid_thread_count()) {
        double sum_gx = 0, sum_g = 0;
        for (long long row = 0; row < rows; ++row) {
            const double g = grad_y[row * width + j];
            sum_gx += g * (x[row * width + j] - (double)mean[row]) * rstd[row];
            sum_g += g;
        }
        grad_weight[j] = (scalar_t)sum_gx;
        grad_bias[j] = (scalar_t)sum_g;
    }
}

// y = x * cdf, cdf = (1 + erf(x / sqrt 2)) / 2, element-wise.
extern "C" __global__ void gelu_forward(
    const scalar_t* __restrict__ x, scalar_t* __restrict__ y, scalar_t* __restrict__ cdf, long long total)
{
    for (long long i = grid_thread_index(); i < total; i += grid_thread_count()) {
        const scalar_t c = (scalar_t)0.5 * ((scalar_t)1 + erf(x[i] * (scalar_t)0.70710678118654752440));
        cdf[i] = c;
        y[i] = x[i] * c;
    }
}

// dL/dx = g * (cdf + x * exp(-x**2 / 2) / sqrt(2 pi)), element-wise.
extern "C" __global__ void gelu_backward(
    const scalar_t* __restrict__ grad_y, const scalar_t* __restrict__ x, const scalar_t* __restrict__ cdf,
    scalar_t* __restrict__ grad_x, long long total)
{
    for (long long i = grid_thread_index(); i < total; i += grid_thread_count()) {
        const scalar_t v = x[i];
        const scalar_t pdf = exp((scalar_t)-0.5 * v * v) * (scalar_t)0.39894228040143267794;
        grad_x[i] = grad_y[i] * (cdf[i] + v * pdf);
    }
}
