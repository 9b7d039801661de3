/* One instantiation of the hot loops for codes of type CODE_T (see kernels_core.h).
 * Included several times; no include guard on purpose. */

/* Conventional: n contiguous codes of one (frame, channel) plane.
 * cnt[j] += |x_j| > tau; error of the activation threshold into err. */
EK_CLONES
static void EK_SUF(ek_conventional)(const CODE_T *restrict x, ptrdiff_t n, int32_t tau,
                                    int32_t *restrict cnt, ek_err *restrict err) {
    int32_t xb[EK_BLOCK], eb[EK_BLOCK];
    ptrdiff_t j0, p, nb;
    for (j0 = 0; j0 < n; j0 += EK_BLOCK) {
        int32_t xmax = 0, emax = 0;
        nb = n - j0 < EK_BLOCK ? n - j0 : EK_BLOCK;
        for (p = 0; p < nb; p++) {
            int32_t v = (int32_t)x[j0 + p];
            int32_t a = v < 0 ? -v : v;
            int32_t keep = a > tau;
            int32_t e = keep ? 0 : a;
            xb[p] = v;
            xmax = a > xmax ? a : xmax;
            cnt[j0 + p] += keep;
            eb[p] = e;
            emax = e > emax ? e : emax;
        }
        err->xsq += ek_sumsq(xb, nb, xmax);
        err->esq += ek_sumsq(eb, nb, emax);
        if (emax > err->emax) err->emax = emax;
    }
}

/* Temporal delta: n contiguous codes of one (frame, channel) plane against the
 * state of the previous frame (ref: sender reference, rec: consumer's sum,
 * used in the open loop only). cnt[j] += [Dt_j != 0]. */
EK_CLONES
static void EK_SUF(ek_temporal)(const CODE_T *restrict x, ptrdiff_t n, int32_t theta, int closed,
                                int32_t tau, int32_t *restrict ref, int32_t *restrict rec,
                                int32_t *restrict cnt, ek_err *restrict err) {
    int32_t xb[EK_BLOCK], eb[EK_BLOCK];
    ptrdiff_t j0, p, nb;
    for (j0 = 0; j0 < n; j0 += EK_BLOCK) {
        int32_t xmax = 0, emax = 0;
        int32_t *restrict r = ref + j0;
        int32_t *restrict y = rec + j0;
        int32_t *restrict cn = cnt + j0;
        nb = n - j0 < EK_BLOCK ? n - j0 : EK_BLOCK;
        for (p = 0; p < nb; p++) {
            int32_t v = (int32_t)x[j0 + p];
            int32_t a = v < 0 ? -v : v;
            xb[p] = v;
            xmax = a > xmax ? a : xmax;
        }
        if (closed) {
            for (p = 0; p < nb; p++) {
                int32_t v = xb[p];
                int32_t a = v < 0 ? -v : v;
                int32_t xt = a > tau ? v : 0;
                int32_t d = xt - r[p];
                int32_t nz = (d > theta) | (d < -theta);
                int32_t rr = r[p] + (nz ? d : 0);
                int32_t e = v - rr;
                r[p] = rr;
                cn[p] += nz;
                e = e < 0 ? -e : e;
                eb[p] = e;
                emax = e > emax ? e : emax;
            }
        } else {
            for (p = 0; p < nb; p++) {
                int32_t v = xb[p];
                int32_t a = v < 0 ? -v : v;
                int32_t xt = a > tau ? v : 0;
                int32_t d = xt - r[p];
                int32_t nz = (d > theta) | (d < -theta);
                int32_t yy = y[p] + (nz ? d : 0);
                int32_t e = v - yy;
                y[p] = yy;
                r[p] = xt;
                cn[p] += nz;
                e = e < 0 ? -e : e;
                eb[p] = e;
                emax = e > emax ? e : emax;
            }
        }
        err->xsq += ek_sumsq(xb, nb, xmax);
        err->esq += ek_sumsq(eb, nb, emax);
        if (emax > err->emax) err->emax = emax;
    }
}

/* Line delta over one (frame, channel) plane. Line h of the scan (h < n_real)
 * is plane[hr * line_stride + p * pos_stride], hr = reverse ? n_real-1-h : h;
 * lines h >= n_real are zero padding. Lines with cover_line[h] == 0 are not
 * needed and skipped. ref/rec: s*npos ring buffers; xl, eb: npos scratch.
 * line_ev[h] += events, line_sp[h] += sum [Dt != 0] * cp * cover_line[h]. */
EK_CLONES
static void EK_SUF(ek_line_plane)(const CODE_T *restrict plane, ptrdiff_t n_real, ptrdiff_t npos,
                                  ptrdiff_t line_stride, ptrdiff_t pos_stride, int reverse,
                                  const int64_t *restrict cover_line, ptrdiff_t L, ptrdiff_t s,
                                  const int32_t *restrict cp, int32_t theta, int closed, int32_t tau,
                                  int32_t *restrict ref, int32_t *restrict rec,
                                  int32_t *restrict xl, int32_t *restrict eb,
                                  int64_t *restrict line_ev, int64_t *restrict line_sp,
                                  ek_err *restrict err) {
    ptrdiff_t h, p;
    memset(ref, 0, (size_t)(s * npos) * sizeof(int32_t));
    if (!closed) memset(rec, 0, (size_t)(s * npos) * sizeof(int32_t));
    for (h = 0; h < L; h++) {
        int32_t xmax = 0, emax = 0, ev = 0;
        int64_t sp = 0;
        int32_t *restrict r, *restrict y;
        if (cover_line[h] == 0) continue;
        if (h < n_real) {
            const CODE_T *restrict src = plane + (reverse ? n_real - 1 - h : h) * line_stride;
            if (pos_stride == 1) {
                for (p = 0; p < npos; p++) {
                    int32_t v = (int32_t)src[p];
                    int32_t a = v < 0 ? -v : v;
                    xl[p] = v;
                    xmax = a > xmax ? a : xmax;
                }
            } else {
                for (p = 0; p < npos; p++) {
                    int32_t v = (int32_t)src[p * pos_stride];
                    int32_t a = v < 0 ? -v : v;
                    xl[p] = v;
                    xmax = a > xmax ? a : xmax;
                }
            }
        } else {
            memset(xl, 0, (size_t)npos * sizeof(int32_t));
        }
        r = ref + (h % s) * npos;
        y = rec + (h % s) * npos;
        if (closed) {
            int32_t spi = 0;
            for (p = 0; p < npos; p++) {
                int32_t v = xl[p];
                int32_t a = v < 0 ? -v : v;
                int32_t xt = a > tau ? v : 0;
                int32_t d = xt - r[p];
                int32_t nz = (d > theta) | (d < -theta);
                int32_t rr = r[p] + (nz ? d : 0);
                int32_t e = v - rr;
                r[p] = rr;
                ev += nz;
                spi += nz ? cp[p] : 0;
                e = e < 0 ? -e : e;
                eb[p] = e;
                emax = e > emax ? e : emax;
            }
            sp = spi;
        } else {
            int32_t spi = 0;
            for (p = 0; p < npos; p++) {
                int32_t v = xl[p];
                int32_t a = v < 0 ? -v : v;
                int32_t xt = a > tau ? v : 0;
                int32_t d = xt - r[p];
                int32_t nz = (d > theta) | (d < -theta);
                int32_t yy = y[p] + (nz ? d : 0);
                int32_t e = v - yy;
                y[p] = yy;
                r[p] = xt;
                ev += nz;
                spi += nz ? cp[p] : 0;
                e = e < 0 ? -e : e;
                eb[p] = e;
                emax = e > emax ? e : emax;
            }
            sp = spi;
        }
        line_ev[h] += ev;
        line_sp[h] += sp * cover_line[h];
        err->xsq += ek_sumsq(xl, npos, xmax);
        err->esq += ek_sumsq(eb, npos, emax);
        if (emax > err->emax) err->emax = emax;
    }
}

/* Transpose one (n_rows x n_cols) plane of codes into an int32 (n_cols x n_rows)
 * buffer, in tiles, so that line deltas along x run on contiguous columns. */
EK_CLONES
static void EK_SUF(ek_transpose)(const CODE_T *restrict src, ptrdiff_t n_rows, ptrdiff_t n_cols,
                                 int32_t *restrict dst) {
    ptrdiff_t i0, j0, i, j;
    for (i0 = 0; i0 < n_rows; i0 += 16) {
        ptrdiff_t i1 = i0 + 16 < n_rows ? i0 + 16 : n_rows;
        for (j0 = 0; j0 < n_cols; j0 += 16) {
            ptrdiff_t j1 = j0 + 16 < n_cols ? j0 + 16 : n_cols;
            for (j = j0; j < j1; j++)
                for (i = i0; i < i1; i++)
                    dst[j * n_rows + i] = (int32_t)src[i * n_cols + j];
        }
    }
}
