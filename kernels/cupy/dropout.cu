// Dropout with a counter-based mask: y = x * keep / (1 - p), one thread per element.
//
// Implements the contract's dropout (definitions in minift/reference/dropout.py). Element
// i is kept iff (splitmix64(key, i) >> 11) >= threshold, threshold = ceil(p * 2**53) from
// the host: a hash of the element's index, so each thread computes its own elements' draws
// and the mask is bit for bit the one the CPU backends make. x and y are C-contiguous.

#include "cuda_common.cuh"

// Output index + 1 of SplitMix64 seeded with key (unsigned arithmetic wraps modulo 2**64).
__device__ __forceinline__ unsigned long long splitmix64(unsigned long long key, unsigned long long index)
{
    unsigned long long z = key + (index + 1ull) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// scale = 1 / (1 - p) in double from the host, rounded to scalar_t as the CPU backends round it.
extern "C" __global__ void dropout(
    const scalar_t* __restrict__ x, scalar_t* __restrict__ y, unsigned long long key,
    unsigned long long threshold, double scale, long long total)
{
    const scalar_t kept_scale = (scalar_t)scale;
    for (long long i = grid_thread_index(); i < total; i += grid_thread_count()) {
        const bool keep = (splitmix64(key, (unsigned long long)i) >> 11) >= threshold;
        y[i] = keep ? x[i] * kept_scale : (scalar_t)0;
    }
}
