/* One instantiation of the hot loops for codes of type CODE_T (see kernels_core.h).
 * Included several times; no include guard on purpose. */

/* Add the per-element flags nzb[0..nb) of a flat block starting at element i0
 * of a (C, N) frame to the per-position counts cnt[0..N). */
static inline void EK_SUF(ek_add_counts)(const int32_t *restrict nzb, ptrdiff_t nb, ptrdiff_t i0,
                                         ptrdiff_t N, int32_t *restrict cnt) {
    ptrdiff_t p = 0, j = i0 % N;
    while (p < nb) {
        ptrdiff_t run = N - j < nb - p ? N - j : nb - p, q;
        for (q = 0; q < run; q++) cnt[j + q] += nzb[p + q];
        p += run;
        j = 0;
    }
}

/* Per-position counts over channels in 8-bit accumulators: for positions
 * j in [j_lo, j_hi) of a frame of C planes of N codes, cnt[j] += number of
 * channels c with a[c, j] != b[c, j], where b is `other` (same layout) or,
 * when other is NULL, the constant code zp. Positions are taken in tiles of
 * EK_TILE and channels in runs of 255 so that the uint8 counters cannot wrap;
 * the compare-and-add runs on whole vectors of codes as stored. */
#ifndef EK_TILE
#define EK_TILE 4096
#endif
EK_CLONES
static void EK_SUF(ek_count_ne)(const CODE_T *restrict a, const CODE_T *restrict other, int32_t zp,
                                ptrdiff_t C, ptrdiff_t N, ptrdiff_t j_lo, ptrdiff_t j_hi,
                                int32_t *restrict cnt) {
    uint8_t acc[EK_TILE];
    ptrdiff_t j0, c0, c, j;
    const CODE_T z = (CODE_T)zp;
    if (!other && (int32_t)z != zp) {  /* zp is no code: every code differs from it */
        for (j = j_lo; j < j_hi; j++) cnt[j] += (int32_t)C;
        return;
    }
    for (j0 = j_lo; j0 < j_hi; j0 += EK_TILE) {
        ptrdiff_t nb = j_hi - j0 < EK_TILE ? j_hi - j0 : EK_TILE;
        for (c0 = 0; c0 < C; c0 += 255) {
            ptrdiff_t c1 = C - c0 < 255 ? C : c0 + 255;
            memset(acc, 0, (size_t)nb);
            if (other) {
                for (c = c0; c < c1; c++) {
                    const CODE_T *restrict ac = a + c * N + j0, *restrict bc = other + c * N + j0;
                    for (j = 0; j < nb; j++) acc[j] += ac[j] != bc[j];
                }
            } else {
                for (c = c0; c < c1; c++) {
                    const CODE_T *restrict ac = a + c * N + j0;
                    for (j = 0; j < nb; j++) acc[j] += ac[j] != z;
                }
            }
            for (j = 0; j < nb; j++) cnt[j0 + j] += acc[j];
        }
    }
}

/* In every function X = code - zp is formed on load (zp = 0 for signed codes). */

/* Conventional over one frame of C*N contiguous codes (C planes of N positions).
 * cnt[j] += number of channels with |x| > tau at j; error of tau into err.
 * out (C*N, or NULL): the reconstruction, X with |X| <= tau zeroed. */
EK_CLONES
static void EK_SUF(ek_conventional)(const CODE_T *restrict x, int32_t zp, ptrdiff_t C, ptrdiff_t N, int32_t tau,
                                    int32_t *restrict cnt, ek_err *restrict err, int32_t *restrict out) {
    int32_t xb[EK_BLOCK], eb[EK_BLOCK], nzb[EK_BLOCK];
    ptrdiff_t n = C * N, i0, p, nb;
    if (tau == 0) {  /* lossless: events are the codes != zp, no error */
        EK_SUF(ek_count_ne)(x, NULL, zp, C, N, 0, N, cnt);
        if (out)
            for (p = 0; p < n; p++) out[p] = (int32_t)x[p] - zp;
        return;
    }
    for (i0 = 0; i0 < n; i0 += EK_BLOCK) {
        int32_t xmax = 0, emax = 0;
        nb = n - i0 < EK_BLOCK ? n - i0 : EK_BLOCK;
        for (p = 0; p < nb; p++) {
            int32_t v = (int32_t)x[i0 + p] - zp;
            int32_t a = v < 0 ? -v : v;
            int32_t keep = a > tau;
            int32_t e = keep ? 0 : a;
            xb[p] = v;
            xmax = a > xmax ? a : xmax;
            nzb[p] = keep;
            eb[p] = e;
            emax = e > emax ? e : emax;
        }
        EK_SUF(ek_add_counts)(nzb, nb, i0, N, cnt);
        err->xsq += ek_sumsq(xb, nb, xmax);
        err->esq += ek_sumsq(eb, nb, emax);
        if (emax > err->emax) err->emax = emax;
        if (out)
            for (p = 0; p < nb; p++) out[i0 + p] = nzb[p] ? xb[p] : 0;
    }
}

/* Before line h of a scan over C planes (stride `plane`) of n_real rows of npos
 * codes: a line reads one short row in each plane, more streams than the hardware
 * prefetchers follow, so the rows of the lines EK_AHEAD ahead are prefetched; rows
 * that share cache lines (short rows) once for every 64 bytes of lines. */
static inline void EK_SUF(ek_prefetch_lines)(const CODE_T *restrict x, ptrdiff_t h, ptrdiff_t n_real,
                                             ptrdiff_t npos, int reverse, ptrdiff_t C, ptrdiff_t plane) {
    const ptrdiff_t row_bytes = npos * (ptrdiff_t)sizeof(CODE_T), step = 64 / (ptrdiff_t)sizeof(CODE_T);
    const ptrdiff_t every = row_bytes >= 64 || row_bytes <= 0 ? 1 : 64 / row_bytes, first = h + EK_AHEAD;
    ptrdiff_t k, lo, len, c, j;
    if (h % every != 0 || first >= n_real) return;
    k = n_real - first < every ? n_real - first : every;      /* lines first .. first + k - 1 */
    lo = (reverse ? n_real - first - k : first) * npos;
    len = k * npos;
    for (c = 0; c < C; c++) {
        const CODE_T *restrict src = x + c * plane + lo;
        for (j = 0; j < len; j += step) __builtin_prefetch(src + j);
        __builtin_prefetch(src + len - 1);
    }
}

/* The stateful loops: 32-bit state for every code type, 16-bit state where
 * values fit (8-bit codes, and the int16 / int32 transposes of 8-bit codes). */
#define EK_ST int32_t
#define EK_SQ int64_t
#define EK_SS(name) EK_SUF(name)
#define EK_SUMSQ(v, n, amax) ek_sumsq(v, n, amax)
#include "kernels_state_impl.h"
#undef EK_ST
#undef EK_SQ
#undef EK_SS
#undef EK_SUMSQ
#if EK_NARROW
#define EK_ST int16_t
#define EK_SQ int32_t
#define EK_SS(name) EK_SUF(name##16)
#define EK_SUMSQ(v, n, amax) ek_sumsq16(v, n, amax)
#define EK_VEC16 EK_X86_AVX2   /* the AVX2 loops on 16-bit state (ek_line16_avx2, ek_temporal_vec) */
#include "kernels_state_impl.h"
#undef EK_VEC16
#undef EK_ST
#undef EK_SQ
#undef EK_SS
#undef EK_SUMSQ
#endif

/* Lossless line deltas without state: over one frame of C planes of N codes,
 * pair[j] += [x_j != x_{j-k}] for j >= k (k = s*W: rows s apart; k = s:
 * columns s apart, the caller ignores the x < s positions that pair across
 * rows) and nzc[j] += [x_j != zp] for j < nz_lo or j >= nz_hi (the lines
 * without a reference and the lines the bottom padding references; other
 * entries of nzc are left as they are). Codes are compared as stored: with a
 * lossless delta X_h != X_{h-s} iff the codes differ (the zero point cancels).
 * The range j in [k, N) is read as the plane shifted by k against itself. */
static void EK_SUF(ek_pair_counts)(const CODE_T *restrict x, int32_t zp, ptrdiff_t C, ptrdiff_t N,
                                   ptrdiff_t k, ptrdiff_t nz_lo, ptrdiff_t nz_hi,
                                   int32_t *restrict pair, int32_t *restrict nzc) {
    if (k < N) EK_SUF(ek_count_ne)(x + k, x, zp, C, N, 0, N - k, pair + k);
    if (nz_lo > N) nz_lo = N;
    if (nz_hi < nz_lo) nz_hi = nz_lo;
    if (nz_lo > 0) EK_SUF(ek_count_ne)(x, NULL, zp, C, N, 0, nz_lo, nzc);
    if (nz_hi < N) EK_SUF(ek_count_ne)(x, NULL, zp, C, N, nz_hi, N, nzc);
}

/* Lossless temporal delta without state: cnt[j] += number of channels where
 * frame f differs from frame f-1 (codes compared as stored). */
static void EK_SUF(ek_frame_diff)(const CODE_T *restrict cur, const CODE_T *restrict prev,
                                  ptrdiff_t C, ptrdiff_t N, int32_t *restrict cnt) {
    EK_SUF(ek_count_ne)(cur, prev, 0, C, N, 0, N, cnt);
}

/* Histogram of |d| over n deltas (open-loop event curves): bin = lut[min(|d|, amax)];
 * hc[bin] += 1, hs[bin] += w[p] (T+1 bins each; hl: 8*EK_HSTRIDE(T) int32 scratch). The
 * bins are formed in a vectorizable pass; the scatter goes to 4 interleaved
 * sub-histograms so that runs of equal bins do not serialize on one counter. */
static inline void EK_SUF(ek_hist_add)(const int32_t *restrict d, ptrdiff_t n, const int32_t *restrict lut,
                                       int32_t amax, const int32_t *restrict w, int32_t *restrict bins,
                                       ptrdiff_t T, int32_t *restrict hl, int64_t *restrict hc,
                                       int64_t *restrict hs, int64_t mult) {
    ptrdiff_t p, b, V = T + 1, S = EK_HSTRIDE(T);
    int32_t *restrict c0 = hl, *restrict c1 = hl + S, *restrict c2 = hl + 2 * S, *restrict c3 = hl + 3 * S;
    int32_t *restrict s0 = hl + 4 * S, *restrict s1 = hl + 5 * S, *restrict s2 = hl + 6 * S,
            *restrict s3 = hl + 7 * S;
    memset(hl, 0, (size_t)(8 * S) * sizeof(int32_t));
    for (p = 0; p < n; p++) {
        int32_t a = d[p] < 0 ? -d[p] : d[p];
        bins[p] = lut[a < amax ? a : amax];
    }
    for (p = 0; p + 4 <= n; p += 4) {
        int32_t b0 = bins[p], b1 = bins[p + 1], b2 = bins[p + 2], b3 = bins[p + 3];
        c0[b0] += 1; s0[b0] += w[p];
        c1[b1] += 1; s1[b1] += w[p + 1];
        c2[b2] += 1; s2[b2] += w[p + 2];
        c3[b3] += 1; s3[b3] += w[p + 3];
    }
    for (; p < n; p++) {
        c0[bins[p]] += 1;
        s0[bins[p]] += w[p];
    }
    for (b = 0; b < V; b++) {
        hc[b] += (int64_t)c0[b] + c1[b] + c2[b] + c3[b];
        hs[b] += ((int64_t)s0[b] + s1[b] + s2[b] + s3[b]) * mult;
    }
}

/* Temporal delta of one block of nb <= EK_BLOCK positions of one frame for T
 * thresholds at once (event curves): X is loaded once, every threshold keeps
 * its own state (states: 2*EK_BLOCK int32 per threshold: sender reference,
 * consumer sum). fan: fan-out per position (int32, checked by the caller not
 * to overflow a block sum). Closed loop: adds per threshold events, SOPs and
 * (with_error) error terms. Open loop: D = Xt_f - Xt_{f-1} does not depend on
 * theta; it is computed once (the sender reference of threshold 0 is shared).
 * with_error runs the consumer's recursion per threshold for the error and
 * counts events and SOPs on the way (cheaper than a scalar histogram when the
 * recursion runs anyway); without it D is only histogrammed (hc, hs: T+1 bins,
 * bin lut[min(|D|, amax)]) and events and SOPs of every threshold follow from
 * the histogram. hl: 8*EK_HSTRIDE(T) int32. */
EK_CLONES
static void EK_SUF(ek_temporal_thresholds)(const CODE_T *restrict x, int32_t zp, ptrdiff_t nb,
                                           const int32_t *restrict thetas, ptrdiff_t T, int closed,
                                           int32_t tau, int32_t *restrict states,
                                           const int32_t *restrict fan, int64_t *restrict ev_out,
                                           int64_t *restrict sp_out, int32_t *restrict emax_out,
                                           int64_t *restrict esq_out, int64_t *restrict xsq_out,
                                           const int32_t *restrict lut, int32_t amax,
                                           int64_t *restrict hc, int64_t *restrict hs,
                                           int32_t *restrict hl, int with_error) {
    int32_t xb[EK_BLOCK], xtb[EK_BLOCK], eb[EK_BLOCK];
    int32_t xmax = 0;
    ptrdiff_t p, t;
    for (p = 0; p < nb; p++) {
        int32_t v = (int32_t)x[p] - zp;
        int32_t a = v < 0 ? -v : v;
        xb[p] = v;
        xtb[p] = a > tau ? v : 0;
        xmax = a > xmax ? a : xmax;
    }
    if (with_error) *xsq_out += ek_sumsq(xb, nb, xmax);
    if (!closed) {
        int32_t *restrict r0 = states;  /* shared sender reference: Xt of the previous frame */
        for (p = 0; p < nb; p++) {
            int32_t xt = xtb[p];
            xtb[p] = xt - r0[p];  /* xtb now holds D */
            r0[p] = xt;
        }
        if (!with_error) {  /* events and SOPs of every threshold from the histogram */
            EK_SUF(ek_hist_add)(xtb, nb, lut, amax, fan, eb, T, hl, hc, hs, 1);
            return;
        }
        for (t = 0; t < T; t++) {  /* the error needs the recursion; count on the way */
            int32_t theta = thetas[t], ev = 0, sp = 0, emax = 0;
            int32_t *restrict y = states + (2 * t + 1) * EK_BLOCK;
            if (theta == 0 && tau == 0) {  /* lossless: Y = X */
                for (p = 0; p < nb; p++) {
                    int32_t nz = xtb[p] != 0;
                    ev += nz;
                    sp += nz ? fan[p] : 0;
                }
            } else {
                for (p = 0; p < nb; p++) {
                    int32_t d = xtb[p];
                    int32_t nz = ek_sent(d, theta, -theta);
                    int32_t yy = y[p] + (nz ? d : 0);
                    int32_t e = xb[p] - yy;
                    y[p] = yy;
                    ev += nz;
                    sp += nz ? fan[p] : 0;
                    e = e < 0 ? -e : e;
                    eb[p] = e;
                    emax = e > emax ? e : emax;
                }
            }
            ev_out[t] += ev;
            sp_out[t] += sp;
            if (emax > emax_out[t]) emax_out[t] = emax;
            if (emax) esq_out[t] += ek_sumsq(eb, nb, emax);
        }
        return;
    }
    for (t = 0; t < T; t++) {
        int32_t theta = thetas[t], ev = 0, sp = 0, emax = 0;
        int32_t *restrict r = states + 2 * t * EK_BLOCK;
        if (theta == 0 && tau == 0) {
            for (p = 0; p < nb; p++) {
                int32_t v = xb[p];
                int32_t nz = v != r[p];
                r[p] = v;
                ev += nz;
                sp += nz ? fan[p] : 0;
            }
        } else if (!with_error) {
            for (p = 0; p < nb; p++) {
                int32_t d = xtb[p] - r[p];
                int32_t nz = ek_sent(d, theta, -theta);
                r[p] += nz ? d : 0;
                ev += nz;
                sp += nz ? fan[p] : 0;
            }
        } else {
            for (p = 0; p < nb; p++) {
                int32_t d = xtb[p] - r[p];
                int32_t nz = ek_sent(d, theta, -theta);
                int32_t rr = r[p] + (nz ? d : 0);
                int32_t e = xb[p] - rr;
                r[p] = rr;
                ev += nz;
                sp += nz ? fan[p] : 0;
                e = e < 0 ? -e : e;
                eb[p] = e;
                emax = e > emax ? e : emax;
            }
        }
        ev_out[t] += ev;
        sp_out[t] += sp;
        if (emax > emax_out[t]) emax_out[t] = emax;
        if (emax) esq_out[t] += ek_sumsq(eb, nb, emax);
    }
}

/* ek_line_chunk for T thresholds at once (event curves): each needed line is
 * gathered once and run for every threshold while in L1. states: 2*s*C*npos
 * int32 per threshold (sender reference ring, consumer ring). Closed loop: adds
 * per threshold events, SOPs (times cover_line) and (with_error) error terms.
 * Open loop: D_h = Xt_h - Xt_{h-s} is shared by every threshold; with_error
 * runs the consumer's recursion per threshold and counts on the way, without it
 * D is only histogrammed (hc, hs: T+1 bins, bin lut[min(|D|, amax)], SOP weight
 * cp * cover_line), as in ek_temporal_thresholds. xsq once (with_error only). hl:
 * 8*EK_HSTRIDE(T) int32 scratch. prefetch: as in ek_line_chunk. */
EK_CLONES
static void EK_SUF(ek_line_chunk_thresholds)(const CODE_T *restrict x, int32_t zp, ptrdiff_t C,
                                             ptrdiff_t n_real, ptrdiff_t npos, int reverse, int prefetch,
                                             const int64_t *restrict cover_line, ptrdiff_t L,
                                             ptrdiff_t s, const int32_t *restrict cp,
                                             const int32_t *restrict thetas, ptrdiff_t T, int closed,
                                             int32_t tau, int32_t *restrict states,
                                             int32_t *restrict xl, int32_t *restrict xtl,
                                             int32_t *restrict eb, int64_t *restrict ev_out,
                                             int64_t *restrict sp_out, int32_t *restrict emax_out,
                                             int64_t *restrict esq_out, int64_t *restrict xsq_out,
                                             const int32_t *restrict lut, int32_t amax,
                                             int64_t *restrict hc, int64_t *restrict hs,
                                             int32_t *restrict hl, int with_error) {
    ptrdiff_t h, p, c, t, n = C * npos, ring = s * n;
    memset(states, 0, (size_t)((closed ? 2 * T : T + 1) * ring) * sizeof(int32_t));
    for (h = 0; h < L; h++) {
        int32_t xmax = 0;
        if (prefetch) EK_SUF(ek_prefetch_lines)(x, h, n_real, npos, reverse, C, n_real * npos);
        if (cover_line[h] == 0) continue;
        if (h < n_real) {
            const CODE_T *restrict src = x + (reverse ? n_real - 1 - h : h) * npos;
            ptrdiff_t plane = n_real * npos;
            switch (npos) {
            case 1: EK_GATHER(1, int32_t); break;
            case 2: EK_GATHER(2, int32_t); break;
            case 4: EK_GATHER(4, int32_t); break;
            case 8: EK_GATHER(8, int32_t); break;
            case 16: EK_GATHER(16, int32_t); break;
            default: EK_GATHER(npos, int32_t); break;
            }
        } else {
            memset(xl, 0, (size_t)n * sizeof(int32_t));
        }
        for (p = 0; p < n; p++) {
            int32_t v = xl[p];
            int32_t a = v < 0 ? -v : v;
            xtl[p] = a > tau ? v : 0;
            xmax = a > xmax ? a : xmax;
        }
        if (with_error) *xsq_out += ek_sumsq(xl, n, xmax);
        if (!closed) {  /* open loop: the sender's reference (Xt of line h-s) is shared */
            int32_t *restrict r0 = states + (h % s) * n;
            for (p = 0; p < n; p++) {
                int32_t xt = xtl[p];
                xtl[p] = xt - r0[p];  /* xtl now holds D_h */
                r0[p] = xt;
            }
            if (!with_error) {  /* events and SOPs of every threshold from the histogram */
                EK_SUF(ek_hist_add)(xtl, n, lut, amax, cp, eb, T, hl, hc, hs, cover_line[h]);
                continue;
            }
            for (t = 0; t < T; t++) {  /* the error needs the recursion; count on the way */
                int32_t theta = thetas[t], ev = 0, spi = 0, emax = 0;
                int32_t *restrict y = states + (1 + t) * ring + (h % s) * n;
                if (theta == 0 && tau == 0) {  /* lossless: Y = X */
                    for (p = 0; p < n; p++) {
                        int32_t nz = xtl[p] != 0;
                        ev += nz;
                        spi += nz ? cp[p] : 0;
                    }
                } else {
                    for (p = 0; p < n; p++) {
                        int32_t d = xtl[p];
                        int32_t nz = ek_sent(d, theta, -theta);
                        int32_t yy = y[p] + (nz ? d : 0);
                        int32_t e = xl[p] - yy;
                        y[p] = yy;
                        ev += nz;
                        spi += nz ? cp[p] : 0;
                        e = e < 0 ? -e : e;
                        eb[p] = e;
                        emax = e > emax ? e : emax;
                    }
                }
                ev_out[t] += ev;
                sp_out[t] += (int64_t)spi * cover_line[h];
                if (emax > emax_out[t]) emax_out[t] = emax;
                if (emax) esq_out[t] += ek_sumsq(eb, n, emax);
            }
            continue;
        }
        for (t = 0; t < T; t++) {
            int32_t theta = thetas[t], ev = 0, spi = 0, emax = 0;
            int32_t *restrict r = states + 2 * t * ring + (h % s) * n;
            if (theta == 0 && tau == 0) {
                for (p = 0; p < n; p++) {
                    int32_t v = xl[p];
                    int32_t nz = v != r[p];
                    r[p] = v;
                    ev += nz;
                    spi += nz ? cp[p] : 0;
                }
            } else if (!with_error) {
                for (p = 0; p < n; p++) {
                    int32_t d = xtl[p] - r[p];
                    int32_t nz = ek_sent(d, theta, -theta);
                    r[p] += nz ? d : 0;
                    ev += nz;
                    spi += nz ? cp[p] : 0;
                }
            } else {
                for (p = 0; p < n; p++) {
                    int32_t d = xtl[p] - r[p];
                    int32_t nz = ek_sent(d, theta, -theta);
                    int32_t rr = r[p] + (nz ? d : 0);
                    int32_t e = xl[p] - rr;
                    r[p] = rr;
                    ev += nz;
                    spi += nz ? cp[p] : 0;
                    e = e < 0 ? -e : e;
                    eb[p] = e;
                    emax = e > emax ? e : emax;
                }
            }
            ev_out[t] += ev;
            sp_out[t] += (int64_t)spi * cover_line[h];
            if (emax > emax_out[t]) emax_out[t] = emax;
            if (emax) esq_out[t] += ek_sumsq(eb, n, emax);
        }
    }
}

/* One frame for T thresholds, channels in L1-sized chunks (see ek_line_frame);
 * states must hold 2*T*s*chunk*npos int32, xl/xtl/eb chunk*npos. */
static void EK_SUF(ek_line_frame_thresholds)(const CODE_T *restrict x, int32_t zp, ptrdiff_t C,
                                             ptrdiff_t n_real, ptrdiff_t npos, int reverse, int prefetch,
                                             const int64_t *restrict cover_line, ptrdiff_t L,
                                             ptrdiff_t s, const int32_t *restrict cp,
                                             const int32_t *restrict thetas, ptrdiff_t T, int closed,
                                             int32_t tau, int32_t *restrict states,
                                             int32_t *restrict xl, int32_t *restrict xtl,
                                             int32_t *restrict eb, int64_t *restrict ev_out,
                                             int64_t *restrict sp_out, int32_t *restrict emax_out,
                                             int64_t *restrict esq_out, int64_t *restrict xsq_out,
                                             const int32_t *restrict lut, int32_t amax,
                                             int64_t *restrict hc, int64_t *restrict hs,
                                             int32_t *restrict hl, int with_error) {
    ptrdiff_t chunk = EK_BLOCK / (npos > 0 ? npos : 1), c0;
    if (chunk < 1) chunk = 1;
    for (c0 = 0; c0 < C; c0 += chunk) {
        ptrdiff_t cc = C - c0 < chunk ? C - c0 : chunk;
        EK_SUF(ek_line_chunk_thresholds)(x + c0 * n_real * npos, zp, cc, n_real, npos, reverse,
                                         prefetch, cover_line, L, s, cp, thetas, T, closed, tau, states,
                                         xl, xtl, eb, ev_out, sp_out, emax_out, esq_out, xsq_out,
                                         lut, amax, hc, hs, hl, with_error);
    }
}

/* Transpose one (n_rows x n_cols) plane of codes into an (n_cols x n_rows) buffer of
 * X = code - zp, int32 or (narrow, for values that fit) int16, so that line deltas
 * along x run on contiguous columns: 8x8 AVX2 tiles where the CPU has AVX2, scalar
 * tiles otherwise. (The int32 instantiation serves the int32 codes of 16-bit
 * recordings.) */
#if EK_X86_AVX2
/* 8x8 tiles in int16 lanes: 8 rows of 8 codes as X, three rounds of unpacks, 8 columns
 * stored (8-bit codes; see EK_LOAD8W). */
__attribute__((target("avx2")))
static void EK_SUF(ek_transpose16_avx2)(const CODE_T *restrict src, int32_t zp, ptrdiff_t n_rows,
                                        ptrdiff_t n_cols, int16_t *restrict dst) {
    ptrdiff_t i0, j0, i, j;
    __m128i z = _mm_set1_epi16((int16_t)zp);
    for (i0 = 0; i0 + 8 <= n_rows; i0 += 8) {
        for (j0 = 0; j0 + 8 <= n_cols; j0 += 8) {
            const CODE_T *s0 = src + i0 * n_cols + j0;
            __m128i r[8], t[8], u[8];
            int16_t *d0 = dst + j0 * n_rows + i0;
            int k;
            for (k = 0; k < 8; k++) r[k] = _mm_sub_epi16(EK_LOAD8W(s0 + k * n_cols), z);
            for (k = 0; k < 4; k++) {   /* pairs of rows, interleaved */
                t[2 * k] = _mm_unpacklo_epi16(r[2 * k], r[2 * k + 1]);
                t[2 * k + 1] = _mm_unpackhi_epi16(r[2 * k], r[2 * k + 1]);
            }
            for (k = 0; k < 2; k++) {   /* quads of rows: columns 2m, 2m+1 in u[4k + m] */
                u[4 * k] = _mm_unpacklo_epi32(t[4 * k], t[4 * k + 2]);
                u[4 * k + 1] = _mm_unpackhi_epi32(t[4 * k], t[4 * k + 2]);
                u[4 * k + 2] = _mm_unpacklo_epi32(t[4 * k + 1], t[4 * k + 3]);
                u[4 * k + 3] = _mm_unpackhi_epi32(t[4 * k + 1], t[4 * k + 3]);
            }
            for (k = 0; k < 4; k++) {   /* all 8 rows: columns 2k, 2k+1 */
                _mm_storeu_si128((__m128i *)(d0 + 2 * k * n_rows), _mm_unpacklo_epi64(u[k], u[4 + k]));
                _mm_storeu_si128((__m128i *)(d0 + (2 * k + 1) * n_rows), _mm_unpackhi_epi64(u[k], u[4 + k]));
            }
        }
        for (; j0 < n_cols; j0++)
            for (i = i0; i < i0 + 8; i++) dst[j0 * n_rows + i] = (int16_t)((int32_t)src[i * n_cols + j0] - zp);
    }
    for (; i0 < n_rows; i0++)
        for (j = 0; j < n_cols; j++) dst[j * n_rows + i0] = (int16_t)((int32_t)src[i0 * n_cols + j] - zp);
}

/* row k of a tile (8 int32 lanes v) at dst row j0 + k, column i0 */
#define EK_TSTORE(k, v) _mm256_storeu_si256((__m256i *)(dst + (j0 + (k)) * n_rows + i0), (v))
__attribute__((target("avx2")))
static void EK_SUF(ek_transpose_avx2)(const CODE_T *restrict src, int32_t zp, ptrdiff_t n_rows,
                                      ptrdiff_t n_cols, int32_t *restrict dst) {
    ptrdiff_t i0, j0, i, j;
    __m256i z = _mm256_set1_epi32(zp);
    for (i0 = 0; i0 + 8 <= n_rows; i0 += 8) {
        for (j0 = 0; j0 + 8 <= n_cols; j0 += 8) {
            const CODE_T *s0 = src + i0 * n_cols + j0;
            __m256i r0 = _mm256_sub_epi32(EK_LOAD8(s0), z);
            __m256i r1 = _mm256_sub_epi32(EK_LOAD8(s0 + n_cols), z);
            __m256i r2 = _mm256_sub_epi32(EK_LOAD8(s0 + 2 * n_cols), z);
            __m256i r3 = _mm256_sub_epi32(EK_LOAD8(s0 + 3 * n_cols), z);
            __m256i r4 = _mm256_sub_epi32(EK_LOAD8(s0 + 4 * n_cols), z);
            __m256i r5 = _mm256_sub_epi32(EK_LOAD8(s0 + 5 * n_cols), z);
            __m256i r6 = _mm256_sub_epi32(EK_LOAD8(s0 + 6 * n_cols), z);
            __m256i r7 = _mm256_sub_epi32(EK_LOAD8(s0 + 7 * n_cols), z);
            __m256i t0 = _mm256_unpacklo_epi32(r0, r1), t1 = _mm256_unpackhi_epi32(r0, r1);
            __m256i t2 = _mm256_unpacklo_epi32(r2, r3), t3 = _mm256_unpackhi_epi32(r2, r3);
            __m256i t4 = _mm256_unpacklo_epi32(r4, r5), t5 = _mm256_unpackhi_epi32(r4, r5);
            __m256i t6 = _mm256_unpacklo_epi32(r6, r7), t7 = _mm256_unpackhi_epi32(r6, r7);
            __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
            __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
            __m256i u4 = _mm256_unpacklo_epi64(t4, t6), u5 = _mm256_unpackhi_epi64(t4, t6);
            __m256i u6 = _mm256_unpacklo_epi64(t5, t7), u7 = _mm256_unpackhi_epi64(t5, t7);
            EK_TSTORE(0, _mm256_permute2x128_si256(u0, u4, 0x20));
            EK_TSTORE(1, _mm256_permute2x128_si256(u1, u5, 0x20));
            EK_TSTORE(2, _mm256_permute2x128_si256(u2, u6, 0x20));
            EK_TSTORE(3, _mm256_permute2x128_si256(u3, u7, 0x20));
            EK_TSTORE(4, _mm256_permute2x128_si256(u0, u4, 0x31));
            EK_TSTORE(5, _mm256_permute2x128_si256(u1, u5, 0x31));
            EK_TSTORE(6, _mm256_permute2x128_si256(u2, u6, 0x31));
            EK_TSTORE(7, _mm256_permute2x128_si256(u3, u7, 0x31));
        }
        for (; j0 < n_cols; j0++)
            for (i = i0; i < i0 + 8; i++) dst[j0 * n_rows + i] = (int32_t)src[i * n_cols + j0] - zp;
    }
    for (; i0 < n_rows; i0++)
        for (j = 0; j < n_cols; j++) dst[j * n_rows + i0] = (int32_t)src[i0 * n_cols + j] - zp;
}
#undef EK_TSTORE
#endif

static void EK_SUF(ek_transpose_to)(const CODE_T *restrict src, int32_t zp, ptrdiff_t n_rows,
                                    ptrdiff_t n_cols, void *restrict dst, int narrow) {
    ptrdiff_t i0, j0, i, j;
#if EK_X86_AVX2
    if (ek_have_avx2()) {
        if (narrow) EK_SUF(ek_transpose16_avx2)(src, zp, n_rows, n_cols, (int16_t *)dst);
        else EK_SUF(ek_transpose_avx2)(src, zp, n_rows, n_cols, (int32_t *)dst);
        return;
    }
#endif
    for (i0 = 0; i0 < n_rows; i0 += 16) {
        ptrdiff_t i1 = i0 + 16 < n_rows ? i0 + 16 : n_rows;
        for (j0 = 0; j0 < n_cols; j0 += 16) {
            ptrdiff_t j1 = j0 + 16 < n_cols ? j0 + 16 : n_cols;
            for (j = j0; j < j1; j++)
                for (i = i0; i < i1; i++) {
                    int32_t v = (int32_t)src[i * n_cols + j] - zp;
                    if (narrow) ((int16_t *)dst)[j * n_rows + i] = (int16_t)v;
                    else ((int32_t *)dst)[j * n_rows + i] = v;
                }
        }
    }
}

static void EK_SUF(ek_transpose)(const CODE_T *restrict src, int32_t zp, ptrdiff_t n_rows,
                                 ptrdiff_t n_cols, int32_t *restrict dst) {
    EK_SUF(ek_transpose_to)(src, zp, n_rows, n_cols, dst, 0);
}

/* The same into int16 (the caller has checked that X fits). */
static void EK_SUF(ek_transpose16)(const CODE_T *restrict src, int32_t zp, ptrdiff_t n_rows,
                                   ptrdiff_t n_cols, int16_t *restrict dst) {
    EK_SUF(ek_transpose_to)(src, zp, n_rows, n_cols, dst, 1);
}
