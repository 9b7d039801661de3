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
#include <stdlib.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define EK_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define EK_CLONES
#endif

/* Hand-written AVX2 (the 8x8 transposes of line deltas along x, the loops on 16-bit state),
 * chosen at run time; ELSE_DSE_NO_AVX2 (set, not empty) runs the plain C loops instead, so
 * that a test can compare both on one machine. */
#if defined(__GNUC__) && defined(__x86_64__)
#define EK_X86_AVX2 1
#include <immintrin.h>
static inline int ek_have_avx2(void) {
    static int have = -1;
    if (have < 0) {
        const char *off = getenv("ELSE_DSE_NO_AVX2");
        __builtin_cpu_init();
        have = __builtin_cpu_supports("avx2") && !(off && *off) ? 1 : 0;
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
#ifndef EK_AHEAD
#define EK_AHEAD 2   /* lines a line-delta chunk prefetches ahead */
#endif

/* The delta step every loop shares (semantics.md): a delta d (after the
 * activation threshold) is sent iff |d| > theta; 1 if sent, else 0. The
 * receiver then adds d (closed loop: the sender's reference too). The caller
 * passes ntheta = -theta in its own lane type, so that loops over 16-bit lanes
 * compare in 16-bit lanes (-theta formed in int32 would widen them). */
static inline int32_t ek_sent(int32_t d, int32_t theta, int32_t ntheta) {
    return (d > theta) | (d < ntheta);
}

#if EK_X86_AVX2
/* The same step on 16 int16 lanes: all ones in the lanes whose delta is sent. */
__attribute__((target("avx2"), always_inline))
static inline __m256i ek_sent16x16(__m256i d, __m256i theta, __m256i ntheta) {
    return _mm256_or_si256(_mm256_cmpgt_epi16(d, theta), _mm256_cmpgt_epi16(ntheta, d));
}

__attribute__((target("avx2"), always_inline))
static inline int32_t ek_hsum32x8(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* The largest of 16 int16 lanes. */
__attribute__((target("avx2"), always_inline))
static inline int16_t ek_hmax16x16(__m256i v) {
    __m128i m = _mm_max_epi16(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    m = _mm_max_epi16(m, _mm_shuffle_epi32(m, 0x4e));
    m = _mm_max_epi16(m, _mm_shuffle_epi32(m, 0xb1));
    m = _mm_max_epi16(m, _mm_srli_epi32(m, 16));
    return (int16_t)_mm_cvtsi128_si32(m);
}

/* The same, summed in int64 (lanes that are each below 2^31, with a total that may not be). */
__attribute__((target("avx2"), always_inline))
static inline int64_t ek_hsum32x8_64(__m256i v) {
    __m256i w = _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(v)),
                                 _mm256_cvtepi32_epi64(_mm256_extracti128_si256(v, 1)));
    __m128i s = _mm_add_epi64(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
    return _mm_cvtsi128_si64(s) + _mm_extract_epi64(s, 1);
}

/* The delta step on 16 lanes, closed or open loop (use_tau: the activation threshold first),
 * from X (v), the sender reference rp and, in the open loop, the consumer's sum yp: the
 * sent mask *m, the thresholded X *xt and what the consumer then holds *held; returns
 * |X - held|. Always inlined with constant closed and use_tau. */
__attribute__((target("avx2"), always_inline))
static inline __m256i ek_step16x16(__m256i v, __m256i rp, __m256i yp, __m256i theta, __m256i ntheta,
                                   __m256i tau, int closed, int use_tau, __m256i *m, __m256i *xt,
                                   __m256i *held) {
    __m256i d;
    *xt = use_tau ? _mm256_and_si256(v, _mm256_cmpgt_epi16(_mm256_abs_epi16(v), tau)) : v;
    d = _mm256_sub_epi16(*xt, rp);
    *m = ek_sent16x16(d, theta, ntheta);
    *held = _mm256_add_epi16(closed ? rp : yp, _mm256_and_si256(d, *m));
    return _mm256_abs_epi16(_mm256_sub_epi16(v, *held));
}

/* Line results of ek_line16_avx2: events, sum [sent] * cp, max|X - Y|, sum X^2, sum (X - Y)^2. */
typedef struct {
    int32_t ev, sp, xsq;
    int16_t emax;
    int64_t esq;
} ek_line16;

/* One line of a lossy line delta over n int16 lanes (the vector form of the lossy loops of
 * ek_line_chunk, kernels_state_impl.h, on 16-bit state): X in xl, sender reference r,
 * consumer's sum y (open loop only). Closed loop: r advances by the sent deltas; open
 * loop: y does and r keeps the thresholded X. The lanes accumulate events in int16
 * (n < 2^15), cover sums, X^2 and (X - Y)^2 in int32 (pmaddwd); (X - Y)^2 is flushed to
 * int64 every `flush` vectors, so that no int32 lane wraps (the caller bounds |X - Y|; a
 * lane takes two squares per vector).
 * The n % 16 last lanes take the scalar step. Always inlined with constant closed and
 * use_tau, so that each gives its own loop. */
__attribute__((target("avx2"), always_inline))
static inline void ek_line16_body(const int16_t *restrict xl, int16_t *restrict r, int16_t *restrict y,
                                  const int16_t *restrict cp, ptrdiff_t n, int16_t tau, int16_t theta,
                                  int closed, int use_tau, ptrdiff_t flush, ek_line16 *out) {
    const __m256i vth = _mm256_set1_epi16(theta), vnth = _mm256_set1_epi16((int16_t)-theta);
    const __m256i vtau = _mm256_set1_epi16(tau), one = _mm256_set1_epi16(1);
    __m256i aev = _mm256_setzero_si256(), asp = aev, axs = aev, amx = aev;
    ptrdiff_t p = 0, n16 = n & ~(ptrdiff_t)15, q;
    int32_t ev, sp, xsq;
    int16_t em;
    int64_t esq = 0;
    while (p < n16) {
        ptrdiff_t p1 = n16 - p > 16 * flush ? p + 16 * flush : n16;
        __m256i aes = _mm256_setzero_si256();
        for (; p < p1; p += 16) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(xl + p)), m, xt, held;
            __m256i e = ek_step16x16(v, _mm256_loadu_si256((const __m256i *)(r + p)),
                                     closed ? v : _mm256_loadu_si256((const __m256i *)(y + p)), vth, vnth,
                                     vtau, closed, use_tau, &m, &xt, &held);
            if (closed) {
                _mm256_storeu_si256((__m256i *)(r + p), held);
            } else {
                _mm256_storeu_si256((__m256i *)(y + p), held);
                _mm256_storeu_si256((__m256i *)(r + p), xt);
            }
            aev = _mm256_sub_epi16(aev, m);
            asp = _mm256_add_epi32(asp, _mm256_madd_epi16(_mm256_and_si256(m, _mm256_loadu_si256((const __m256i *)(cp + p))), one));
            amx = _mm256_max_epi16(amx, e);
            axs = _mm256_add_epi32(axs, _mm256_madd_epi16(v, v));
            aes = _mm256_add_epi32(aes, _mm256_madd_epi16(e, e));
        }
        esq += ek_hsum32x8_64(aes);
    }
    ev = ek_hsum32x8(_mm256_madd_epi16(aev, one));
    sp = ek_hsum32x8(asp);
    xsq = ek_hsum32x8(axs);
    em = ek_hmax16x16(amx);
    for (q = n16; q < n; q++) {     /* the scalar step on the last lanes */
        int16_t v = xl[q];
        int16_t a = v < 0 ? (int16_t)-v : v;
        int16_t xt = use_tau ? (a > tau ? v : 0) : v;
        int16_t d = (int16_t)(xt - r[q]);
        int16_t nz = (int16_t)ek_sent(d, theta, (int16_t)-theta);
        int16_t held = (int16_t)((closed ? r[q] : y[q]) + (nz ? d : 0));
        int16_t e = (int16_t)(v - held);
        if (closed) {
            r[q] = held;
        } else {
            y[q] = held;
            r[q] = xt;
        }
        e = e < 0 ? (int16_t)-e : e;
        ev += nz;
        sp += nz * cp[q];
        em = e > em ? e : em;
        xsq += (int32_t)v * v;
        esq += (int32_t)e * e;
    }
    out->ev = ev;
    out->sp = sp;
    out->xsq = xsq;
    out->emax = em;
    out->esq = esq;
}

/* ek_line16_body with constant closed and use_tau; ebound bounds |X - Y| of the line. */
__attribute__((target("avx2")))
static void ek_line16_avx2(const int16_t *restrict xl, int16_t *restrict r, int16_t *restrict y,
                           const int16_t *restrict cp, ptrdiff_t n, int16_t tau, int16_t theta,
                           int closed, int32_t ebound, ek_line16 *out) {
    int64_t pair = 2 * (int64_t)ebound * ebound;
    ptrdiff_t flush = pair > 0 ? (ptrdiff_t)(INT32_MAX / pair) : n;
    if (flush < 1) flush = 1;
    if (closed && tau == 0) ek_line16_body(xl, r, y, cp, n, 0, theta, 1, 0, flush, out);
    else if (closed) ek_line16_body(xl, r, y, cp, n, tau, theta, 1, 1, flush, out);
    else if (tau == 0) ek_line16_body(xl, r, y, cp, n, 0, theta, 0, 0, flush, out);
    else ek_line16_body(xl, r, y, cp, n, tau, theta, 0, 1, flush, out);
}
#endif

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

/* Exact sum of squares of n int16 values with |v| <= amax: int32 when it
 * cannot wrap, int64 otherwise. */
static inline int64_t ek_sumsq16(const int16_t *restrict v, ptrdiff_t n, int32_t amax) {
    ptrdiff_t i;
    if ((int64_t)amax * amax * n < 2147483647LL) {
        int32_t acc = 0;
        for (i = 0; i < n; i++) acc += (int32_t)v[i] * v[i];
        return acc;
    } else {
        int64_t acc = 0;
        for (i = 0; i < n; i++) acc += (int64_t)v[i] * v[i];
        return acc;
    }
}

/* Gather line `src` of C planes (stride `plane`) into xl (of type T) as
 * X = code - zp; NP is a constant for the short lines of small feature maps. */
#define EK_GATHER(NP, T)                                                      \
    for (c = 0; c < C; c++)                                                   \
        for (p = 0; p < (NP); p++)                                            \
            xl[c * (NP) + p] = (T)((T)src[c * plane + p] - (T)zp)

/* Per-line sums of a (H, W) plane of non-negative counts with non-negative weights
 * (both < 2^32, so the products are taken unsigned 32 x 32 -> 64, which vectorizes):
 * axis 0, lines are rows: ev[y] = sum_x a, sp[y] = sum_x a * w[x]; axis 1, lines are
 * columns: ev[x] = sum_y a, sp[x] = sum_y a * w[y], read row by row. */
EK_CLONES
static void ek_line_sums(const int32_t *restrict a, ptrdiff_t H, ptrdiff_t W, int axis,
                         const uint32_t *restrict w, int64_t *restrict ev, int64_t *restrict sp) {
    ptrdiff_t y, x;
    if (axis == 0) {
        for (y = 0; y < H; y++) {
            const uint32_t *restrict row = (const uint32_t *)(a + y * W);
            int64_t e = 0;
            uint64_t s = 0;
            for (x = 0; x < W; x++) {
                e += row[x];
                s += (uint64_t)row[x] * w[x];
            }
            ev[y] = e;
            sp[y] = (int64_t)s;
        }
        return;
    }
    for (x = 0; x < W; x++) ev[x] = sp[x] = 0;
    for (y = 0; y < H; y++) {
        const uint32_t *restrict row = (const uint32_t *)(a + y * W);
        uint64_t wy = w[y];
        for (x = 0; x < W; x++) {
            ev[x] += row[x];
            sp[x] += (int64_t)(row[x] * wy);
        }
    }
}

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

/* Float32 values of C planes of N signed codes, v * scale in double: out in the same
 * (C, N) order, or (to_last) with the planes' axis moved last, (N, C) -- the layout of
 * a runtime that keeps channels last -- in tiles of 64 positions. */
static inline float ek_value(int32_t v, double scale) { return (float)((double)v * scale); }

EK_CLONES
static void ek_dequantize(const int32_t *restrict v, ptrdiff_t C, ptrdiff_t N, double scale,
                          float *restrict out, int to_last) {
    ptrdiff_t i, c, p, p0;
    if (!to_last) {
        for (i = 0; i < C * N; i++) out[i] = ek_value(v[i], scale);
        return;
    }
    for (p0 = 0; p0 < N; p0 += 64) {
        ptrdiff_t p1 = p0 + 64 < N ? p0 + 64 : N;
        for (c = 0; c < C; c++) {
            const int32_t *restrict vc = v + c * N;
            for (p = p0; p < p1; p++) out[p * C + c] = ek_value(vc[p], scale);
        }
    }
}

#define CODE_T int8_t
#define EK_LOAD8(p) _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p)))
#define EK_LOAD8W(p) _mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(p)))
#define EK_LOAD16W(p) _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(p)))
#define EK_SUF(name) name##_i8
#define EK_NARROW 1
#include "kernels_core_impl.h"
#undef CODE_T
#undef EK_SUF
#undef EK_NARROW

#undef EK_LOAD8
#undef EK_LOAD8W
#undef EK_LOAD16W
#define CODE_T uint8_t
#define EK_LOAD8(p) _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p)))
#define EK_LOAD8W(p) _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)(p)))
#define EK_LOAD16W(p) _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(p)))
#define EK_SUF(name) name##_u8
#define EK_NARROW 1
#include "kernels_core_impl.h"
#undef CODE_T
#undef EK_SUF
#undef EK_NARROW

#undef EK_LOAD8
#undef EK_LOAD8W
#undef EK_LOAD16W
#define CODE_T int16_t
#define EK_LOAD8(p) _mm256_cvtepi16_epi32(_mm_loadu_si128((const __m128i *)(p)))
#define EK_LOAD8W(p) _mm_loadu_si128((const __m128i *)(p))
#define EK_LOAD16W(p) _mm256_loadu_si256((const __m256i *)(p))
#define EK_SUF(name) name##_i16
#define EK_NARROW 1   /* 16-bit state for the int16 transposes of 8-bit codes only */
#include "kernels_core_impl.h"
#undef CODE_T
#undef EK_SUF
#undef EK_NARROW

#undef EK_LOAD8
#undef EK_LOAD8W
#undef EK_LOAD16W
#define CODE_T uint16_t
#define EK_LOAD8(p) _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p)))
#define EK_LOAD8W(p) _mm_loadu_si128((const __m128i *)(p))   /* wraps above 32767: never narrow */
#define EK_LOAD16W(p) _mm256_loadu_si256((const __m256i *)(p))
#define EK_SUF(name) name##_u16
#define EK_NARROW 0
#include "kernels_core_impl.h"
#undef CODE_T
#undef EK_SUF
#undef EK_NARROW

#undef EK_LOAD8
#undef EK_LOAD8W
#undef EK_LOAD16W
#define CODE_T int32_t
#define EK_LOAD8(p) _mm256_loadu_si256((const __m256i *)(p))
#define EK_LOAD8W(p) _mm_packs_epi32(_mm_loadu_si128((const __m128i *)(p)), _mm_loadu_si128((const __m128i *)(p) + 1))
#define EK_LOAD16W(p) _mm256_permute4x64_epi64(_mm256_packs_epi32(_mm256_loadu_si256((const __m256i *)(p)), _mm256_loadu_si256((const __m256i *)(p) + 1)), 0xd8)
#define EK_SUF(name) name##_i32
#define EK_NARROW 1
#include "kernels_core_impl.h"
#undef CODE_T
#undef EK_SUF
#undef EK_NARROW

/* One entry point per kernel over every code type: `kind` names the type of
 * the codes `x` (kernels.pyx derives it from its fused type) and picks the
 * instance above. */
enum { EK_I8, EK_U8, EK_I16, EK_U16, EK_I32 };

#define EK_CAST(T, p) ((const T *)(p))
#define EK_ENTRY(name, params, ...)                                               \
    static inline void name params {                                              \
        switch (kind) {                                                           \
        case EK_I8: name##_i8(EK_CAST(int8_t, x), __VA_ARGS__); break;            \
        case EK_U8: name##_u8(EK_CAST(uint8_t, x), __VA_ARGS__); break;           \
        case EK_I16: name##_i16(EK_CAST(int16_t, x), __VA_ARGS__); break;         \
        case EK_U16: name##_u16(EK_CAST(uint16_t, x), __VA_ARGS__); break;        \
        default: name##_i32(EK_CAST(int32_t, x), __VA_ARGS__); break;             \
        }                                                                         \
    }

EK_ENTRY(ek_conventional, (int kind, const void *x, int32_t zp, ptrdiff_t C, ptrdiff_t N, int32_t tau,
                           int32_t *cnt, ek_err *err, int32_t *out),
         zp, C, N, tau, cnt, err, out)
EK_ENTRY(ek_temporal, (int kind, const void *x, int32_t zp, ptrdiff_t n, ptrdiff_t off, ptrdiff_t N,
                       int32_t theta, int closed, int32_t tau, int32_t *ref, int32_t *rec,
                       int32_t *cnt, ek_err *err, int32_t *out),
         zp, n, off, N, theta, closed, tau, ref, rec, cnt, err, out)
/* The same over 16-bit state (kernels_state_impl.h): codes of 8 bits, or int16 /
 * int32 codes of 8-bit values (transposes); any other kind does nothing. */
#define EK_ENTRY16(name, params, ...)                                             \
    static inline void name params {                                              \
        switch (kind) {                                                           \
        case EK_I8: name##_i8(EK_CAST(int8_t, x), __VA_ARGS__); break;            \
        case EK_U8: name##_u8(EK_CAST(uint8_t, x), __VA_ARGS__); break;           \
        case EK_I16: name##_i16(EK_CAST(int16_t, x), __VA_ARGS__); break;         \
        case EK_I32: name##_i32(EK_CAST(int32_t, x), __VA_ARGS__); break;         \
        default: break;                                                           \
        }                                                                         \
    }
EK_ENTRY16(ek_temporal16, (int kind, const void *x, int32_t zp, ptrdiff_t n, ptrdiff_t off, ptrdiff_t N,
                           int32_t theta, int closed, int32_t tau, int16_t *ref, int16_t *rec,
                           int32_t *cnt, ek_err *err, int32_t *out),
           zp, n, off, N, theta, closed, tau, ref, rec, cnt, err, out)
EK_ENTRY16(ek_line_frame16, (int kind, const void *x, int32_t zp, ptrdiff_t C, ptrdiff_t n_real,
                             ptrdiff_t npos, int reverse, int prefetch, const int64_t *cover_line,
                             ptrdiff_t L, ptrdiff_t s, const int16_t *cp, int32_t theta, int closed,
                             int32_t tau, int16_t *ref, int16_t *rec, int16_t *xl, int16_t *eb,
                             int64_t *line_ev, int64_t *line_sp, ek_err *err, int32_t *out),
           zp, C, n_real, npos, reverse, prefetch, cover_line, L, s, cp, theta, closed, tau, ref, rec,
           xl, eb, line_ev, line_sp, err, out)
/* Whether the AVX2 loops on 16-bit state run on this CPU. */
static inline int ek_vec16(void) {
#if EK_X86_AVX2
    return ek_have_avx2();
#else
    return 0;
#endif
}

/* ek_line_frame_thresholds on 16-bit state in AVX2 (codes of 8 bits, or their int16
 * transposes); returns 0 when it did nothing (another CPU or kind). The caller decides
 * before the frames (ek_vec16 and the 16-bit bounds), so that it never returns 0 there. */
#if EK_X86_AVX2
#define EK_LFT16(suf, T) ek_line_frame_thresholds_vec16_##suf(EK_CAST(T, x), zp, C, n_real, npos, reverse, \
        prefetch, cover_line, L, s, cp, thetas, NT, closed, tau, states, xl, ev_out, sp_out, emax_out,  \
        esq_out, xsq_out, with_error)
#endif
static inline int ek_line_frame_thresholds16(int kind, const void *x, int32_t zp, ptrdiff_t C, ptrdiff_t n_real,
                                             ptrdiff_t npos, int reverse, int prefetch,
                                             const int64_t *cover_line, ptrdiff_t L, ptrdiff_t s,
                                             const int16_t *cp, const int32_t *thetas, ptrdiff_t NT,
                                             int closed, int32_t tau, int16_t *states, int16_t *xl,
                                             int64_t *ev_out, int64_t *sp_out, int32_t *emax_out,
                                             int64_t *esq_out, int64_t *xsq_out, int with_error) {
#if EK_X86_AVX2
    if (!ek_have_avx2()) return 0;
    switch (kind) {
    case EK_I8: EK_LFT16(i8, int8_t); return 1;
    case EK_U8: EK_LFT16(u8, uint8_t); return 1;
    case EK_I16: EK_LFT16(i16, int16_t); return 1;
    case EK_I32: EK_LFT16(i32, int32_t); return 1;
    default: return 0;
    }
#else
    return 0;
#endif
}
EK_ENTRY(ek_line_frame, (int kind, const void *x, int32_t zp, ptrdiff_t C, ptrdiff_t n_real,
                         ptrdiff_t npos, int reverse, int prefetch, const int64_t *cover_line,
                         ptrdiff_t L, ptrdiff_t s, const int32_t *cp, int32_t theta, int closed,
                         int32_t tau, int32_t *ref, int32_t *rec, int32_t *xl, int32_t *eb,
                         int64_t *line_ev, int64_t *line_sp, ek_err *err, int32_t *out),
         zp, C, n_real, npos, reverse, prefetch, cover_line, L, s, cp, theta, closed, tau, ref, rec,
         xl, eb, line_ev, line_sp, err, out)
EK_ENTRY(ek_transpose, (int kind, const void *x, int32_t zp, ptrdiff_t n_rows, ptrdiff_t n_cols,
                        int32_t *dst),
         zp, n_rows, n_cols, dst)
EK_ENTRY(ek_transpose16, (int kind, const void *x, int32_t zp, ptrdiff_t n_rows, ptrdiff_t n_cols,
                          int16_t *dst),
         zp, n_rows, n_cols, dst)
EK_ENTRY(ek_pair_counts, (int kind, const void *x, int32_t zp, ptrdiff_t C, ptrdiff_t N, ptrdiff_t k,
                          ptrdiff_t nz_lo, ptrdiff_t nz_hi, int32_t *pair, int32_t *nzc),
         zp, C, N, k, nz_lo, nz_hi, pair, nzc)
EK_ENTRY(ek_temporal_thresholds, (int kind, const void *x, int32_t zp, ptrdiff_t nb,
                                  const int32_t *thetas, ptrdiff_t T, int closed, int32_t tau,
                                  int32_t *states, const int32_t *fan, int64_t *ev_out,
                                  int64_t *sp_out, int32_t *emax_out, int64_t *esq_out,
                                  int64_t *xsq_out, const int32_t *lut, int32_t amax, int64_t *hc,
                                  int64_t *hs, int32_t *hl, int with_error),
         zp, nb, thetas, T, closed, tau, states, fan, ev_out, sp_out, emax_out, esq_out, xsq_out,
         lut, amax, hc, hs, hl, with_error)
EK_ENTRY(ek_line_frame_thresholds, (int kind, const void *x, int32_t zp, ptrdiff_t C, ptrdiff_t n_real,
                                    ptrdiff_t npos, int reverse, int prefetch, const int64_t *cover_line,
                                    ptrdiff_t L, ptrdiff_t s, const int32_t *cp,
                                    const int32_t *thetas, ptrdiff_t T, int closed, int32_t tau,
                                    int32_t *states, int32_t *xl, int32_t *xtl, int32_t *eb,
                                    int64_t *ev_out, int64_t *sp_out, int32_t *emax_out,
                                    int64_t *esq_out, int64_t *xsq_out, const int32_t *lut,
                                    int32_t amax, int64_t *hc, int64_t *hs, int32_t *hl,
                                    int with_error),
         zp, C, n_real, npos, reverse, prefetch, cover_line, L, s, cp, thetas, T, closed, tau, states,
         xl, xtl, eb, ev_out, sp_out, emax_out, esq_out, xsq_out, lut, amax, hc, hs, hl, with_error)

/* frame_diff reads two code arrays of one type */
#define EK_FRAME_DIFF(T, suf) ek_frame_diff_##suf(EK_CAST(T, cur), EK_CAST(T, prev), C, N, cnt)
static inline void ek_frame_diff(int kind, const void *cur, const void *prev, ptrdiff_t C, ptrdiff_t N,
                                 int32_t *cnt) {
    switch (kind) {
    case EK_I8: EK_FRAME_DIFF(int8_t, i8); break;
    case EK_U8: EK_FRAME_DIFF(uint8_t, u8); break;
    case EK_I16: EK_FRAME_DIFF(int16_t, i16); break;
    case EK_U16: EK_FRAME_DIFF(uint16_t, u16); break;
    default: EK_FRAME_DIFF(int32_t, i32); break;
    }
}

#endif
