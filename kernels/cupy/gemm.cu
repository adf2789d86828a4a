// Batched GEMM, C[z] = A[z] @ B[z], with shared-memory tiling and register blocking.
//
// Implements the contract's `matmul` (see minift/contract/__init__.py); backend.matmul is the host
// side. A is (M, K) and B is (K, N), read through element strides, so transposed views
// need no copy; C is C-contiguous (batch, M, N). Batch z starts at z * a_batch_stride in
// A and z * b_batch_stride in B (a stride of 0 broadcasts one matrix over the batch).
//
// The tiling, for the constants below (launch.GEMM_TILING mirrors them):
//
//   * A block of 256 threads computes one 128 x 128 tile of C. The grid is
//     (ceil(N / 128), ceil(M / 128), batch): blockIdx.x picks the column tile,
//     blockIdx.y the row tile, blockIdx.z the batch entry.
//   * The block walks K in steps of BLOCK_K = 8. Each step it copies a 128 x 8 slab of
//     A and an 8 x 128 slab of B into shared memory (4 elements per thread for each);
//     the 16 threads that need an element of A (those computing its row) then read it
//     from shared memory, and likewise for B. Each element of A and B is fetched from
//     global memory once per block instead of once per output it contributes to.
//   * Each thread keeps an 8 x 8 micro-tile of C in registers. Per k it loads 8 values
//     of A's column and 8 of B's row into registers and does the 64 multiply-adds of
//     their outer product: 16 shared-memory reads for 64 FMAs.
//   * A thread's 8 rows are two runs of 4, rows ty*4 + {0..3} and 64 + ty*4 + {0..3}
//     (columns likewise with tx). A warp's 16 tx values then read 64 consecutive floats
//     of a shared row as float4s -- no bank conflicts -- and write 64 consecutive
//     columns of C.
//
// Sizes need not be multiples of the tile: loads outside A or B put zeros in shared
// memory (adding nothing), and stores outside C are skipped. K == 0 writes zeros.

#include "cuda_common.cuh"

constexpr int BLOCK_M = 128;   // rows of C per block
constexpr int BLOCK_N = 128;   // columns of C per block
constexpr int BLOCK_K = 8;     // depth of one shared-memory slab
constexpr int THREAD_M = 8;    // rows of C per thread
constexpr int THREAD_N = 8;    // columns of C per thread
constexpr int RUN = 4;         // a thread's rows (columns) come in runs of 4 (one float4)

constexpr int THREADS_M = BLOCK_M / THREAD_M;    // 16 thread rows
constexpr int THREADS_N = BLOCK_N / THREAD_N;    // 16 thread columns
constexpr int THREADS = THREADS_M * THREADS_N;   // 256 threads per block

// a_tile rows get 4 floats of padding: the two threads that store one row of A's slab
// (k and k + 4) would otherwise hit the same bank (4 * 128 floats apart); 4 * 132 floats
// apart they do not. A row stays a multiple of 16 bytes, so float4 reads stay aligned.
constexpr int A_TILE_PAD = 4;

static_assert(THREADS * RUN == BLOCK_M * BLOCK_K, "each thread loads one run of A's slab");
static_assert(THREADS * RUN == BLOCK_K * BLOCK_N, "each thread loads one run of B's slab");
static_assert(THREAD_M % RUN == 0 && THREAD_N % RUN == 0, "micro-tile is whole runs");

// Copy 4 consecutive values out of shared memory with vector loads (one LDS.128 for
// float, two LDS.128 for double). `from` is 16-byte aligned: see A_TILE_PAD.
__device__ __forceinline__ void load_run(float* to, const float* from)
{
    const float4 v = *reinterpret_cast<const float4*>(from);
    to[0] = v.x; to[1] = v.y; to[2] = v.z; to[3] = v.w;
}

__device__ __forceinline__ void load_run(double* to, const double* from)
{
    const double2 lo = *reinterpret_cast<const double2*>(from);
    const double2 hi = *reinterpret_cast<const double2*>(from + 2);
    to[0] = lo.x; to[1] = lo.y; to[2] = hi.x; to[3] = hi.y;
}

extern "C" __global__ void __launch_bounds__(THREADS) gemm_tiled(
    const scalar_t* __restrict__ a, const scalar_t* __restrict__ b, scalar_t* __restrict__ c,
    int m, int n, int k,
    long long a_row_stride, long long a_col_stride,
    long long b_row_stride, long long b_col_stride,
    long long a_batch_stride, long long b_batch_stride, int batch)
{
    // A's slab is stored transposed, a_tile[kk][row], so that a thread's run of rows
    // for one kk is contiguous (a float4), exactly like b_tile[kk][col].
    __shared__ __align__(16) scalar_t a_tile[BLOCK_K][BLOCK_M + A_TILE_PAD];
    __shared__ __align__(16) scalar_t b_tile[BLOCK_K][BLOCK_N];

    const int tid = threadIdx.x;
    const int tx = tid % THREADS_N;   // which runs of columns this thread computes
    const int ty = tid / THREADS_N;   // which runs of rows

    // Which 4 elements of each slab this thread copies. For A: row tid / 2, k-offsets
    // {0..3} or {4..7}; a warp covers 16 rows x 8 k -- for row-major A, 16 full
    // 32-byte sectors. For B: k-row tid / 32, columns (tid % 32) * 4 + {0..3}; a warp
    // covers 128 consecutive columns of one row -- for row-major B, fully coalesced.
    const int a_load_row = tid / (BLOCK_K / RUN);
    const int a_load_k = (tid % (BLOCK_K / RUN)) * RUN;
    const int b_load_k = tid / (BLOCK_N / RUN);
    const int b_load_col = (tid % (BLOCK_N / RUN)) * RUN;

    const int row0 = blockIdx.y * BLOCK_M;
    const int col0 = blockIdx.x * BLOCK_N;

    // More batch entries than grid.z allows (65535) wrap around: z += gridDim.z.
    for (int z = blockIdx.z; z < batch; z += gridDim.z) {
        const scalar_t* a_z = a + z * a_batch_stride;
        const scalar_t* b_z = b + z * b_batch_stride;
        scalar_t* c_z = c + (long long)z * m * n;

        scalar_t acc[THREAD_M][THREAD_N];
#pragma unroll
        for (int i = 0; i < THREAD_M; ++i) {
#pragma unroll
            for (int j = 0; j < THREAD_N; ++j) {
                acc[i][j] = 0;
            }
        }

        for (int k0 = 0; k0 < k; k0 += BLOCK_K) {
#pragma unroll
            for (int r = 0; r < RUN; ++r) {
                const int row = row0 + a_load_row;
                const int kk = k0 + a_load_k + r;
                a_tile[a_load_k + r][a_load_row] =
                    (row < m && kk < k) ? a_z[row * a_row_stride + kk * a_col_stride] : scalar_t(0);
            }
#pragma unroll
            for (int r = 0; r < RUN; ++r) {
                const int kk = k0 + b_load_k;
                const int col = col0 + b_load_col + r;
                b_tile[b_load_k][b_load_col + r] =
                    (kk < k && col < n) ? b_z[kk * b_row_stride + col * b_col_stride] : scalar_t(0);
            }
            __syncthreads();  // the slabs are complete before anyone reads them

#pragma unroll
            for (int kk = 0; kk < BLOCK_K; ++kk) {
                scalar_t a_frag[THREAD_M];
                scalar_t b_frag[THREAD_N];
#pragma unroll
                for (int run = 0; run < THREAD_M / RUN; ++run) {
                    load_run(&a_frag[run * RUN], &a_tile[kk][run * THREADS_M * RUN + ty * RUN]);
                }
#pragma unroll
                for (int run = 0; run < THREAD_N / RUN; ++run) {
                    load_run(&b_frag[run * RUN], &b_tile[kk][run * THREADS_N * RUN + tx * RUN]);
                }
#pragma unroll
                for (int i = 0; i < THREAD_M; ++i) {
#pragma unroll
                    for (int j = 0; j < THREAD_N; ++j) {
                        acc[i][j] += a_frag[i] * b_frag[j];
                    }
                }
            }
            __syncthreads();  // everyone is done reading before the next slab overwrites
        }

        // acc[i][j] belongs to row (i / 4) * 64 + ty * 4 + i % 4 of the tile, and
        // column (j / 4) * 64 + tx * 4 + j % 4 (launch.gemm_thread_outputs).
#pragma unroll
        for (int i = 0; i < THREAD_M; ++i) {
            const int row = row0 + (i / RUN) * THREADS_M * RUN + ty * RUN + i % RUN;
#pragma unroll
            for (int j = 0; j < THREAD_N; ++j) {
                const int col = col0 + (j / RUN) * THREADS_N * RUN + tx * RUN + j % RUN;
                if (row < m && col < n) {
                    c_z[(long long)row * n + col] = acc[i][j];
                }
            }
        }
    }
}
