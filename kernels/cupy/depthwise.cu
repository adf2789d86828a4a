// Depthwise convolution: groups == C, one input channel per group (MobileNet, EfficientNet).
//
// Output channel o filters input channel c = o / multiplier (multiplier = O / C) with its
// own KH x KW kernel, weight[o, 0, p, q]:
//
//     y[s, o, i, j] = sum_{p,q} weight[o, p, q] * xpad[s, c, i*sh + p*dh, j*sw + q*dw]
//
// A depthwise convolution does KH*KW multiply-adds per output: it is limited by memory, not
// arithmetic, so these kernels read x, y and the weight directly -- no im2col copy feeding
// a GEMM of one row per group (backend.py, which also adds the bias). All arrays are
// C-contiguous; the index arithmetic is conv.cu's.

#include "cuda_common.cuh"

constexpr int REDUCTION_THREADS = 256;  // launch.REDUCTION_THREADS: threads per block of the weight gradient

// One thread per output y[s, o, i, j], in a grid-stride loop (a warp writes 32
// consecutive outputs of a row); taps on the padding are skipped.
extern "C" __global__ void depthwise_forward(
    const scalar_t* __restrict__ x, const scalar_t* __restrict__ weight, scalar_t* __restrict__ y,
    int samples, int channels, int height, int width, int outs, int kernel_h, int kernel_w, int out_h, int out_w,
    int stride_h, int stride_w, int pad_h, int pad_w, int dilation_h, int dilation_w)
{
    const long long total = (long long)samples * outs * out_h * out_w;
    const int multiplier = outs / channels;
    for (long long index = grid_thread_index(); index < total; index += grid_thread_count()) {
        const int j = (int)(index % out_w);
        const int i = (int)((index / out_w) % out_h);
        const int o = (int)((index / ((long long)out_w * out_h)) % outs);
        const long long s = index / ((long long)out_w * out_h * outs);
        const scalar_t* x_plane = x + (s * channels + o / multiplier) * height * width;
        const scalar_t* taps = weight + (long long)o * kernel_h * kernel_w;

        scalar_t sum = 0;
        for (int p = 0; p < kernel_h; ++p) {
            const int h = i * stride_h - pad_h + p * dilation_h;
            if (h < 0 || h >= height) {
                continue;
            }
            for (int q = 0; q < kernel_w; ++q) {
                const int w = j * stride_w - pad_w + q * dilation_w;
                if (w >= 0 && w < width) {
                    sum += taps[p * kernel_w + q] * x_plane[h * width + w];
                }
            }
        }
        y[index] = sum;
    }
}

// dL/dx as a gather: one thread per element of grad_x sums, over the `multiplier` output
// channels of its input channel and the taps whose window reads it (window_position),
// weight * grad_y -- each thread writes only its own element, no atomics.
extern "C" __global__ void depthwise_backward_input(
    const scalar_t* __restrict__ grad_y, const scalar_t* __restrict__ weight, scalar_t* __restrict__ grad_x,
    int samples, int channels, int height, int width, int outs, int kernel_h, int kernel_w, int out_h, int out_w,
    int stride_h, int stride_w, int pad_h, int pad_w, int dilation_h, int dilation_w)
{
    const long long total = (long long)samples * channels * height * width;
    const int multiplier = outs / channels;
    for (long long index = grid_thread_index(); index < total; index += grid_thread_count()) {
        const int w = (int)(index % width);
        const int h = (int)((index / width) % height);
        const int c = (int)((index / ((long long)width * height)) % channels);
        const long long s = index / ((long long)width * height * channels);

        scalar_t sum = 0;
        for (int o = c * multiplier; o < (c + 1) * multiplier; ++o) {
            const scalar_t* grad_plane = grad_y + (s * outs + o) * out_h * out_w;
            const scalar_t* taps = weight + (long long)o * kernel_h * kernel_w;
            for (int p = 0; p < kernel_h; ++p) {
                const int i = window_position(h, p, stride_h, pad_h, dilation_h, out_h);
                if (i < 0) {
                    continue;
                }
                for (int q = 0; q < kernel_w; ++q) {
                    const int j = window_position(w, q, stride_w, pad_w, dilation_w, out_w);
                    if (j >= 0) {
                        sum += taps[p * kernel_w + q] * grad_plane[i * out_w + j];
                    }
                }
            }
        }
        grad_x[index] = sum;
    }
}

// dL/dweight: one block per weight element (o, p, q) (launch.reduction_launch). Its
// threads stride over the samples * out_h * out_w output positions, each summing
// grad_y * x for its share, then the block adds the partial sums in shared memory.
extern "C" __global__ void __launch_bounds__(REDUCTION_THREADS) depthwise_backward_weight(
    const scalar_t* __restrict__ grad_y, const scalar_t* __restrict__ x, scalar_t* __restrict__ grad_w,
    int samples, int channels, int height, int width, int outs, int kernel_h, int kernel_w, int out_h, int out_w,
    int stride_h, int stride_w, int pad_h, int pad_w, int dilation_h, int dilation_w)
{
    __shared__ scalar_t partial[REDUCTION_THREADS];
    const int q = blockIdx.x % kernel_w;
    const int p = (blockIdx.x / kernel_w) % kernel_h;
    const int o = blockIdx.x / (kernel_w * kernel_h);
    const int c = o / (outs / channels);
    const long long positions = (long long)samples * out_h * out_w;

    scalar_t sum = 0;
    for (long long t = threadIdx.x; t < positions; t += blockDim.x) {
        const int j = (int)(t % out_w);
        const int i = (int)((t / out_w) % out_h);
        const long long s = t / ((long long)out_w * out_h);
        const int h = i * stride_h - pad_h + p * dilation_h;
        const int w = j * stride_w - pad_w + q * dilation_w;
        if (0 <= h && h < height && 0 <= w && w < width) {
            sum += grad_y[((s * outs + o) * out_h + i) * out_w + j] * x[((s * channels + c) * height + h) * width + w];
        }
    }
    partial[threadIdx.x] = sum;
    __syncthreads();
    for (int half = REDUCTION_THREADS / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) {
            partial[threadIdx.x] += partial[threadIdx.x + half];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        grad_w[blockIdx.x] = partial[0];
    }
}
