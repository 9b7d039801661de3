/* Hot loops of the event kernels (else_dse._kernels), plain C so that GCC
 * vectorizes them; kernels_core_impl.h is instantiated once per code type.
 * On x86-64 Linux with GCC each entry point is compiled twice (AVX2 and the
 * baseline) and picked at load time (target_clones), so the wheel stays
 * portable. Semantics: shared/design/semantics.md; arguments: kernels.pyx. */
#ifndef ELSE_DSE_KERNELS_CORE_H
#define ELSE_DSE_KERNELS_CORE_H

#include <stdint.h>
#include <stddef.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define EK_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define EK_CLONES
#endif

/* Hand-written AVX2 (the 8x8 transposes of line deltas along x), chosen at run time. */
#if defined(__GNUC__) && defined(__x86_64__)
#define EK_X86_AVX2 1
#include <immintrin.h>
static inline int ek_have_avx2(void) {
    static int have = -1;
    if (have < 0) {
        __builtin_cpu_init();
        have = __builtin_cpu_supports("avx2") ? 1 : 0;
    }
    return have;
}
#else
#define EK_X86_AVX2 0
#endif

/* Error accumulators of one frame: max|X - Y|, sum (X - Y)^2, sum X^2. */
typedef struct {
    int64_t esq;
    int64_t xsq;
    int32_t emax;
} ek_err;

#define EK_BLOCK 1024

/* Stride of the sub-histograms of T+1 bins (open-loop event curves): padded to
 * whole cache lines plus one so that the sub-histograms do not share lines. */
#define EK_HSTRIDE(T) ((((T) + 1 + 15) / 16) * 16 + 16)

/* Exact sum of squares of n int32 values with |v| <= amax: uint32 partial sums
 * over chunks short enough not to wrap, int64 otherwise. */
static inline int64_t ek_sumsq(const int32_t *restrict v, ptrdiff_t n, int32_t amax) {
    int64_t total = 0, a2 = (int64_t)amax * amax;
    ptrdiff_t i, i0, i1, k;
    if (amax == 0 || n <= 0) return 0;
    k = (ptrdiff_t)(UINT32_MAX / (uint64_t)a2);
    if (k >= 16) {
        for (i0 = 0; i0 < n; i0 += k) {
            uint32_t acc = 0;
            i1 = i0 + k < n ? i0 + k : n;
            for (i = i0; i < i1; i++) acc += (uint32_t)v[i] * (uint32_t)v[i];
            total += acc;
        }
    } else {
        for (i = 0; i < n; i++) total += (int64_t)v[i] * v[i];
    }
    return total;
}

/* Gather line `src` of C planes (stride `plane`) into xl as X = code - zp;
 * NP is a constant for the short lines of small feature maps. */
#define EK_GATHER(NP)                                                         \
    for (c = 0; c < C; c++)                                                   \
        for (p = 0; p < (NP); p++)                                            \
            xl[c * (NP) + p] = (int32_t)src[c * plane + p] - zp

/* Codes of float32 values with a pinned scale and zero point, and back (replay):
 * out = clip(rint(x / scale) + zp, 0, levels) in double, round half to even
 * (nearbyint in the default rounding mode), NaN -> 0; values -> float(v * scale). */
#define EK_QUANTIZE(NAME, OUT_T)                                                    \
    EK_CLONES static void NAME(const float *restrict x, ptrdiff_t n, double scale,  \
                               double zp, double levels, OUT_T *restrict out) {     \
        ptrdiff_t i;                                                                \
        for (i = 0; i < n; i++) {                                                   \
            double v = __builtin_nearbyint((double)x[i] / scale) + zp;              \
            v = v > levels ? levels : v;                                            \
            v = v >= 0.0 ? v : 0.0;                                                 \
            out[i] = (OUT_T)v;                                                      \
        }                                                                           \
    }
EK_QUANTIZE(ek_quantize_u8, uint8_t)
EK_QUANTIZE(ek_quantize_u16, uint16_t)

EK_CLONES
static void ek_dequantize(const int32_t *restrict v, ptrdiff_t n, double scale, float *restrict out) {
    ptrdiff_t i;
    for (i = 0; i < n; i++) out[i] = (float)((double)v[i] * scale);
}

#define CODE_T int8_t
#define EK_LOAD8(p) _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p)))
#define EK_SUF(name) name##_i8
#include "kernels_core_impl.h"
#undef CODE_T
#undef EK_SUF

#undef EK_LOAD8
#define CODE_T uint8_t
#define EK_LOAD8(p) _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p)))
#define EK_SUF(name) name##_u8
#include "kernels_core_impl.h"
#undef CODE_T
#undef EK_SUF

#undef EK_LOAD8
#define CODE_T int16_t
#define EK_LOAD8(p) _mm256_cvtepi16_epi32(_mm_loadu_si128((const __m128i *)(p)))
#define EK_SUF(name) name##_i16
#include "kernels_core_impl.h"
#undef CODE_T
#undef EK_SUF

#undef EK_LOAD8
#define CODE_T uint16_t
#define EK_LOAD8(p) _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p)))
#define EK_SUF(name) name##_u16
#include "kernels_core_impl.h"
#undef CODE_T
#undef EK_SUF

#undef EK_LOAD8
#define CODE_T int32_t
#define EK_LOAD8(p) _mm256_loadu_si256((const __m256i *)(p))
#define EK_SUF(name) name##_i32
#include "kernels_core_impl.h"
#undef CODE_T
#undef EK_SUF

#endif
