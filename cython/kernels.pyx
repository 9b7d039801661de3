# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, nonecheck=False
"""Event-counting kernels (``semantics.md``), compiled into ``else_dse._kernels``.

All kernels take signed codes ``X`` (int8, uint8, int16 or int32; C-contiguous),
make one pass over every frame, release the GIL and write their results into
caller-allocated arrays (zeroed by the caller). Geometry enters only as the
int64 cover arrays computed by ``else_dse.workload``; nothing here re-derives
it. ``else_dse.events`` owns validation, dispatch and the xarray wrapping.

Common arguments: ``tau`` activation threshold (``|X| <= tau`` becomes 0 before
any scheme); ``theta`` delta threshold; ``closed`` closed (1) or open (0) loop.
Errors are measured against ``X`` before ``tau``: ``err_max[f] = max|X - Y|``,
``err_sq[f] = sum (X - Y)**2``, ``x_sq[f] = sum X**2`` where ``Y`` is what the
consumer has accumulated (closed loop: the sender's reference ``R``; open loop:
the running sum of the transmitted deltas).
"""

from libc.stdint cimport int8_t, uint8_t, int16_t, int32_t, int64_t
from libc.stdlib cimport malloc, free, calloc
from libc.string cimport memset

ctypedef fused code_t:
    int8_t
    uint8_t
    int16_t
    int32_t


cdef inline int32_t _iabs(int32_t v) noexcept nogil:
    return -v if v < 0 else v


# ---------------------------------------------------------------------------
# Conventional (zero skipping after tau)
# ---------------------------------------------------------------------------

def conventional(const code_t[:, :, ::1] X, int tau, int32_t[:, ::1] count,
                 int64_t[::1] err_max, int64_t[::1] err_sq, int64_t[::1] x_sq):
    """``X`` is (frame, C, H*W). ``count[f, j]`` += number of channels with
    ``|X| > tau`` at position ``j``; error of the activation threshold per frame."""
    cdef Py_ssize_t F = X.shape[0], C = X.shape[1], N = X.shape[2]
    cdef Py_ssize_t f, c, j
    cdef int32_t v, a, keep, emax
    cdef int64_t esq, xsq
    cdef int32_t *cnt
    with nogil:
        for f in range(F):
            emax = 0
            esq = 0
            xsq = 0
            cnt = &count[f, 0]
            for c in range(C):
                for j in range(N):
                    v = <int32_t>X[f, c, j]
                    a = _iabs(v)
                    keep = a > tau
                    cnt[j] += keep
                    xsq += <int64_t>v * v
                    if not keep:
                        esq += <int64_t>v * v
                        if a > emax:
                            emax = a
            err_max[f] = emax
            err_sq[f] = esq
            x_sq[f] = xsq


# ---------------------------------------------------------------------------
# Line delta (ELSE)
# ---------------------------------------------------------------------------

cdef inline void _load_line(const code_t[:, :, :, ::1] X, Py_ssize_t f, Py_ssize_t c, Py_ssize_t h,
                            int axis, bint reverse, int32_t *xl, Py_ssize_t npos) noexcept nogil:
    """Line ``h`` of the scan (in scan order) into ``xl``; zero beyond the tensor."""
    cdef Py_ssize_t n_lines = X.shape[2] if axis == 0 else X.shape[3]
    cdef Py_ssize_t hr, p
    if h >= n_lines:
        memset(xl, 0, npos * sizeof(int32_t))
        return
    hr = n_lines - 1 - h if reverse else h
    if axis == 0:
        for p in range(npos):
            xl[p] = <int32_t>X[f, c, hr, p]
    else:
        for p in range(npos):
            xl[p] = <int32_t>X[f, c, p, hr]


def line_delta(const code_t[:, :, :, ::1] X, int axis, bint reverse, int s,
               const int64_t[::1] cover_line, const int64_t[::1] cover_pos,
               int theta, bint closed, int tau,
               int64_t[:, ::1] line_events, int64_t[:, ::1] line_sops,
               int64_t[::1] err_max, int64_t[::1] err_sq, int64_t[::1] x_sq):
    """Line deltas along ``axis`` (0: y, 1: x) with reference distance ``s``.

    ``cover_line`` (length L) is the extended cover of the scan lines in scan
    order (the layer already flipped for a reverse scan); lines with zero cover
    are not needed and are skipped; lines ``>= H`` are zero padding.
    ``cover_pos`` is the conventional cover along the other axis.
    Outputs per (frame, line): events and ``sum [Dt != 0] * cover_line * cover_pos``
    (not yet multiplied by ``C_out / g``); error over the needed lines.
    """
    cdef Py_ssize_t F = X.shape[0], C = X.shape[1]
    cdef Py_ssize_t npos = X.shape[3] if axis == 0 else X.shape[2]
    cdef Py_ssize_t L = cover_line.shape[0]
    cdef Py_ssize_t f, c, h, p, slot
    cdef int32_t *xl
    cdef int32_t *ref
    cdef int32_t *rec
    cdef int32_t *cp
    cdef int32_t *r
    cdef int32_t *y
    cdef int32_t v, xt, d, nz, dt, yy, e, emax
    cdef int64_t ev, sp, esq, xsq
    if cover_pos.shape[0] != npos:
        raise ValueError("cover_pos length does not match the tensor")
    if s < 1:
        raise ValueError("stride must be >= 1")
    xl = <int32_t *>malloc(npos * sizeof(int32_t))
    cp = <int32_t *>malloc(npos * sizeof(int32_t))
    ref = <int32_t *>malloc(s * npos * sizeof(int32_t))
    rec = <int32_t *>malloc(s * npos * sizeof(int32_t))
    if xl == NULL or cp == NULL or ref == NULL or rec == NULL:
        free(xl); free(cp); free(ref); free(rec)
        raise MemoryError()
    try:
        with nogil:
            for p in range(npos):
                cp[p] = <int32_t>cover_pos[p]
            for f in range(F):
                emax = 0
                esq = 0
                xsq = 0
                for c in range(C):
                    memset(ref, 0, s * npos * sizeof(int32_t))
                    memset(rec, 0, s * npos * sizeof(int32_t))
                    for h in range(L):
                        if cover_line[h] == 0:
                            continue
                        _load_line(X, f, c, h, axis, reverse, xl, npos)
                        slot = h % s
                        r = ref + slot * npos
                        y = rec + slot * npos
                        ev = 0
                        sp = 0
                        for p in range(npos):
                            v = xl[p]
                            xt = v if _iabs(v) > tau else 0
                            d = xt - r[p]
                            nz = _iabs(d) > theta
                            dt = d if nz else 0
                            yy = y[p] + dt
                            y[p] = yy
                            r[p] = yy if closed else xt
                            e = _iabs(v - yy)
                            if e > emax:
                                emax = e
                            esq += <int64_t>e * e
                            xsq += <int64_t>v * v
                            ev += nz
                            sp += nz * cp[p]
                        line_events[f, h] += ev
                        line_sops[f, h] += sp * cover_line[h]
                err_max[f] = emax
                err_sq[f] = esq
                x_sq[f] = xsq
    finally:
        free(xl); free(cp); free(ref); free(rec)


def line_delta_curve(const code_t[:, :, :, ::1] X, int axis, bint reverse, int s,
                     const int64_t[::1] cover_line, const int64_t[::1] cover_pos,
                     const int32_t[::1] thetas, bint closed, int tau,
                     int64_t[:, ::1] events, int64_t[:, ::1] sops,
                     int64_t[:, ::1] err_max, int64_t[:, ::1] err_sq, int64_t[::1] x_sq):
    """:func:`line_delta` for many thresholds in one pass over ``X``.

    Outputs (threshold, frame): events, SOPs (without ``C_out / g``), error;
    ``x_sq`` per frame over the needed lines.
    """
    cdef Py_ssize_t F = X.shape[0], C = X.shape[1]
    cdef Py_ssize_t npos = X.shape[3] if axis == 0 else X.shape[2]
    cdef Py_ssize_t L = cover_line.shape[0], T = thetas.shape[0]
    cdef Py_ssize_t f, c, h, p, t, slot, stride_t = s * npos
    cdef int32_t *xl
    cdef int32_t *cp
    cdef int32_t *ref
    cdef int32_t *rec
    cdef int32_t *r
    cdef int32_t *y
    cdef int32_t *xw
    cdef int32_t v, xt, d, nz, dt, yy, e, emax, theta
    cdef int64_t ev, sp, esq, xsq
    if cover_pos.shape[0] != npos:
        raise ValueError("cover_pos length does not match the tensor")
    if s < 1:
        raise ValueError("stride must be >= 1")
    xl = <int32_t *>malloc(npos * sizeof(int32_t))
    xw = <int32_t *>malloc(npos * sizeof(int32_t))
    cp = <int32_t *>malloc(npos * sizeof(int32_t))
    ref = <int32_t *>malloc(T * stride_t * sizeof(int32_t) + 1)
    rec = <int32_t *>malloc(T * stride_t * sizeof(int32_t) + 1)
    if xl == NULL or xw == NULL or cp == NULL or ref == NULL or rec == NULL:
        free(xl); free(xw); free(cp); free(ref); free(rec)
        raise MemoryError()
    try:
        with nogil:
            for p in range(npos):
                cp[p] = <int32_t>cover_pos[p]
            for f in range(F):
                xsq = 0
                for c in range(C):
                    memset(ref, 0, T * stride_t * sizeof(int32_t))
                    memset(rec, 0, T * stride_t * sizeof(int32_t))
                    for h in range(L):
                        if cover_line[h] == 0:
                            continue
                        _load_line(X, f, c, h, axis, reverse, xw, npos)
                        for p in range(npos):
                            v = xw[p]
                            xsq += <int64_t>v * v
                            xl[p] = v if _iabs(v) > tau else 0
                        slot = h % s
                        for t in range(T):
                            theta = thetas[t]
                            r = ref + t * stride_t + slot * npos
                            y = rec + t * stride_t + slot * npos
                            ev = 0
                            sp = 0
                            emax = 0
                            esq = 0
                            for p in range(npos):
                                xt = xl[p]
                                d = xt - r[p]
                                nz = _iabs(d) > theta
                                dt = d if nz else 0
                                yy = y[p] + dt
                                y[p] = yy
                                r[p] = yy if closed else xt
                                ev += nz
                                sp += nz * cp[p]
                                e = _iabs(xw[p] - yy)
                                if e > emax:
                                    emax = e
                                esq += <int64_t>e * e
                            events[t, f] += ev
                            sops[t, f] += sp * cover_line[h]
                            if emax > err_max[t, f]:
                                err_max[t, f] = emax
                            err_sq[t, f] += esq
                x_sq[f] = xsq
    finally:
        free(xl); free(xw); free(cp); free(ref); free(rec)


# ---------------------------------------------------------------------------
# Temporal delta
# ---------------------------------------------------------------------------

def temporal_delta(const code_t[:, :, ::1] X, int theta, bint closed, int tau,
                   int32_t[:, ::1] count, int64_t[::1] err_max, int64_t[::1] err_sq,
                   int64_t[::1] x_sq):
    """Deltas over frames (frame 0 against zeros). ``X`` is (frame, C, H*W);
    ``count[f, j]`` += number of channels with ``Dt != 0`` at position ``j``."""
    cdef Py_ssize_t F = X.shape[0], C = X.shape[1], N = X.shape[2]
    cdef Py_ssize_t f, c, j
    cdef int32_t *ref
    cdef int32_t *rec
    cdef int32_t *r
    cdef int32_t *y
    cdef int32_t *cnt
    cdef int32_t v, xt, d, nz, dt, yy, e, emax
    cdef int64_t esq, xsq
    ref = <int32_t *>calloc(C * N + 1, sizeof(int32_t))
    rec = <int32_t *>calloc(C * N + 1, sizeof(int32_t))
    if ref == NULL or rec == NULL:
        free(ref); free(rec)
        raise MemoryError()
    try:
        with nogil:
            for f in range(F):
                emax = 0
                esq = 0
                xsq = 0
                cnt = &count[f, 0]
                for c in range(C):
                    r = ref + c * N
                    y = rec + c * N
                    for j in range(N):
                        v = <int32_t>X[f, c, j]
                        xt = v if _iabs(v) > tau else 0
                        d = xt - r[j]
                        nz = _iabs(d) > theta
                        dt = d if nz else 0
                        yy = y[j] + dt
                        y[j] = yy
                        r[j] = yy if closed else xt
                        e = _iabs(v - yy)
                        if e > emax:
                            emax = e
                        esq += <int64_t>e * e
                        xsq += <int64_t>v * v
                        cnt[j] += nz
                err_max[f] = emax
                err_sq[f] = esq
                x_sq[f] = xsq
    finally:
        free(ref); free(rec)


def temporal_delta_curve(const code_t[:, :, ::1] X, const int64_t[::1] fan_out,
                         const int32_t[::1] thetas, bint closed, int tau,
                         int64_t[:, ::1] events, int64_t[:, ::1] sops,
                         int64_t[:, ::1] err_max, int64_t[:, ::1] err_sq, int64_t[::1] x_sq):
    """:func:`temporal_delta` for many thresholds in one pass. ``fan_out`` (H*W)
    is the conventional fan-out per position (without ``C_out / g``)."""
    cdef Py_ssize_t F = X.shape[0], C = X.shape[1], N = X.shape[2], T = thetas.shape[0]
    cdef Py_ssize_t B = 512
    cdef Py_ssize_t f, c, jb, j0, nb, p, t
    cdef int32_t *xl
    cdef int32_t *ref
    cdef int32_t *rec
    cdef int32_t *r
    cdef int32_t *y
    cdef int32_t v, xt, d, nz, dt, yy, e, emax, theta
    cdef int64_t ev, sp, esq, xsq
    if fan_out.shape[0] != N:
        raise ValueError("fan_out length does not match the tensor")
    xl = <int32_t *>malloc(B * sizeof(int32_t))
    ref = <int32_t *>malloc(T * B * sizeof(int32_t) + 1)
    rec = <int32_t *>malloc(T * B * sizeof(int32_t) + 1)
    if xl == NULL or ref == NULL or rec == NULL:
        free(xl); free(ref); free(rec)
        raise MemoryError()
    try:
        with nogil:
            for c in range(C):
                for jb in range((N + B - 1) // B):
                    j0 = jb * B
                    nb = min(B, N - j0)
                    memset(ref, 0, T * B * sizeof(int32_t))
                    memset(rec, 0, T * B * sizeof(int32_t))
                    for f in range(F):
                        xsq = 0
                        for p in range(nb):
                            v = <int32_t>X[f, c, j0 + p]
                            xl[p] = v
                            xsq += <int64_t>v * v
                        x_sq[f] += xsq
                        for t in range(T):
                            theta = thetas[t]
                            r = ref + t * B
                            y = rec + t * B
                            ev = 0
                            sp = 0
                            emax = 0
                            esq = 0
                            for p in range(nb):
                                v = xl[p]
                                xt = v if _iabs(v) > tau else 0
                                d = xt - r[p]
                                nz = _iabs(d) > theta
                                dt = d if nz else 0
                                yy = y[p] + dt
                                y[p] = yy
                                r[p] = yy if closed else xt
                                ev += nz
                                sp += nz * fan_out[j0 + p]
                                e = _iabs(v - yy)
                                if e > emax:
                                    emax = e
                                esq += <int64_t>e * e
                            events[t, f] += ev
                            sops[t, f] += sp
                            if emax > err_max[t, f]:
                                err_max[t, f] = emax
                            err_sq[t, f] += esq
    finally:
        free(xl); free(ref); free(rec)


# ---------------------------------------------------------------------------
# Histogram of |X| (conventional curves over tau)
# ---------------------------------------------------------------------------

def abs_histogram(const code_t[:, :, ::1] X, const int64_t[::1] fan_out,
                  int64_t[:, ::1] hist, int64_t[:, ::1] hist_sops, int64_t[::1] x_sq):
    """``hist[f, v]`` += count of ``|X| == v`` and ``hist_sops[f, v]`` += their
    fan-out (``fan_out`` per position, length H*W); values beyond the last bin
    are gathered in the last bin. ``x_sq[f] = sum X**2``."""
    cdef Py_ssize_t F = X.shape[0], C = X.shape[1], N = X.shape[2]
    cdef Py_ssize_t V = hist.shape[1]
    cdef Py_ssize_t f, c, j
    cdef int32_t a
    cdef int64_t xsq
    if fan_out.shape[0] != N:
        raise ValueError("fan_out length does not match the tensor")
    if V < 1:
        raise ValueError("hist needs at least one bin")
    with nogil:
        for f in range(F):
            xsq = 0
            for c in range(C):
                for j in range(N):
                    a = _iabs(<int32_t>X[f, c, j])
                    xsq += <int64_t>a * a
                    if a >= V:
                        a = <int32_t>(V - 1)
                    hist[f, a] += 1
                    hist_sops[f, a] += fan_out[j]
            x_sq[f] = xsq
