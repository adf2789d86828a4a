// im2col and col2im: the two kernels that turn a convolution into one GEMM.
//
// For a chunk of S samples of x (S, C, H, W) and a KH x KW window, the column matrix is
//
//     cols[(c * KH + p) * KW + q,  (s * Ho + i) * Wo + j] = xpad[s, c, i*sh + p*dh, j*sw + q*dw]
//
// of shape (C*KH*KW, S*Ho*Wo): one row per weight tap, one column per output pixel. Then
// (backend.py, with the tiled GEMM of gemm.cu)
//
//     forward          Y  (O, S*Ho*Wo)   = W (O, C*KH*KW) @ cols
//     backward input   dcols             = W^T @ dY,  then col2im(dcols) -> dx
//     backward weight  dW (O, C*KH*KW)   = dY @ cols^T
//
// Both kernels take C-contiguous arrays (the host makes them so) and run one thread per
// element of what they write, in a grid-stride loop, with the last index fastest: a
// warp's 32 threads write 32 consecutive elements (coalesced), and with stride 1 they
// also read 32 consecutive elements of x or cols.

#include "cuda_common.cuh"

// One thread per element of cols; zero where the tap falls in the padding.
extern "C" __global__ void im2col(
    const scalar_t* __restrict__ x, scalar_t* __restrict__ cols,
    int samples, int channels, int height, int width,
    int kernel_h, int kernel_w, int out_h, int out_w,
    int stride_h, int stride_w, int pad_h, int pad_w, int dilation_h, int dilation_w)
{
    const long long pixels = (long long)samples * out_h * out_w;   // columns of cols
    const long long total = (long long)channels * kernel_h * kernel_w * pixels;
    for (long long index = grid_thread_index(); index < total; index += grid_thread_count()) {
        const long long column = index % pixels;
        const int tap = (int)(index / pixels);
        const int q = tap % kernel_w;
        const int p = (tap / kernel_w) % kernel_h;
        const int c = tap / (kernel_w * kernel_h);
        const int j = (int)(column % out_w);
        const int i = (int)((column / out_w) % out_h);
        const long long s = column / ((long long)out_w * out_h);

        const int h = i * stride_h - pad_h + p * dilation_h;
        const int w = j * stride_w - pad_w + q * dilation_w;
        const bool inside = 0 <= h && h < height && 0 <= w && w < width;
        cols[index] = inside ? x[((s * channels + c) * height + h) * width + w] : scalar_t(0);
    }
}

// The transpose of im2col, as a gather: one thread per element of dx sums the entries
// of dcols that im2col copied from it. Input (h, w) was copied by tap (p, q) of the
// window at output (i, j) when h == i*sh - ph + p*dh (window_position inverts that), so
// each thread visits at most KH*KW entries and writes only its own dx -- no atomics,
// and the same sum in the same order on every run.
extern "C" __global__ void col2im(
    const scalar_t* __restrict__ cols, scalar_t* __restrict__ grad_x,
    int samples, int channels, int height, int width,
    int kernel_h, int kernel_w, int out_h, int out_w,
    int stride_h, int stride_w, int pad_h, int pad_w, int dilation_h, int dilation_w)
{
    const long long pixels = (long long)samples * out_h * out_w;
    const long long total = (long long)samples * channels * height * width;
    for (long long index = grid_thread_index(); index < total; index += grid_thread_count()) {
        const int w = (int)(index % width);
        const int h = (int)((index / width) % height);
        const int c = (int)((index / ((long long)width * height)) % channels);
        const long long s = index / ((long long)width * height * channels);

        scalar_t sum = 0;
        for (int p = 0; p < kernel_h; ++p) {
            const int i = window_position(h, p, stride_h, pad_h, dilation_h, out_h);
            if (i < 0) {
                continue;
            }
            for (int q = 0; q < kernel_w; ++q) {
                const int j = window_position(w, q, stride_w, pad_w, dilation_w, out_w);
                if (j < 0) {
                    continue;
                }
                const long long tap = ((long long)c * kernel_h + p) * kernel_w + q;
                sum += cols[tap * pixels + (s * out_h + i) * out_w + j];
            }
        }
        grad_x[index] = sum;
    }
}
