// Helpers shared by minift's CUDA sources (gemm.cu, conv.cu, pool.cu).
//
// Every source is written once for `scalar_t`, which the loader defines on the
// compiler's command line: backend.py compiles each file twice, with
// -Dscalar_t=float and -Dscalar_t=double, so one text serves float32 and float64
// with plain (non-template) extern "C" kernels that CuPy finds by name.
//
// The sources are compiled by NVRTC (cupy.RawModule), which has no host headers:
// nothing here includes <cmath>, <cstdio> or the CUDA runtime headers.

#ifndef scalar_t
#error "compile with -Dscalar_t=float or -Dscalar_t=double (minift.kernels.cupy.backend does)"
#endif

// The elementwise kernels use a grid-stride loop: thread t of the whole grid handles
// elements t, t + T, t + 2T, ... where T is the number of threads in the grid. Any grid
// size is then correct, so the host can cap the grid (launch.elementwise_launch).
// Consecutive threads take consecutive elements, so a warp's 32 loads or stores of a
// contiguous array fall in one 128-byte line: the accesses coalesce.
__device__ __forceinline__ long long grid_thread_index()
{
    return (long long)blockIdx.x * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ long long grid_thread_count()
{
    return (long long)gridDim.x * blockDim.x;
}

// Input row h is read by tap p of the window at output row i exactly when
//     h == i * stride - padding + p * dilation.
// Returns that i, or -1 when it is not a whole number in [0, out_size).
// The gather kernels (col2im, avg-pool backward) use it to find, for one input
// element, every output that read it -- so each thread writes only its own element
// and no atomics are needed.
__device__ __forceinline__ int window_position(int h, int p, int stride, int padding,
                                               int dilation, int out_size)
{
    const int shifted = h + padding - p * dilation;  // = i * stride
    if (shifted < 0 || shifted % stride != 0) {
        return -1;
    }
    const int i = shifted / stride;
    return i < out_size ? i : -1;
}
