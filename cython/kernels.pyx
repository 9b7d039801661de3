# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, nonecheck=False
"""Event-counting kernels (``semantics.md``), compiled into ``else_dse._kernels``.

All kernels take signed codes ``X`` (int8, uint8, int16 or int32; C-contiguous),
make one pass over every frame, release the GIL and write their results into
caller-allocated arrays (zeroed by the caller). Geometry enters only as the
int64 cover arrays computed by ``else_dse.workload``; nothing here re-derives
it. ``else_dse.events`` owns validation, dispatch and the xarray wrapping. The
hot loops are plain C in ``kernels_core_impl.h`` (vectorized by the compiler,
with an AVX2 clone picked at load time on x86-64 Linux).

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

cdef extern from "kernels_core.h" nogil:
    ctypedef struct ek_err:
        int64_t esq
        int64_t xsq
        int32_t emax
    int EK_BLOCK
    void ek_conventional_i8(const int8_t *x, Py_ssize_t n, int32_t tau, int32_t *cnt, ek_err *err)
    void ek_temporal_i8(const int8_t *x, Py_ssize_t n, int32_t theta, int closed, int32_t tau,
                        int32_t *ref, int32_t *rec, int32_t *cnt, ek_err *err)
    void ek_line_plane_i8(const int8_t *plane, Py_ssize_t n_real, Py_ssize_t npos,
                          Py_ssize_t line_stride, Py_ssize_t pos_stride, int reverse,
                          const int64_t *cover_line, Py_ssize_t L, Py_ssize_t s,
                          const int32_t *cp, int32_t theta, int closed, int32_t tau,
                          int32_t *ref, int32_t *rec, int32_t *xl, int32_t *eb,
                          int64_t *line_ev, int64_t *line_sp, ek_err *err)
    void ek_transpose_i32(const int32_t *src, Py_ssize_t n_rows, Py_ssize_t n_cols, int32_t *dst)
    void ek_transpose_i16(const int16_t *src, Py_ssize_t n_rows, Py_ssize_t n_cols, int32_t *dst)
    void ek_transpose_u8(const uint8_t *src, Py_ssize_t n_rows, Py_ssize_t n_cols, int32_t *dst)
    void ek_transpose_i8(const int8_t *src, Py_ssize_t n_rows, Py_ssize_t n_cols, int32_t *dst)
    void ek_conventional_u8(const uint8_t *x, Py_ssize_t n, int32_t tau, int32_t *cnt, ek_err *err)
    void ek_temporal_u8(const uint8_t *x, Py_ssize_t n, int32_t theta, int closed, int32_t tau,
                        int32_t *ref, int32_t *rec, int32_t *cnt, ek_err *err)
    void ek_line_plane_u8(const uint8_t *plane, Py_ssize_t n_real, Py_ssize_t npos,
                          Py_ssize_t line_stride, Py_ssize_t pos_stride, int reverse,
                          const int64_t *cover_line, Py_ssize_t L, Py_ssize_t s,
                          const int32_t *cp, int32_t theta, int closed, int32_t tau,
                          int32_t *ref, int32_t *rec, int32_t *xl, int32_t *eb,
                          int64_t *line_ev, int64_t *line_sp, ek_err *err)
    void ek_conventional_i16(const int16_t *x, Py_ssize_t n, int32_t tau, int32_t *cnt, ek_err *err)
    void ek_temporal_i16(const int16_t *x, Py_ssize_t n, int32_t theta, int closed, int32_t tau,
                        int32_t *ref, int32_t *rec, int32_t *cnt, ek_err *err)
    void ek_line_plane_i16(const int16_t *plane, Py_ssize_t n_real, Py_ssize_t npos,
                          Py_ssize_t line_stride, Py_ssize_t pos_stride, int reverse,
                          const int64_t *cover_line, Py_ssize_t L, Py_ssize_t s,
                          const int32_t *cp, int32_t theta, int closed, int32_t tau,
                          int32_t *ref, int32_t *rec, int32_t *xl, int32_t *eb,
                          int64_t *line_ev, int64_t *line_sp, ek_err *err)
    void ek_conventional_i32(const int32_t *x, Py_ssize_t n, int32_t tau, int32_t *cnt, ek_err *err)
    void ek_temporal_i32(const int32_t *x, Py_ssize_t n, int32_t theta, int closed, int32_t tau,
                        int32_t *ref, int32_t *rec, int32_t *cnt, ek_err *err)
    void ek_line_plane_i32(const int32_t *plane, Py_ssize_t n_real, Py_ssize_t npos,
                          Py_ssize_t line_stride, Py_ssize_t pos_stride, int reverse,
                          const int64_t *cover_line, Py_ssize_t L, Py_ssize_t s,
                          const int32_t *cp, int32_t theta, int closed, int32_t tau,
                          int32_t *ref, int32_t *rec, int32_t *xl, int32_t *eb,
                          int64_t *line_ev, int64_t *line_sp, ek_err *err)

ctypedef fused code_t:
    int8_t
    uint8_t
    int16_t
    int32_t


cdef inline int32_t _iabs(int32_t v) noexcept nogil:
    return -v if v < 0 else v


cdef inline void _conv(const code_t *x, Py_ssize_t n, int32_t tau, int32_t *cnt,
                       ek_err *err) noexcept nogil:
    if code_t is int8_t:
        ek_conventional_i8(x, n, tau, cnt, err)
    elif code_t is uint8_t:
        ek_conventional_u8(x, n, tau, cnt, err)
    elif code_t is int16_t:
        ek_conventional_i16(x, n, tau, cnt, err)
    else:
        ek_conventional_i32(x, n, tau, cnt, err)


cdef inline void _temporal(const code_t *x, Py_ssize_t n, int32_t theta, int closed, int32_t tau,
                           int32_t *ref, int32_t *rec, int32_t *cnt, ek_err *err) noexcept nogil:
    if code_t is int8_t:
        ek_temporal_i8(x, n, theta, closed, tau, ref, rec, cnt, err)
    elif code_t is uint8_t:
        ek_temporal_u8(x, n, theta, closed, tau, ref, rec, cnt, err)
    elif code_t is int16_t:
        ek_temporal_i16(x, n, theta, closed, tau, ref, rec, cnt, err)
    else:
        ek_temporal_i32(x, n, theta, closed, tau, ref, rec, cnt, err)


cdef inline void _line(const code_t *plane, Py_ssize_t n_real, Py_ssize_t npos,
                       Py_ssize_t line_stride, Py_ssize_t pos_stride, int reverse,
                       const int64_t *cover_line, Py_ssize_t L, Py_ssize_t s,
                       const int32_t *cp, int32_t theta, int closed, int32_t tau,
                       int32_t *ref, int32_t *rec, int32_t *xl, int32_t *eb,
                       int64_t *line_ev, int64_t *line_sp, ek_err *err,
                       int32_t *tbuf) noexcept nogil:
    if pos_stride != 1:  # axis x: transpose the plane (H x W) into tbuf (W x H), scan its rows
        if code_t is int8_t:
            ek_transpose_i8(plane, npos, n_real, tbuf)
        elif code_t is uint8_t:
            ek_transpose_u8(plane, npos, n_real, tbuf)
        elif code_t is int16_t:
            ek_transpose_i16(plane, npos, n_real, tbuf)
        else:
            ek_transpose_i32(plane, npos, n_real, tbuf)
        ek_line_plane_i32(tbuf, n_real, npos, npos, 1, reverse, cover_line, L, s,
                          cp, theta, closed, tau, ref, rec, xl, eb, line_ev, line_sp, err)
        return
    if code_t is int8_t:
        ek_line_plane_i8(plane, n_real, npos, line_stride, pos_stride, reverse, cover_line, L, s,
                         cp, theta, closed, tau, ref, rec, xl, eb, line_ev, line_sp, err)
    elif code_t is uint8_t:
        ek_line_plane_u8(plane, n_real, npos, line_stride, pos_stride, reverse, cover_line, L, s,
                         cp, theta, closed, tau, ref, rec, xl, eb, line_ev, line_sp, err)
    elif code_t is int16_t:
        ek_line_plane_i16(plane, n_real, npos, line_stride, pos_stride, reverse, cover_line, L, s,
                          cp, theta, closed, tau, ref, rec, xl, eb, line_ev, line_sp, err)
    else:
        ek_line_plane_i32(plane, n_real, npos, line_stride, pos_stride, reverse, cover_line, L, s,
                          cp, theta, closed, tau, ref, rec, xl, eb, line_ev, line_sp, err)


cdef inline void _err_zero(ek_err *e) noexcept nogil:
    e.esq = 0
    e.xsq = 0
    e.emax = 0


# ---------------------------------------------------------------------------
# Conventional (zero skipping after tau)
# ---------------------------------------------------------------------------

def conventional(const code_t[:, :, ::1] X, int tau, int32_t[:, ::1] count,
                 int64_t[::1] err_max, int64_t[::1] err_sq, int64_t[::1] x_sq):
    """``X`` is (frame, C, H*W). ``count[f, j]`` += number of channels with
    ``|X| > tau`` at position ``j``; error of the activation threshold per frame."""
    cdef Py_ssize_t F = X.shape[0], C = X.shape[1], N = X.shape[2]
    cdef Py_ssize_t f, c
    cdef ek_err e
    if count.shape[0] != F or count.shape[1] != N:
        raise ValueError("count must have shape (frame, H*W)")
    with nogil:
        for f in range(F):
            _err_zero(&e)
            for c in range(C):
                _conv(&X[f, c, 0], N, tau, &count[f, 0], &e)
            err_max[f] = e.emax
            err_sq[f] = e.esq
            x_sq[f] = e.xsq


# ---------------------------------------------------------------------------
# Line delta (ELSE)
# ---------------------------------------------------------------------------

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
    cdef Py_ssize_t F = X.shape[0], C = X.shape[1], H = X.shape[2], W = X.shape[3]
    cdef Py_ssize_t n_real = H if axis == 0 else W
    cdef Py_ssize_t npos = W if axis == 0 else H
    cdef Py_ssize_t line_stride = W if axis == 0 else 1
    cdef Py_ssize_t pos_stride = 1 if axis == 0 else W
    cdef Py_ssize_t L = cover_line.shape[0]
    cdef Py_ssize_t f, c, p
    cdef int32_t *buf
    cdef ek_err e
    if cover_pos.shape[0] != npos:
        raise ValueError("cover_pos length does not match the tensor")
    if s < 1:
        raise ValueError("stride must be >= 1")
    if line_events.shape[0] != F or line_events.shape[1] != L or line_sops.shape[1] != L:
        raise ValueError("line outputs must have shape (frame, len(cover_line))")
    cdef int32_t *tbuf = NULL
    buf = <int32_t *>malloc((2 * s + 3) * npos * sizeof(int32_t))
    if axis != 0:
        tbuf = <int32_t *>malloc(H * W * sizeof(int32_t))
    if buf == NULL or (axis != 0 and tbuf == NULL):
        free(buf); free(tbuf)
        raise MemoryError()
    try:
        with nogil:
            for p in range(npos):
                buf[p] = <int32_t>cover_pos[p]
            for f in range(F):
                _err_zero(&e)
                for c in range(C):
                    _line(&X[f, c, 0, 0], n_real, npos, line_stride, pos_stride, reverse,
                          &cover_line[0], L, s, buf, theta, closed, tau,
                          buf + 3 * npos, buf + (3 + s) * npos, buf + npos, buf + 2 * npos,
                          &line_events[f, 0], &line_sops[f, 0], &e, tbuf)
                err_max[f] = e.emax
                err_sq[f] = e.esq
                x_sq[f] = e.xsq
    finally:
        free(buf); free(tbuf)


def line_delta_curve(const code_t[:, :, :, ::1] X, int axis, bint reverse, int s,
                     const int64_t[::1] cover_line, const int64_t[::1] cover_pos,
                     const int32_t[::1] thetas, bint closed, int tau,
                     int64_t[:, ::1] events, int64_t[:, ::1] sops,
                     int64_t[:, ::1] err_max, int64_t[:, ::1] err_sq, int64_t[::1] x_sq):
    """:func:`line_delta` for many thresholds in one pass over ``X`` (each plane
    is read once and processed for every threshold while it is in cache).

    Outputs (threshold, frame): events, SOPs (without ``C_out / g``), error;
    ``x_sq`` per frame over the needed lines.
    """
    cdef Py_ssize_t F = X.shape[0], C = X.shape[1], H = X.shape[2], W = X.shape[3]
    cdef Py_ssize_t n_real = H if axis == 0 else W
    cdef Py_ssize_t npos = W if axis == 0 else H
    cdef Py_ssize_t line_stride = W if axis == 0 else 1
    cdef Py_ssize_t pos_stride = 1 if axis == 0 else W
    cdef Py_ssize_t L = cover_line.shape[0], T = thetas.shape[0]
    cdef Py_ssize_t f, c, p, t, h, ring = s * npos
    cdef int32_t *buf
    cdef int32_t *states
    cdef int64_t *lines
    cdef ek_err *errs
    cdef int64_t ev, sp
    if cover_pos.shape[0] != npos:
        raise ValueError("cover_pos length does not match the tensor")
    if s < 1:
        raise ValueError("stride must be >= 1")
    cdef int32_t *tbuf = NULL
    if axis != 0:
        tbuf = <int32_t *>malloc(H * W * sizeof(int32_t))
        if tbuf == NULL:
            raise MemoryError()
    buf = <int32_t *>malloc(3 * npos * sizeof(int32_t))
    states = <int32_t *>malloc(2 * T * ring * sizeof(int32_t) + 1)
    lines = <int64_t *>malloc(2 * T * L * sizeof(int64_t) + 1)
    errs = <ek_err *>malloc(T * sizeof(ek_err) + 1)
    if buf == NULL or states == NULL or lines == NULL or errs == NULL:
        free(buf); free(states); free(lines); free(errs); free(tbuf)
        raise MemoryError()
    try:
        with nogil:
            for p in range(npos):
                buf[p] = <int32_t>cover_pos[p]
            for f in range(F):
                memset(lines, 0, 2 * T * L * sizeof(int64_t))
                for t in range(T):
                    _err_zero(&errs[t])
                for c in range(C):
                    for t in range(T):
                        _line(&X[f, c, 0, 0], n_real, npos, line_stride, pos_stride, reverse,
                              &cover_line[0], L, s, buf, thetas[t], closed, tau,
                              states + 2 * t * ring, states + (2 * t + 1) * ring,
                              buf + npos, buf + 2 * npos,
                              lines + 2 * t * L, lines + (2 * t + 1) * L, &errs[t], tbuf)
                for t in range(T):
                    ev = 0
                    sp = 0
                    for h in range(L):
                        ev += lines[2 * t * L + h]
                        sp += lines[(2 * t + 1) * L + h]
                    events[t, f] = ev
                    sops[t, f] = sp
                    err_max[t, f] = errs[t].emax
                    err_sq[t, f] = errs[t].esq
                x_sq[f] = errs[0].xsq if T > 0 else 0
    finally:
        free(buf); free(states); free(lines); free(errs); free(tbuf)


# ---------------------------------------------------------------------------
# Temporal delta
# ---------------------------------------------------------------------------

def temporal_delta(const code_t[:, :, ::1] X, int theta, bint closed, int tau,
                   int32_t[:, ::1] count, int64_t[::1] err_max, int64_t[::1] err_sq,
                   int64_t[::1] x_sq):
    """Deltas over frames (frame 0 against zeros). ``X`` is (frame, C, H*W);
    ``count[f, j]`` += number of channels with ``Dt != 0`` at position ``j``."""
    cdef Py_ssize_t F = X.shape[0], C = X.shape[1], N = X.shape[2]
    cdef Py_ssize_t f, c
    cdef int32_t *ref
    cdef int32_t *rec
    cdef ek_err e
    if count.shape[0] != F or count.shape[1] != N:
        raise ValueError("count must have shape (frame, H*W)")
    ref = <int32_t *>calloc(C * N + 1, sizeof(int32_t))
    rec = <int32_t *>calloc(C * N + 1, sizeof(int32_t))
    if ref == NULL or rec == NULL:
        free(ref); free(rec)
        raise MemoryError()
    try:
        with nogil:
            for f in range(F):
                _err_zero(&e)
                for c in range(C):
                    _temporal(&X[f, c, 0], N, theta, closed, tau, ref + c * N, rec + c * N,
                              &count[f, 0], &e)
                err_max[f] = e.emax
                err_sq[f] = e.esq
                x_sq[f] = e.xsq
    finally:
        free(ref); free(rec)


def temporal_delta_curve(const code_t[:, :, ::1] X, const int64_t[::1] fan_out,
                         const int32_t[::1] thetas, bint closed, int tau,
                         int64_t[:, ::1] events, int64_t[:, ::1] sops,
                         int64_t[:, ::1] err_max, int64_t[:, ::1] err_sq, int64_t[::1] x_sq):
    """:func:`temporal_delta` for many thresholds in one pass (blocks of positions
    are followed through all frames for every threshold while in cache).
    ``fan_out`` (H*W) is the conventional fan-out per position."""
    cdef Py_ssize_t F = X.shape[0], C = X.shape[1], N = X.shape[2], T = thetas.shape[0]
    cdef Py_ssize_t B = EK_BLOCK
    cdef Py_ssize_t f, c, jb, j0, nb, p, t
    cdef int32_t *states
    cdef int32_t *cnt
    cdef ek_err e
    cdef int64_t ev, sp
    if fan_out.shape[0] != N:
        raise ValueError("fan_out length does not match the tensor")
    states = <int32_t *>malloc(2 * T * B * sizeof(int32_t) + 1)
    cnt = <int32_t *>malloc(B * sizeof(int32_t))
    if states == NULL or cnt == NULL:
        free(states); free(cnt)
        raise MemoryError()
    try:
        with nogil:
            for c in range(C):
                for jb in range((N + B - 1) // B):
                    j0 = jb * B
                    nb = min(B, N - j0)
                    memset(states, 0, 2 * T * B * sizeof(int32_t))
                    for f in range(F):
                        for t in range(T):
                            memset(cnt, 0, nb * sizeof(int32_t))
                            _err_zero(&e)
                            _temporal(&X[f, c, j0], nb, thetas[t], closed, tau,
                                      states + 2 * t * B, states + (2 * t + 1) * B, cnt, &e)
                            ev = 0
                            sp = 0
                            for p in range(nb):
                                ev += cnt[p]
                                sp += cnt[p] * fan_out[j0 + p]
                            events[t, f] += ev
                            sops[t, f] += sp
                            if e.emax > err_max[t, f]:
                                err_max[t, f] = e.emax
                            err_sq[t, f] += e.esq
                            if t == 0:
                                x_sq[f] += e.xsq
    finally:
        free(states); free(cnt)


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
