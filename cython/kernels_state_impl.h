/* The stateful delta loops (temporal delta, lossy line delta) for codes of type
 * CODE_T with state, lanes and scratch of type EK_ST (see kernels_core_impl.h):
 * int32_t for every code type, and int16_t (names suffixed 16) where the caller
 * has checked that no value leaves int16 (8-bit codes: twice the lanes per vector,
 * half the state traffic). EK_SQ is the per-block accumulator of X^2 (int32_t
 * for int16_t lanes: |X| <= 1279 and 1024 * 1279^2 < 2^31; int64_t otherwise),
 * EK_SUMSQ the exact sum of squares of an EK_ST buffer. Included several times;
 * no include guard on purpose. */

/* One block of the temporal delta over nb codes (ek_temporal): closed loop, the
 * reference r advances by the sent deltas (y unused); open loop, the consumer's sum y
 * does and r keeps the thresholded X. nzb = [sent], eb = |X - what the consumer
 * holds|; *emax and *xsq accumulate. Always inlined with constant closed (and tau = 0
 * where there is no activation threshold), so that each gives its own loop. */
static inline __attribute__((always_inline)) void EK_SS(ek_temporal_block)(
        const CODE_T *restrict xs, EK_ST z, EK_ST *restrict r, EK_ST *restrict y, ptrdiff_t nb,
        EK_ST tau, EK_ST theta, EK_ST ntheta, int closed, EK_ST *restrict nzb, EK_ST *restrict eb,
        EK_ST *emax, EK_SQ *xsq) {
    EK_ST em = *emax;
    EK_SQ xs2 = *xsq;
    ptrdiff_t p;
    for (p = 0; p < nb; p++) {
        EK_ST v = (EK_ST)((EK_ST)xs[p] - z);
        EK_ST a = v < 0 ? (EK_ST)-v : v;
        EK_ST xt = tau == 0 ? v : (a > tau ? v : 0);   /* folds to v in the tau = 0 instance */
        EK_ST d = (EK_ST)(xt - r[p]);
        EK_ST nz = (EK_ST)ek_sent(d, theta, ntheta);
        EK_ST held = (EK_ST)((closed ? r[p] : y[p]) + (nz ? d : 0));
        EK_ST e = (EK_ST)(v - held);
        if (closed) {
            r[p] = held;
        } else {
            y[p] = held;
            r[p] = xt;
        }
        nzb[p] = nz;
        e = e < 0 ? (EK_ST)-e : e;
        eb[p] = e;
        em = e > em ? e : em;
        xs2 += (EK_SQ)v * v;
    }
    *emax = em;
    *xsq = xs2;
}

#if defined(EK_VEC16) && EK_VEC16
/* One run of the temporal delta (ek_temporal_block on 16 int16 lanes at a time, AVX2):
 * nb codes xs at contiguous positions, whose counters are cnt[0 .. nb). *emax, *xsq and
 * *esq (int32 lanes; see ek_temporal_vec) accumulate; eb = |X - Y|. The nb % 16 last
 * codes take the scalar step (fl: their 15 flags). Always inlined with constant closed
 * and use_tau. */
__attribute__((target("avx2"), always_inline))
static inline void EK_SS(ek_temporal_run)(const CODE_T *restrict xs, int16_t z, int16_t *restrict r,
                                          int16_t *restrict y, ptrdiff_t nb, int16_t tau, int16_t theta,
                                          int closed, int use_tau, int32_t *restrict cnt,
                                          int16_t *restrict eb, int16_t *restrict fl, __m256i *emax,
                                          __m256i *xsq, __m256i *esq) {
    const __m256i vz = _mm256_set1_epi16(z), vth = _mm256_set1_epi16(theta);
    const __m256i vnth = _mm256_set1_epi16((int16_t)-theta), vtau = _mm256_set1_epi16(tau);
    __m256i amx = *emax, axs = *xsq, aes = *esq;
    ptrdiff_t p, n16 = nb & ~(ptrdiff_t)15;
    for (p = 0; p < n16; p += 16) {
        __m256i v = _mm256_sub_epi16(EK_LOAD16W(xs + p), vz), m, xt, held;
        __m256i e = ek_step16x16(v, _mm256_loadu_si256((const __m256i *)(r + p)),
                                 closed ? v : _mm256_loadu_si256((const __m256i *)(y + p)), vth, vnth, vtau,
                                 closed, use_tau, &m, &xt, &held);
        __m256i c0 = _mm256_loadu_si256((const __m256i *)(cnt + p));
        __m256i c1 = _mm256_loadu_si256((const __m256i *)(cnt + p + 8));
        if (closed) {
            _mm256_storeu_si256((__m256i *)(r + p), held);
        } else {
            _mm256_storeu_si256((__m256i *)(y + p), held);
            _mm256_storeu_si256((__m256i *)(r + p), xt);
        }
        _mm256_storeu_si256((__m256i *)(eb + p), e);
        _mm256_storeu_si256((__m256i *)(cnt + p), _mm256_sub_epi32(c0, _mm256_cvtepi16_epi32(_mm256_castsi256_si128(m))));
        _mm256_storeu_si256((__m256i *)(cnt + p + 8), _mm256_sub_epi32(c1, _mm256_cvtepi16_epi32(_mm256_extracti128_si256(m, 1))));
        amx = _mm256_max_epi16(amx, e);
        axs = _mm256_add_epi32(axs, _mm256_madd_epi16(v, v));
        aes = _mm256_add_epi32(aes, _mm256_madd_epi16(e, e));
    }
    if (n16 < nb) {      /* the scalar step (ek_temporal_block) on the last codes */
        int16_t em = 0;
        int32_t x2 = 0;
        EK_SS(ek_temporal_block)(xs + n16, z, r + n16, y + n16, nb - n16, tau, theta, (int16_t)-theta,
                                 closed, fl, eb + n16, &em, &x2);
        for (p = n16; p < nb; p++) cnt[p] += fl[p - n16];
        amx = _mm256_max_epi16(amx, _mm256_set1_epi16(em));
        axs = _mm256_add_epi32(axs, _mm256_setr_epi32(x2, 0, 0, 0, 0, 0, 0, 0));
        for (p = n16; p < nb; p++)
            aes = _mm256_add_epi32(aes, _mm256_setr_epi32((int32_t)eb[p] * eb[p], 0, 0, 0, 0, 0, 0, 0));
    }
    *emax = amx;
    *xsq = axs;
    *esq = aes;
}

/* ek_temporal (no reconstruction out) on AVX2: blocks of EK_BLOCK codes, each in runs of
 * contiguous positions. The int32 lanes' sum of a block's (X - Y)^2 is exact when its
 * max|X - Y| is below 1449 (1024 * 1448^2 < 2^31); else it is summed from eb (EK_SUMSQ). */
__attribute__((target("avx2")))
static void EK_SS(ek_temporal_vec)(const CODE_T *restrict x, int32_t zp, ptrdiff_t n, ptrdiff_t off,
                                   ptrdiff_t N, int32_t theta32, int closed, int32_t tau32,
                                   int16_t *restrict ref, int16_t *restrict rec, int32_t *restrict cnt,
                                   ek_err *restrict err) {
    int16_t eb[EK_BLOCK], fl[16];   /* |X - Y| of a block; flags of a run's last codes */
    const int16_t theta = (int16_t)theta32, tau = (int16_t)tau32, z = (int16_t)zp;
    ptrdiff_t i0, nb;
    for (i0 = 0; i0 < n; i0 += EK_BLOCK) {
        __m256i amx = _mm256_setzero_si256(), axs = amx, aes = amx;
        ptrdiff_t q = 0, j = (off + i0) % N;
        int16_t emax;
        int16_t *restrict y = rec + (closed ? 0 : i0);
        nb = n - i0 < EK_BLOCK ? n - i0 : EK_BLOCK;
        while (q < nb) {
            ptrdiff_t run = N - j < nb - q ? N - j : nb - q;
            const CODE_T *restrict xs = x + i0 + q;
            int16_t *restrict r = ref + i0 + q, *restrict yq = y + (closed ? 0 : q);
            if (closed && tau == 0)
                EK_SS(ek_temporal_run)(xs, z, r, yq, run, 0, theta, 1, 0, cnt + j, eb + q, fl, &amx, &axs, &aes);
            else if (closed)
                EK_SS(ek_temporal_run)(xs, z, r, yq, run, tau, theta, 1, 1, cnt + j, eb + q, fl, &amx, &axs, &aes);
            else
                EK_SS(ek_temporal_run)(xs, z, r, yq, run, tau, theta, 0, 1, cnt + j, eb + q, fl, &amx, &axs, &aes);
            q += run;
            j = 0;
        }
        emax = ek_hmax16x16(amx);
        err->xsq += ek_hsum32x8(axs);
        if (emax) {
            err->esq += emax < 1449 ? ek_hsum32x8(aes) : EK_SUMSQ(eb, nb, emax);
            if (emax > err->emax) err->emax = emax;
        }
    }
}
#endif

/* Temporal delta over n contiguous codes of one frame (planes of N positions;
 * x[0] is element `off` of the frame) against the state of the previous frame
 * (ref: sender reference, rec: consumer's sum, used in the open loop only; both
 * n). cnt (the frame's N counters) [j] += number of channels with Dt != 0 at j.
 * out (n, or NULL): the reconstruction of this frame (closed loop R, open loop Y).
 * The caller runs a range of positions through all frames while its state is
 * in cache. One fused pass per block forms X, steps the delta, and keeps the
 * flags, |X - Y| and X^2 in lanes; counts and the error sum follow. */
EK_CLONES
static void EK_SS(ek_temporal)(const CODE_T *restrict x, int32_t zp, ptrdiff_t n, ptrdiff_t off,
                               ptrdiff_t N, int32_t theta32, int closed, int32_t tau32,
                               EK_ST *restrict ref, EK_ST *restrict rec, int32_t *restrict cnt,
                               ek_err *restrict err, int32_t *restrict out) {
    EK_ST eb[EK_BLOCK], nzb[EK_BLOCK];
    const EK_ST theta = (EK_ST)theta32, ntheta = (EK_ST)-theta32, tau = (EK_ST)tau32, z = (EK_ST)zp;
    ptrdiff_t i0, p, nb;
#if defined(EK_VEC16) && EK_VEC16
    if (out == NULL && ek_have_avx2()) {
        EK_SS(ek_temporal_vec)(x, zp, n, off, N, theta32, closed, tau32, ref, rec, cnt, err);
        return;
    }
#endif
    for (i0 = 0; i0 < n; i0 += EK_BLOCK) {
        EK_ST emax = 0;
        EK_SQ xsq = 0;
        const CODE_T *restrict xs = x + i0;
        EK_ST *restrict r = ref + i0;
        EK_ST *restrict y = rec + (closed ? 0 : i0);  /* rec: open loop only */
        nb = n - i0 < EK_BLOCK ? n - i0 : EK_BLOCK;
        if (closed && tau == 0)
            EK_SS(ek_temporal_block)(xs, z, r, y, nb, 0, theta, ntheta, 1, nzb, eb, &emax, &xsq);
        else if (closed)
            EK_SS(ek_temporal_block)(xs, z, r, y, nb, tau, theta, ntheta, 1, nzb, eb, &emax, &xsq);
        else
            EK_SS(ek_temporal_block)(xs, z, r, y, nb, tau, theta, ntheta, 0, nzb, eb, &emax, &xsq);
        {   /* per-position counts */
            ptrdiff_t q = 0, j = (off + i0) % N;
            while (q < nb) {
                ptrdiff_t run = N - j < nb - q ? N - j : nb - q, u;
                for (u = 0; u < run; u++) cnt[j + u] += nzb[q + u];
                q += run;
                j = 0;
            }
        }
        err->xsq += xsq;
        if (emax) {
            err->esq += EK_SUMSQ(eb, nb, emax);
            if (emax > err->emax) err->emax = emax;
        }
        if (out) {
            const EK_ST *restrict st = closed ? r : y;
            for (p = 0; p < nb; p++) out[i0 + p] = st[p];
        }
    }
}

/* 16 values X = code - zp (restrict parameters: one vector, whatever CODE_T). */
static inline void EK_SS(ek_cvt16)(const CODE_T *restrict src, EK_ST zp, EK_ST *restrict dst) {
    int k;
    for (k = 0; k < 16; k++) dst[k] = (EK_ST)((EK_ST)src[k] - zp);
}

/* X = code - zp of the row at `row` of C planes (stride `plane`) of npos codes
 * into xl (C*npos): rows of 16 codes or more as runs of 16 (the last one
 * overlapping the one before); shorter rows as 16 codes each, in channel order
 * so that every row overwrites the surplus of the one before, for the channels
 * whose 16 codes lie within the C planes and whose 16 values lie within xl (the
 * last rows exactly). */
static inline void EK_SS(ek_gather)(const CODE_T *restrict x, ptrdiff_t row, EK_ST zp, ptrdiff_t C,
                                    ptrdiff_t npos, ptrdiff_t plane, EK_ST *restrict xl) {
    ptrdiff_t c, p, k, wide;
    if (npos >= 16) {
        for (c = 0; c < C; c++) {
            const CODE_T *restrict src = x + c * plane + row;
            EK_ST *restrict dst = xl + c * npos;
            for (p = 0; p < npos; p += 16) {
                ptrdiff_t q = p + 16 <= npos ? p : npos - 16;
                EK_SS(ek_cvt16)(src + q, zp, dst + q);
            }
        }
        return;
    }
    /* channels c with c*plane + row + 16 <= C*plane and c*npos + 16 <= C*npos */
    wide = C * plane - row < 16 || C * npos < 16 ? 0 : (C * plane - row - 16) / plane + 1;
    if (C * npos >= 16 && (C * npos - 16) / npos + 1 < wide) wide = (C * npos - 16) / npos + 1;
    for (c = 0; c < wide; c++) EK_SS(ek_cvt16)(x + c * plane + row, zp, xl + c * npos);
    for (; c < C; c++)
        for (k = 0; k < npos; k++) xl[c * npos + k] = (EK_ST)((EK_ST)x[c * plane + row + k] - zp);
}

/* One line of the closed-loop line delta over n lanes (ek_line_chunk): the reference r
 * advances by the sent deltas; *ev, *spi = events and sum [sent] * cp; eb = |X - R|,
 * *emax and *xsq accumulate. Always inlined, so that a constant tau (0: no activation
 * threshold, the common case) gives its own loop. Events and cover sums go in lanes
 * of EK_ST / EK_SQ (n < 2^15 for 16-bit lanes: see _narrow_line). */
static inline __attribute__((always_inline)) void EK_SS(ek_closed_line)(
        const EK_ST *restrict xl, EK_ST *restrict r, const EK_ST *restrict cp, ptrdiff_t n, EK_ST tau,
        EK_ST theta, EK_ST ntheta, EK_ST *restrict eb, int32_t *ev, int32_t *spi, EK_ST *emax,
        EK_SQ *xsq) {
    EK_ST evs = 0, em = *emax;
    EK_SQ sps = 0, xs = *xsq;
    ptrdiff_t p;
    for (p = 0; p < n; p++) {
        EK_ST v = xl[p];
        EK_ST a = v < 0 ? (EK_ST)-v : v;
        EK_ST xt = tau == 0 ? v : (a > tau ? v : 0);   /* folds to v in the tau = 0 instance */
        EK_ST d = (EK_ST)(xt - r[p]);
        EK_ST nz = (EK_ST)ek_sent(d, theta, ntheta);
        EK_ST rr = (EK_ST)(r[p] + (nz ? d : 0));
        EK_ST e = (EK_ST)(v - rr);
        r[p] = rr;
        evs += nz;
        sps += (EK_SQ)nz * cp[p];
        e = e < 0 ? (EK_ST)-e : e;
        eb[p] = e;
        em = e > em ? e : em;
        xs += (EK_SQ)v * v;
    }
    *ev = evs;
    *spi = (int32_t)sps;
    *emax = em;
    *xsq = xs;
}

/* Line delta over one chunk of C planes (n_real lines x npos positions each,
 * contiguous; plane stride n_real*npos). Line h of the scan is plane row
 * (reverse ? n_real-1-h : h) for h < n_real; lines h >= n_real are zero
 * padding; lines with cover_line[h] == 0 are not needed and skipped. Line h of
 * all C channels is processed as one vector of C*npos positions.
 * cp: cover across the scan repeated per channel (C*npos, in EK_ST); ref/rec: s*C*npos
 * ring buffers; xl, eb: C*npos scratch.
 * line_ev[h] += events, line_sp[h] += sum [Dt != 0] * cp * cover_line[h].
 * theta = tau = 0 is lossless (X = Y exactly): the error terms (and x^2) are skipped.
 * out (or NULL; int32, the layout of x): the reconstruction of the real lines,
 * R (closed loop) or Y (open loop) on needed lines, X on lines no row reads.
 * prefetch: rows EK_AHEAD lines ahead are prefetched (codes in memory, not a
 * transpose just written; see ek_prefetch_lines). */
EK_CLONES
static void EK_SS(ek_line_chunk)(const CODE_T *restrict x, int32_t zp, ptrdiff_t C, ptrdiff_t n_real,
                                 ptrdiff_t npos, int reverse, int prefetch,
                                 const int64_t *restrict cover_line, ptrdiff_t L, ptrdiff_t s,
                                 const EK_ST *restrict cp, int32_t theta32, int closed,
                                 int32_t tau32, EK_ST *restrict ref, EK_ST *restrict rec,
                                 EK_ST *restrict xl, EK_ST *restrict eb,
                                 int64_t *restrict line_ev, int64_t *restrict line_sp,
                                 ek_err *restrict err, int32_t *restrict out) {
    const EK_ST theta = (EK_ST)theta32, ntheta = (EK_ST)-theta32, tau = (EK_ST)tau32;
    ptrdiff_t h, p, c, n = C * npos, plane = n_real * npos;
    int lossless = theta32 == 0 && tau32 == 0;
    memset(ref, 0, (size_t)(s * n) * sizeof(EK_ST));
    if (!closed) memset(rec, 0, (size_t)(s * n) * sizeof(EK_ST));
    for (h = 0; h < L; h++) {
        EK_ST emax = 0;
        EK_SQ xsq = 0;
        int32_t ev = 0, spi = 0;
        int64_t esq = -1;     /* -1: sum (X - Y)^2 from eb below */
        EK_ST *restrict r, *restrict y;
        if (prefetch) EK_SUF(ek_prefetch_lines)(x, h, n_real, npos, reverse, C, plane);
        if (cover_line[h] == 0) {
            if (out && h < n_real) {  /* not sent, not read: the reconstruction keeps X */
                ptrdiff_t row = (reverse ? n_real - 1 - h : h) * npos;
                for (c = 0; c < C; c++)
                    for (p = 0; p < npos; p++)
                        out[c * plane + row + p] = (int32_t)x[c * plane + row + p] - zp;
            }
            continue;
        }
        if (h < n_real) {
            EK_SS(ek_gather)(x, (reverse ? n_real - 1 - h : h) * npos, (EK_ST)zp, C, npos, plane, xl);
        } else {
            memset(xl, 0, (size_t)n * sizeof(EK_ST));
        }
        r = ref + (h % s) * n;
        y = rec + (h % s) * n;
        if (lossless) {  /* D = X_h - X_{h-s}, R = X in both loops */
            EK_ST evs = 0;
            EK_SQ sps = 0;
            for (p = 0; p < n; p++) {
                EK_ST v = xl[p];
                EK_ST nz = v != r[p];
                r[p] = v;
                evs += nz;
                sps += (EK_SQ)nz * cp[p];
            }
            ev = evs;
            spi = (int32_t)sps;
#if defined(EK_VEC16) && EK_VEC16
        } else if (ek_have_avx2()) {  /* |X - Y| <= tau + theta (closed), tau + L * theta (open) */
            ek_line16 res;
            int64_t eb_max = (int64_t)tau32 + (closed ? 1 : L) * (int64_t)theta32;
            ek_line16_avx2(xl, r, y, cp, n, tau, theta, closed, eb_max < 32767 ? (int32_t)eb_max : 32767,
                           &res);
            ev = res.ev;
            spi = res.sp;
            emax = res.emax;
            xsq = res.xsq;
            esq = res.esq;
#endif
        } else if (closed) {  /* tau = 0 (no activation threshold) as its own instance */
            if (tau32 == 0)
                EK_SS(ek_closed_line)(xl, r, cp, n, 0, theta, ntheta, eb, &ev, &spi, &emax, &xsq);
            else
                EK_SS(ek_closed_line)(xl, r, cp, n, tau, theta, ntheta, eb, &ev, &spi, &emax, &xsq);
        } else {
            EK_ST evs = 0;
            EK_SQ sps = 0;
            for (p = 0; p < n; p++) {
                EK_ST v = xl[p];
                EK_ST a = v < 0 ? (EK_ST)-v : v;
                EK_ST xt = a > tau ? v : 0;
                EK_ST d = (EK_ST)(xt - r[p]);
                EK_ST nz = (EK_ST)ek_sent(d, theta, ntheta);
                EK_ST yy = (EK_ST)(y[p] + (nz ? d : 0));
                EK_ST e = (EK_ST)(v - yy);
                y[p] = yy;
                r[p] = xt;
                evs += nz;
                sps += (EK_SQ)nz * cp[p];
                e = e < 0 ? (EK_ST)-e : e;
                eb[p] = e;
                emax = e > emax ? e : emax;
                xsq += (EK_SQ)v * v;
            }
            ev = evs;
            spi = (int32_t)sps;
        }
        line_ev[h] += ev;
        line_sp[h] += (int64_t)spi * cover_line[h];
        if (!lossless) {
            err->xsq += xsq;
            if (esq >= 0) err->esq += esq;             /* summed in the vector loop */
            else if (emax) err->esq += EK_SUMSQ(eb, n, emax);
            if (emax > err->emax) err->emax = emax;
        }
        if (out && h < n_real) {  /* what the consumer holds for line h */
            const EK_ST *restrict st = closed || lossless ? r : y;
            ptrdiff_t row = (reverse ? n_real - 1 - h : h) * npos;
            for (c = 0; c < C; c++)
                for (p = 0; p < npos; p++) out[c * plane + row + p] = st[c * npos + p];
        }
    }
}

#if defined(EK_VEC16) && EK_VEC16
/* ek_line_frame_thresholds (kernels_core_impl.h) on 16-bit state, in AVX2: channels in chunks of
 * about EK_BLOCK positions per line; each needed line of a chunk is gathered once as int16 and
 * run through ek_line16_avx2 for every threshold (its own rings: sender reference, then
 * consumer sum). Closed loop, or open loop with the error (the caller keeps the open loop's
 * histograms otherwise). states: 2*T*s*chunk*npos int16; xl: chunk*npos int16. */
__attribute__((target("avx2")))
static void EK_SS(ek_line_frame_thresholds_vec)(const CODE_T *restrict x, int32_t zp, ptrdiff_t C,
                                                ptrdiff_t n_real, ptrdiff_t npos, int reverse, int prefetch,
                                                const int64_t *restrict cover_line, ptrdiff_t L, ptrdiff_t s,
                                                const int16_t *restrict cp, const int32_t *restrict thetas,
                                                ptrdiff_t T, int closed, int32_t tau, int16_t *restrict states,
                                                int16_t *restrict xl, int64_t *restrict ev_out,
                                                int64_t *restrict sp_out, int32_t *restrict emax_out,
                                                int64_t *restrict esq_out, int64_t *restrict xsq_out,
                                                int with_error) {
    ptrdiff_t chunk = EK_BLOCK / (npos > 0 ? npos : 1), c0, h, t, plane = n_real * npos;
    if (chunk < 1) chunk = 1;
    for (c0 = 0; c0 < C; c0 += chunk) {
        const CODE_T *restrict xc = x + c0 * plane;
        ptrdiff_t cc = C - c0 < chunk ? C - c0 : chunk, n = cc * npos, ring = s * n;
        memset(states, 0, (size_t)(2 * T * ring) * sizeof(int16_t));
        for (h = 0; h < L; h++) {
            if (prefetch) EK_SUF(ek_prefetch_lines)(xc, h, n_real, npos, reverse, cc, plane);
            if (cover_line[h] == 0) continue;
            if (h < n_real) {
                EK_SS(ek_gather)(xc, (reverse ? n_real - 1 - h : h) * npos, (int16_t)zp, cc, npos, plane, xl);
            } else {
                memset(xl, 0, (size_t)n * sizeof(int16_t));
            }
            for (t = 0; t < T; t++) {
                int16_t *restrict r = states + 2 * t * ring + (h % s) * n;
                int64_t eb_max = (int64_t)tau + (closed ? 1 : L) * (int64_t)thetas[t];
                ek_line16 res;
                ek_line16_avx2(xl, r, r + ring, cp, n, (int16_t)tau, (int16_t)thetas[t], closed,
                               eb_max < 32767 ? (int32_t)eb_max : 32767, &res);
                ev_out[t] += res.ev;
                sp_out[t] += (int64_t)res.sp * cover_line[h];
                if (with_error && !(thetas[t] == 0 && tau == 0)) {
                    if (res.emax > emax_out[t]) emax_out[t] = res.emax;
                    esq_out[t] += res.esq;
                }
                if (with_error && t == 0) *xsq_out += res.xsq;
            }
        }
    }
}
#endif

/* One frame of C planes: channels are processed in chunks of about EK_BLOCK
 * positions per line so that the ring buffers and scratch stay in L1. The
 * buffers passed must hold s*C*npos (ref, rec) and C*npos (xl, eb, cp) EK_ST;
 * out (or NULL) C*n_real*npos. */
static void EK_SS(ek_line_frame)(const CODE_T *restrict x, int32_t zp, ptrdiff_t C, ptrdiff_t n_real,
                                 ptrdiff_t npos, int reverse, int prefetch,
                                 const int64_t *restrict cover_line, ptrdiff_t L, ptrdiff_t s,
                                 const EK_ST *restrict cp, int32_t theta, int closed, int32_t tau,
                                 EK_ST *restrict ref, EK_ST *restrict rec,
                                 EK_ST *restrict xl, EK_ST *restrict eb,
                                 int64_t *restrict line_ev, int64_t *restrict line_sp,
                                 ek_err *restrict err, int32_t *restrict out) {
    ptrdiff_t chunk = EK_BLOCK / (npos > 0 ? npos : 1), c0;
    if (chunk < 1) chunk = 1;
    for (c0 = 0; c0 < C; c0 += chunk) {
        ptrdiff_t cc = C - c0 < chunk ? C - c0 : chunk;
        EK_SS(ek_line_chunk)(x + c0 * n_real * npos, zp, cc, n_real, npos, reverse, prefetch, cover_line,
                             L, s,
                             cp, theta, closed, tau, ref, rec, xl, eb, line_ev, line_sp, err,
                             out ? out + c0 * n_real * npos : NULL);
    }
}
