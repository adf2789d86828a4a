// Batch normalisation: per-channel statistics and gradient sums, and the element-wise passes.
//
// Implements the contract's batch_norm_* (formulas in minift/reference/batch_norm.py). x is
// C-contiguous and viewed as (N, C, L), L the product of the trailing axes; the t-th value
// of channel c, t = n * L + l, lies at (n * C + c) * L + l.
//
// The sums run one block of REDUCTION_THREADS threads per channel (launch.reduction_launch):
// thread t takes the channel's values t, t + T, ... (consecutive threads, consecutive l: the
// loads coalesce when L is long), sums them in double, then the block adds its partial sums
// in shared memory, halving the active threads at each step (block_sum). No double division:
// 1 / (N * L) comes from the host, as in transformer.cu. The element-wise kernels (y, dL/dx)
// use the grid-stride loop of cuda_common.cuh and per-channel coefficients, in scalar_t,
// that the host computed from those sums.

#include "cuda_common.cuh"

constexpr int REDUCTION_THREADS = 256;  // launch.REDUCTION_THREADS: a power of two, for the halving

// The sum of every thread's value, returned to every thread; partial is REDUCTION_THREADS
// doubles of shared memory.
__device__ __forceinline__ double block_sum(double value, double* partial)
{
    partial[threadIdx.x] = value;
    __syncthreads();
    for (int half = REDUCTION_THREADS / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) {
            partial[threadIdx.x] += partial[threadIdx.x + half];
        }
        __syncthreads();
    }
    const double total = partial[0];
    __syncthreads();  // partial is reused by the next call
    return total;
}

// Where the t-th value of channel c lies (t < N * L, which the host keeps below 2**31).
__device__ __forceinline__ long long channel_offset(int t, int c, int channels, int length)
{
    const int n = t / length;
    return ((long long)n * channels + c) * length + (t - n * length);
}

// stats[c] = the mean of channel c = blockIdx.x, stats[C + c] = its biased variance: two
// passes, the mean first, then the mean of squared deviations.
extern "C" __global__ void __launch_bounds__(REDUCTION_THREADS) batch_norm_statistics(
    const scalar_t* __restrict__ x, double* __restrict__ stats, int samples, int channels, int length,
    double inv_count)
{
    __shared__ double partial[REDUCTION_THREADS];
    const int c = blockIdx.x;
    const int count = samples * length;
    double total = 0;
    // unroll 1: unrolled, these two loops spilled registers to local memory on sm_90
#pragma unroll 1
    for (int t = threadIdx.x; t < count; t += REDUCTION_THREADS) {
        total += x[channel_offset(t, c, channels, length)];
    }
    const double mu = block_sum(total, partial) * inv_count;
    double spread = 0;
#pragma unroll 1
    for (int t = threadIdx.x; t < count; t += REDUCTION_THREADS) {
        const double d = x[channel_offset(t, c, channels, length)] - mu;
        spread += d * d;
    }
    const double var = block_sum(spread, partial) * inv_count;
    if (threadIdx.x == 0) {
        stats[c] = mu;
        stats[channels + c] = var;
    }
}

// sums[c] = the sum of g over channel c = blockIdx.x, sums[C + c] = the sum of g * (x - mean[c]).
extern "C" __global__ void __launch_bounds__(REDUCTION_THREADS) batch_norm_gradient_sums(
    const scalar_t* __restrict__ grad_y, const scalar_t* __restrict__ x, const scalar_t* __restrict__ mean,
    double* __restrict__ sums, int samples, int channels, int length)
{
    __shared__ double partial[REDUCTION_THREADS];
    const int c = blockIdx.x;
    const int count = samples * length;
    const double mu = mean[c];
    double sum_g = 0, sum_gd = 0;
    for (int t = threadIdx.x; t < count; t += REDUCTION_THREADS) {
        const long long k = channel_offset(t, c, channels, length);
        const double g = grad_y[k];
        sum_g += g;
        sum_gd += g * (x[k] - mu);
    }
    sum_g = block_sum(sum_g, partial);
    sum_gd = block_sum(sum_gd, partial);
    if (threadIdx.x == 0) {
        sums[c] = sum_g;
        sums[channels + c] = sum_gd;
    }
}

// y = (x - centre[c]) * scale[c] + shift[c], element-wise: the forward pass's y, and dL/dx
// in inference (x = g, centre = shift = 0).
extern "C" __global__ void batch_norm_apply(
    const scalar_t* __restrict__ x, const scalar_t* __restrict__ centre, const scalar_t* __restrict__ scale,
    const scalar_t* __restrict__ shift, scalar_t* __restrict__ y, long long total, int channels, int length)
{
    for (long long index = grid_thread_index(); index < total; index += grid_thread_count()) {
        const int c = (int)((index / length) % channels);
        y[index] = (x[index] - centre[c]) * scale[c] + shift[c];
    }
}

// dL/dx in training: scale[c] * (g - mean_g[c] - (x - centre[c]) * slope[c]), element-wise, where
// scale = rstd * weight, mean_g = mean(g), slope = mean(g * x_hat) * rstd (minift/reference/batch_norm.py).
extern "C" __global__ void batch_norm_backward_input(
    const scalar_t* __restrict__ grad_y, const scalar_t* __restrict__ x, const scalar_t* __restrict__ mean_g,
    const scalar_t* __restrict__ scale, const scalar_t* __restrict__ centre, const scalar_t* __restrict__ slope,
    scalar_t* __restrict__ grad_x, long long total, int channels, int length)
{
    for (long long index = grid_thread_index(); index < total; index += grid_thread_count()) {
        const int c = (int)((index / length) % channels);
        grad_x[index] = scale[c] * (grad_y[index] - mean_g[c] - (x[index] - centre[c]) * slope[c]);
    }
}
