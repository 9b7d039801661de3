# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, nonecheck=False
"""Event-counting kernels (``semantics.md``), compiled into ``else_dse._kernels``.

All kernels take codes (int8, uint8, int16, uint16 or int32; C-contiguous) and
a zero point ``zp`` (keyword, default 0) and count on ``X = code - zp`` (the
signed codes of ``QuantizedRecording.signed``, formed on load), make one pass over every frame, release the GIL and write their results into
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
the running sum of the transmitted deltas). A lossless setting (``tau = 0`` for
conventional, ``theta = tau = 0`` for line and temporal delta) has no error: ``err_max``,
``err_sq`` and ``x_sq`` are left 0 (the relative error is 0 whatever ``x_sq``).
"""

import os

from libc.stdint cimport int8_t, uint8_t, int16_t, uint16_t, int32_t, int64_t
from libc.stdlib cimport malloc, free, calloc
from libc.string cimport memset, memcpy
from cython.parallel cimport prange, parallel, threadid

cdef extern from "kernels_core.h" nogil:
    ctypedef struct ek_err:
        int64_t esq
        int64_t xsq
        int32_t emax
    int EK_BLOCK
    Py_ssize_t EK_HSTRIDE(Py_ssize_t T)
    enum:
        EK_I8, EK_U8, EK_I16, EK_U16, EK_I32
    # one entry point per kernel; `kind` (see _kind) names the type of the codes
    void ek_conventional(int kind, const void *x, int32_t zp, Py_ssize_t C, Py_ssize_t N, int32_t tau,
                         int32_t *cnt, ek_err *err, int32_t *out)
    void ek_temporal(int kind, const void *x, int32_t zp, Py_ssize_t n, Py_ssize_t off, Py_ssize_t N,
                     int32_t theta, int closed, int32_t tau, int32_t *ref, int32_t *rec, int32_t *cnt,
                     ek_err *err, int32_t *out)
    void ek_temporal16(int kind, const void *x, int32_t zp, Py_ssize_t n, Py_ssize_t off, Py_ssize_t N,
                       int32_t theta, int closed, int32_t tau, int16_t *ref, int16_t *rec, int32_t *cnt,
                       ek_err *err, int32_t *out)
    void ek_line_frame(int kind, const void *x, int32_t zp, Py_ssize_t C, Py_ssize_t n_real,
                       Py_ssize_t npos, int reverse, int prefetch, const int64_t *cover_line, Py_ssize_t L,
                       Py_ssize_t s, const int32_t *cp, int32_t theta, int closed, int32_t tau,
                       int32_t *ref, int32_t *rec, int32_t *xl, int32_t *eb,
                       int64_t *line_ev, int64_t *line_sp, ek_err *err, int32_t *out)
    void ek_line_frame16(int kind, const void *x, int32_t zp, Py_ssize_t C, Py_ssize_t n_real,
                         Py_ssize_t npos, int reverse, int prefetch, const int64_t *cover_line, Py_ssize_t L,
                         Py_ssize_t s, const int16_t *cp, int32_t theta, int closed, int32_t tau,
                         int16_t *ref, int16_t *rec, int16_t *xl, int16_t *eb,
                         int64_t *line_ev, int64_t *line_sp, ek_err *err, int32_t *out)
    void ek_transpose(int kind, const void *src, int32_t zp, Py_ssize_t n_rows, Py_ssize_t n_cols,
                      int32_t *dst)
    void ek_transpose16(int kind, const void *src, int32_t zp, Py_ssize_t n_rows, Py_ssize_t n_cols,
                        int16_t *dst)
    void ek_pair_counts(int kind, const void *x, int32_t zp, Py_ssize_t C, Py_ssize_t N, Py_ssize_t k,
                        Py_ssize_t nz_lo, Py_ssize_t nz_hi, int32_t *pair, int32_t *nzc)
    void ek_frame_diff(int kind, const void *cur, const void *prev, Py_ssize_t C, Py_ssize_t N,
                       int32_t *cnt)
    void ek_temporal_thresholds(int kind, const void *x, int32_t zp, Py_ssize_t nb, const int32_t *thetas,
                                Py_ssize_t T, int closed, int32_t tau, int32_t *states,
                                const int32_t *fan, int64_t *ev_out, int64_t *sp_out,
                                int32_t *emax_out, int64_t *esq_out, int64_t *xsq_out,
                                const int32_t *lut, int32_t amax, int64_t *hc, int64_t *hs,
                                int32_t *hl, int with_error)
    int ek_vec16()
    int ek_line_frame_thresholds16(int kind, const void *x, int32_t zp, Py_ssize_t C, Py_ssize_t n_real,
                                   Py_ssize_t npos, int reverse, int prefetch, const int64_t *cover_line,
                                   Py_ssize_t L, Py_ssize_t s, const int16_t *cp, const int32_t *thetas,
                                   Py_ssize_t T, int closed, int32_t tau, int16_t *states, int16_t *xl,
                                   int64_t *ev_out, int64_t *sp_out, int32_t *emax_out, int64_t *esq_out,
                                   int64_t *xsq_out, int with_error)
    void ek_line_frame_thresholds(int kind, const void *x, int32_t zp, Py_ssize_t C, Py_ssize_t n_real,
                                  Py_ssize_t npos, int reverse, int prefetch, const int64_t *cover_line,
                                  Py_ssize_t L, Py_ssize_t s, const int32_t *cp,
                                  const int32_t *thetas, Py_ssize_t T, int closed, int32_t tau,
                                  int32_t *states, int32_t *xl, int32_t *xtl, int32_t *eb,
                                  int64_t *ev_out, int64_t *sp_out, int32_t *emax_out,
                                  int64_t *esq_out, int64_t *xsq_out,
                                  const int32_t *lut, int32_t amax, int64_t *hc, int64_t *hs,
                                  int32_t *hl, int with_error)


ctypedef fused code_t:
    int8_t
    uint8_t
    int16_t
    uint16_t
    int32_t


cdef inline int32_t _iabs(int32_t v) noexcept nogil:
    return -v if v < 0 else v


cdef inline int _kind(const code_t *x) noexcept nogil:
    """The C code type of the fused type (the one per-dtype dispatch; kernels_core.h
    generates the per-type instances and picks one by it)."""
    if code_t is int8_t:
        return EK_I8
    elif code_t is uint8_t:
        return EK_U8
    elif code_t is int16_t:
        return EK_I16
    elif code_t is uint16_t:
        return EK_U16
    else:
        return EK_I32


cdef inline Py_ssize_t _code_size(int kind) noexcept nogil:
    """Bytes per code of type ``kind``."""
    if kind == EK_I8 or kind == EK_U8:
        return 1
    if kind == EK_I16 or kind == EK_U16:
        return 2
    return 4


cdef inline void _conv(const code_t *x, int32_t zp, Py_ssize_t C, Py_ssize_t N, int32_t tau, int32_t *cnt,
                       ek_err *err, int32_t *out) noexcept nogil:
    ek_conventional(_kind(x), x, zp, C, N, tau, cnt, err, out)


cdef void _temporal_frames(int kind, const void *x, Py_ssize_t n, Py_ssize_t F, Py_ssize_t N,
                          Py_ssize_t i0, Py_ssize_t nb, int32_t zp, int32_t theta, int closed,
                          int32_t tau, int32_t *ref, int16_t *ref16, Py_ssize_t TB, int32_t *cnt,
                          ek_err *errs, int32_t *recon) noexcept nogil:
    """Elements ``[i0, i0 + nb)`` of F frames of n codes of type ``kind`` (``x``: frame 0)
    through every frame, on the state in ``ref`` (or ``ref16``: 16-bit; R at 0, Y at TB);
    frame f counts into ``cnt + f * N`` and ``errs[f]``; ``recon`` (F * n, or NULL)."""
    cdef Py_ssize_t f, sz = _code_size(kind)
    cdef const char *xs = <const char *>x + i0 * sz
    for f in range(F):
        if ref16 != NULL:
            ek_temporal16(kind, xs + f * n * sz, zp, nb, i0, N, theta, closed, tau, ref16, ref16 + TB,
                          cnt + f * N, &errs[f], recon + f * n + i0 if recon != NULL else NULL)
        else:
            ek_temporal(kind, xs + f * n * sz, zp, nb, i0, N, theta, closed, tau, ref, ref + TB,
                        cnt + f * N, &errs[f], recon + f * n + i0 if recon != NULL else NULL)


cdef inline void _line_frame(int kind, const void *x, int32_t zp, Py_ssize_t C, Py_ssize_t n_real,
                             Py_ssize_t npos, int reverse, int prefetch, const int64_t *cover_line,
                             Py_ssize_t L, Py_ssize_t s, const int32_t *cp, int32_t theta, int closed,
                             int32_t tau, int32_t *ref, int32_t *rec, int32_t *xl, int32_t *eb,
                             int64_t *line_ev, int64_t *line_sp, ek_err *err, int32_t *out,
                             bint narrow) noexcept nogil:
    """ek_line_frame, on 16-bit state and lanes when ``narrow`` (the int32 scratch
    then holds int16 buffers of the same element counts, and ``cp`` int16 covers);
    ``prefetch``: the codes are read from memory (not a transpose just written)."""
    if narrow:
        ek_line_frame16(kind, x, zp, C, n_real, npos, reverse, prefetch, cover_line, L, s,
                        <const int16_t *>cp, theta, closed, tau,
                        <int16_t *>ref, <int16_t *>rec, <int16_t *>xl, <int16_t *>eb, line_ev, line_sp,
                        err, out)
    else:
        ek_line_frame(kind, x, zp, C, n_real, npos, reverse, prefetch, cover_line, L, s, cp, theta,
                      closed, tau, ref, rec, xl, eb, line_ev, line_sp, err, out)


cdef inline void _line(int kind, const void *x, int32_t zp, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                       int axis, int reverse, const int64_t *cover_line, Py_ssize_t L, Py_ssize_t s,
                       const int32_t *cp, int32_t theta, int closed, int32_t tau,
                       int32_t *ref, int32_t *rec, int32_t *xl, int32_t *eb,
                       int64_t *line_ev, int64_t *line_sp, ek_err *err,
                       int32_t *tbuf, int32_t *out, int32_t *obuf, bint narrow) noexcept nogil:
    """One frame (C, H, W) of codes of type ``kind``; axis x transposes the planes of a
    chunk of channels into tbuf (W x H each: int16 for 16-bit lanes without ``out``, else
    int32) and scans their rows, chunk by chunk. ``out`` (C, H, W) int32 or NULL: the
    reconstruction; axis x writes it transposed into obuf (the size of tbuf) and
    transposes it back."""
    cdef Py_ssize_t c, c0, cb, cc, chunk = max(1, EK_BLOCK // H), plane = H * W * _code_size(kind)
    cdef bint t16 = narrow and out == NULL
    if axis != 0:
        for cb in range((C + chunk - 1) // chunk):
            c0 = cb * chunk
            cc = min(chunk, C - c0)
            for c in range(c0, c0 + cc):
                if t16:
                    ek_transpose16(kind, <const char *>x + c * plane, zp, H, W,
                                   <int16_t *>tbuf + (c - c0) * H * W)
                else:
                    ek_transpose(kind, <const char *>x + c * plane, zp, H, W, tbuf + (c - c0) * H * W)
            _line_frame(EK_I16 if t16 else EK_I32, tbuf, 0, cc, W, H, reverse, 0, cover_line, L, s, cp,
                        theta, closed, tau, ref, rec, xl, eb, line_ev, line_sp, err,
                        obuf if out != NULL else NULL, narrow)
            if out != NULL:
                for c in range(c0, c0 + cc):
                    ek_transpose(EK_I32, obuf + (c - c0) * H * W, 0, W, H, out + c * H * W)
        return
    _line_frame(kind, x, zp, C, H, W, reverse, 1, cover_line, L, s, cp, theta, closed, tau,
                ref, rec, xl, eb, line_ev, line_sp, err, out, narrow)


cdef inline void _temporal_thresholds(const code_t *x, int32_t zp, Py_ssize_t nb, const int32_t *thetas,
                                      Py_ssize_t T, int closed, int32_t tau, int32_t *states,
                                      const int32_t *fan, int64_t *ev, int64_t *sp, int32_t *emax,
                                      int64_t *esq, int64_t *xsq, const int32_t *lut, int32_t amax,
                                      int64_t *hc, int64_t *hs, int32_t *hl, int werr) noexcept nogil:
    ek_temporal_thresholds(_kind(x), x, zp, nb, thetas, T, closed, tau, states, fan, ev, sp, emax, esq,
                           xsq, lut, amax, hc, hs, hl, werr)


cdef inline void _transpose(const code_t *x, int32_t zp, Py_ssize_t H, Py_ssize_t W,
                            int32_t *dst) noexcept nogil:
    ek_transpose(_kind(x), x, zp, H, W, dst)


cdef inline void _line_thresholds(const code_t *x, int32_t zp, Py_ssize_t C, Py_ssize_t H,
                                  Py_ssize_t W, int reverse, const int64_t *cover_line, Py_ssize_t L,
                                  Py_ssize_t s, const int32_t *cp, const int32_t *thetas, Py_ssize_t T,
                                  int closed, int32_t tau, int32_t *states, int32_t *xl, int32_t *xtl,
                                  int32_t *eb, int64_t *ev, int64_t *sp, int32_t *emax, int64_t *esq,
                                  int64_t *xsq, const int32_t *lut, int32_t amax, int64_t *hc,
                                  int64_t *hs, int32_t *hl, int werr) noexcept nogil:
    ek_line_frame_thresholds(_kind(x), x, zp, C, H, W, reverse, 1, cover_line, L, s, cp, thetas, T, closed,
                             tau, states, xl, xtl, eb, ev, sp, emax, esq, xsq, lut, amax, hc, hs, hl,
                             werr)


cdef inline void _err_zero(ek_err *e) noexcept nogil:
    e.esq = 0
    e.xsq = 0
    e.emax = 0


cdef bint _teams_started = False   # a team of 2+ OpenMP threads has run in this process
cdef bint _fork_child = False      # this process was forked from one where a team had run


def simd() -> bool:
    """Whether the hand-written AVX2 loops run in this process (an AVX2 CPU, and
    ``ELSE_DSE_NO_AVX2`` not set); otherwise the same loops run in plain C."""
    return ek_vec16() != 0


def _forked() -> None:
    """After a fork: GNU OpenMP's thread pool does not survive it (the child's first team
    waits for the parent's threads forever), so a child of a process that ran a team runs
    every kernel on one thread (the results do not depend on the thread count)."""
    global _fork_child
    if _teams_started:
        _fork_child = True


os.register_at_fork(after_in_child=_forked)


cdef int _team(int threads, Py_ssize_t work) except -1:
    """Threads for ``work`` independent items: ``threads`` (>= 1), at most one per item
    (one in a fork child of a process that ran a team: see :func:`_forked`)."""
    global _teams_started
    cdef int n
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    n = 1 if _fork_child else <int>max(1, min(<Py_ssize_t>threads, work))
    if n > 1:
        _teams_started = True
    return n


cdef int _errs_out(const ek_err *errs, Py_ssize_t F, int64_t[::1] err_max, int64_t[::1] err_sq,
                   int64_t[::1] x_sq) except -1 nogil:
    cdef Py_ssize_t f
    for f in range(F):
        err_max[f] = errs[f].emax
        err_sq[f] = errs[f].esq
        x_sq[f] = errs[f].xsq
    return 0


# ---------------------------------------------------------------------------
# Conventional (zero skipping after tau)
# ---------------------------------------------------------------------------

def conventional(const code_t[:, :, ::1] X, int tau, int32_t[:, ::1] count,
                 int64_t[::1] err_max, int64_t[::1] err_sq, int64_t[::1] x_sq, int zp=0,
                 int32_t[:, :, ::1] recon=None, int threads=1):
    """``X`` is (frame, C, H*W). ``count[f, j]`` += number of channels with
    ``|X| > tau`` at position ``j``; error of the activation threshold per frame.
    ``recon`` (frame, C, H*W) int32, optional: receives ``X`` with ``|X| <= tau`` zeroed.
    Frames run on ``threads`` OpenMP threads (independent: results do not depend on it)."""
    cdef Py_ssize_t F = X.shape[0], C = X.shape[1], N = X.shape[2]
    cdef Py_ssize_t f
    cdef ek_err *errs
    cdef bint want = recon is not None
    cdef int team = _team(threads, F)
    if count.shape[0] != F or count.shape[1] != N:
        raise ValueError("count must have shape (frame, H*W)")
    _check_recon3(recon, F, C, N)
    errs = <ek_err *>calloc(F, sizeof(ek_err))
    if errs == NULL:
        raise MemoryError()
    try:
        for f in prange(F, nogil=True, num_threads=team, schedule="static"):
            _conv(&X[f, 0, 0], zp, C, N, tau, &count[f, 0], &errs[f], &recon[f, 0, 0] if want else NULL)
        _errs_out(errs, F, err_max, err_sq, x_sq)
    finally:
        free(errs)


cdef int _check_recon3(int32_t[:, :, ::1] recon, Py_ssize_t F, Py_ssize_t C, Py_ssize_t N) except -1:
    if recon is not None and (recon.shape[0] != F or recon.shape[1] != C or recon.shape[2] != N):
        raise ValueError("recon must have the shape of X, (frame, C, H*W)")
    return 0


# ---------------------------------------------------------------------------
# Line delta (ELSE)
# ---------------------------------------------------------------------------

cdef int64_t _cover_pos_max(const int64_t *cover_pos, Py_ssize_t npos, Py_ssize_t C,
                            str where) except -1:
    """The largest of ``cover_pos`` (npos), checked >= 0 and not to overflow the 32-bit SOP
    sum of a line of C channels (errors begin with ``where``)."""
    cdef Py_ssize_t p
    cdef int64_t cmax = 0
    for p in range(npos):
        if cover_pos[p] < 0:
            raise ValueError(f"{where}cover_pos must be >= 0")
        cmax = max(cmax, cover_pos[p])
    if cmax * C * npos >= 2 ** 31:
        raise OverflowError(f"{where}line too long for 32-bit SOP sums")
    return cmax


cdef int32_t *_cover_per_channel(const int64_t[::1] cover_pos, Py_ssize_t C, Py_ssize_t npos,
                                 int64_t *cmax) except NULL:
    """``cover_pos`` repeated for every channel, as int32 (checked: :func:`_cover_pos_max`,
    whose result goes to ``cmax`` if not NULL)."""
    cdef int32_t *cp
    cdef int64_t m
    if cover_pos.shape[0] != npos:
        raise ValueError("cover_pos length does not match the tensor")
    m = _cover_pos_max(&cover_pos[0] if npos else NULL, npos, C, "")
    if cmax != NULL:
        cmax[0] = m
    cp = <int32_t *>malloc(C * npos * sizeof(int32_t) + 1)
    if cp == NULL:
        raise MemoryError()
    _fill_covers(&cover_pos[0] if npos else NULL, C, npos, cp, False)
    return cp


cdef void _fill_covers(const int64_t *cover_pos, Py_ssize_t C, Py_ssize_t npos, void *dst,
                       bint narrow) noexcept nogil:
    """``cover_pos`` (npos) repeated for every channel into ``dst``: int16 (``narrow``: the
    16-bit line kernels) or int32."""
    cdef Py_ssize_t c, p
    for c in range(C):
        for p in range(npos):
            if narrow:
                (<int16_t *>dst)[c * npos + p] = <int16_t>cover_pos[p]
            else:
                (<int32_t *>dst)[c * npos + p] = <int32_t>cover_pos[p]


cdef int64_t _cover_max(const int64_t *cover_pos, Py_ssize_t npos) noexcept nogil:
    cdef Py_ssize_t p
    cdef int64_t m = 0
    for p in range(npos):
        m = max(m, cover_pos[p])
    return m


def line_delta(const code_t[:, :, :, ::1] X, int axis, bint reverse, int s,
               const int64_t[::1] cover_line, const int64_t[::1] cover_pos,
               int theta, bint closed, int tau,
               int64_t[:, ::1] line_events, int64_t[:, ::1] line_sops,
               int64_t[::1] err_max, int64_t[::1] err_sq, int64_t[::1] x_sq, int zp=0,
               int32_t[:, :, :, ::1] recon=None, int threads=1):
    """Line deltas along ``axis`` (0: y, 1: x) with reference distance ``s``; frames
    run on ``threads`` OpenMP threads (independent: results do not depend on it).

    ``cover_line`` (length L) is the extended cover of the scan lines in scan
    order (the layer already flipped for a reverse scan); lines with zero cover
    are not needed and are skipped; lines ``>= H`` are zero padding.
    ``cover_pos`` is the conventional cover along the other axis.
    Outputs per (frame, line): events and ``sum [Dt != 0] * cover_line * cover_pos``
    (not yet multiplied by ``C_out / g``); error over the needed lines.
    ``recon`` (the shape of X) int32, optional: receives what the consumer holds
    for every real line (closed loop ``R``, open loop ``Y``; ``X`` on the lines no
    output row reads, which are not sent).
    """
    cdef Py_ssize_t F = X.shape[0], C = X.shape[1], H = X.shape[2], W = X.shape[3]
    cdef Py_ssize_t npos = W if axis == 0 else H
    cdef Py_ssize_t n = C * npos
    cdef Py_ssize_t L = cover_line.shape[0]
    cdef Py_ssize_t f, tsize = 0, bsize = (2 * s + 2) * n, tstride = 0
    cdef int32_t *cp
    cdef int32_t *buf
    cdef int32_t *tbuf = NULL
    cdef int32_t *b
    cdef int32_t *t
    cdef ek_err *errs
    cdef bint want = recon is not None
    cdef int team = _team(threads, F)
    cdef bint narrow
    cdef int64_t cmax = 0
    if s < 1:
        raise ValueError("stride must be >= 1")
    if L < 1 or line_events.shape[0] != F or line_events.shape[1] != L or line_sops.shape[1] != L:
        raise ValueError("line outputs must have shape (frame, len(cover_line) >= 1)")
    if want and (recon.shape[0] != F or recon.shape[1] != C or recon.shape[2] != H or recon.shape[3] != W):
        raise ValueError("recon must have the shape of X, (frame, C, H, W)")
    cp = _cover_per_channel(cover_pos, C, npos, &cmax)
    narrow = _narrow_line(_kind(<code_t *>NULL), zp, theta, tau, closed, L, max(EK_BLOCK, npos), cmax)
    if narrow:   # the 16-bit kernels read the covers as int16
        _fill_covers(&cover_pos[0], C, npos, cp, True)
    buf = <int32_t *>malloc(team * bsize * sizeof(int32_t))      # scratch of each thread
    errs = <ek_err *>calloc(F, sizeof(ek_err))
    if axis != 0:  # one chunk of transposed planes (see _line), twice with recon
        tsize = min(C, max(1, EK_BLOCK // H)) * H * W
        tstride = (2 if want else 1) * tsize
        tbuf = <int32_t *>malloc(team * tstride * sizeof(int32_t))
    if buf == NULL or errs == NULL or (axis != 0 and tbuf == NULL):
        free(cp); free(buf); free(tbuf); free(errs)
        raise MemoryError()
    try:
        with nogil, parallel(num_threads=team):
            b = buf + threadid() * bsize
            t = tbuf + threadid() * tstride if tbuf != NULL else NULL
            for f in prange(F, schedule="static"):
                _line(_kind(&X[0, 0, 0, 0]), &X[f, 0, 0, 0], zp, C, H, W, axis, reverse, &cover_line[0], L, s, cp,
                      theta, closed, tau, b + 2 * n, b + (2 + s) * n, b, b + n,
                      &line_events[f, 0], &line_sops[f, 0], &errs[f], t,
                      &recon[f, 0, 0, 0] if want else NULL, t + tsize if want else NULL, narrow)
        _errs_out(errs, F, err_max, err_sq, x_sq)
    finally:
        free(cp); free(buf); free(tbuf); free(errs)


cdef int64_t _code_bound(int kind, int zp) noexcept nogil:
    """max |code - zp| over the codes of an 8-bit type ``kind`` (-1 for wider types)."""
    if kind == EK_I8:
        return max(abs(-128 - zp), abs(127 - zp))
    elif kind == EK_U8:
        return max(abs(zp), abs(255 - zp))
    return -1


cdef bint _narrow_line(int kind, int zp, int theta, int tau, bint closed, Py_ssize_t L,
                       Py_ssize_t n, int64_t cmax) noexcept nogil:
    """Whether 16-bit state and lanes hold every value of a line delta of 8-bit codes
    (b = max|X|): closed |R| <= b + theta; open |Y - Xt| <= L*theta (theta per line of
    a chain); deltas and errors add at most b. The x^2 of a line chunk of at most ``n``
    codes is summed in int32 (b^2 * n < 2^31), its events in int16 (n < 2^15), and the
    cover across the scan (at most ``cmax``) is held in int16."""
    cdef int64_t xb = _code_bound(kind, zp)
    if xb < 0 or not -1024 <= zp <= 1024:
        return False
    return (theta <= 16000 and tau <= 16000 and xb * xb * n < (<int64_t>1 << 31) and n < 32768
            and cmax < 32768 and 2 * xb + (1 if closed else L) * <int64_t>theta < 32000)


cdef int32_t _check_lut(const int32_t[::1] lut, Py_ssize_t T, int64_t[:, ::1] hist_c,
                        int64_t[:, ::1] hist_s, Py_ssize_t F) except -1:
    """Validate the open-loop histogram arguments; returns amax = len(lut) - 1."""
    cdef Py_ssize_t i
    if lut.shape[0] < 1 or lut.shape[0] >= 2 ** 31:
        raise ValueError("lut needs 1 .. 2**31 - 1 entries")
    for i in range(lut.shape[0]):
        if lut[i] < 0 or lut[i] > T:
            raise ValueError("lut entries must be bins in [0, T]")
    if hist_c.shape[0] != F or hist_c.shape[1] != T + 1 or hist_s.shape[0] != F or hist_s.shape[1] != T + 1:
        raise ValueError("hist_c and hist_s must have shape (frame, T + 1)")
    return <int32_t>(lut.shape[0] - 1)


def line_delta_curve(const code_t[:, :, :, ::1] X, int axis, bint reverse, int s,
                     const int64_t[::1] cover_line, const int64_t[::1] cover_pos,
                     const int32_t[::1] thetas, bint closed, int tau,
                     int64_t[:, ::1] events, int64_t[:, ::1] sops,
                     int64_t[:, ::1] err_max, int64_t[:, ::1] err_sq, int64_t[::1] x_sq,
                     const int32_t[::1] lut, int64_t[:, ::1] hist_c, int64_t[:, ::1] hist_s,
                     bint with_error=True, int zp=0, int threads=1):
    """:func:`line_delta` for many thresholds in one pass over ``X``: every needed
    line is loaded once and run for every threshold while in cache.

    Outputs (threshold, frame) events, SOPs (without ``C_out / g``), except in
    the open loop without the error: ``D`` does not depend on the threshold and
    ``hist_c[f, b]`` / ``hist_s[f, b]`` (b in ``[0, T]``) get the count / SOP
    weight (without ``C_out / g``) of the deltas with ``lut[min(|D|, len(lut) - 1)]
    == b`` (``events``, ``sops`` are left untouched). ``with_error``: error
    (threshold, frame) and ``x_sq`` per frame over the needed lines; otherwise left 0.
    Frames run on ``threads`` OpenMP threads, each with its own buffers (a frame's
    results are its own: they do not depend on the thread count).
    """
    cdef Py_ssize_t F = X.shape[0], C = X.shape[1], H = X.shape[2], W = X.shape[3]
    cdef Py_ssize_t npos = W if axis == 0 else H
    cdef Py_ssize_t L = cover_line.shape[0], T = thetas.shape[0]
    cdef Py_ssize_t chunk = max(1, EK_BLOCK // npos)
    cdef Py_ssize_t nc = min(C, chunk) * npos
    cdef Py_ssize_t n_buf = 3 * nc, n_states = 2 * T * s * nc, n_hl = 8 * EK_HSTRIDE(T)
    cdef Py_ssize_t n_tbuf = min(C, chunk) * H * W if axis != 0 else 0
    cdef Py_ssize_t f, c, c0, cb, cc, t
    cdef int32_t *cp
    cdef int32_t *bufs
    cdef int32_t *statess
    cdef int32_t *tbufs = NULL
    cdef int32_t *emaxs
    cdef int64_t *accs
    cdef int32_t *hls
    cdef int32_t *buf
    cdef int32_t *states
    cdef int32_t *tbuf
    cdef int32_t *emax
    cdef int64_t *acc
    cdef int32_t *hl
    cdef int32_t amax
    cdef int werr = 1 if with_error else 0
    cdef int team = _team(threads, F)
    cdef int64_t cmax = 0
    cdef int16_t *cp16 = NULL
    cdef bint narrow
    if s < 1:
        raise ValueError("stride must be >= 1")
    if L < 1 or T < 1:
        raise ValueError("need at least one line and one threshold")
    amax = _check_lut(lut, T, hist_c, hist_s, F)
    cp = _cover_per_channel(cover_pos, min(C, chunk), npos, &cmax)
    # 16-bit state in AVX2 where every threshold's values fit (the open loop without the
    # error keeps its int32 histograms)
    narrow = (ek_vec16() and (closed or with_error)
              and _narrow_line(_kind(<code_t *>NULL), zp, max(thetas), tau, closed, L, max(EK_BLOCK, npos), cmax))
    if narrow:
        cp16 = <int16_t *>malloc(min(C, chunk) * npos * sizeof(int16_t) + 2)
        if cp16 == NULL:
            free(cp)
            raise MemoryError()
        _fill_covers(&cover_pos[0] if npos else NULL, min(C, chunk), npos, cp16, True)
    bufs = <int32_t *>malloc(team * n_buf * sizeof(int32_t))
    statess = <int32_t *>malloc(team * n_states * sizeof(int32_t))
    emaxs = <int32_t *>malloc(team * T * sizeof(int32_t))
    accs = <int64_t *>malloc(team * 3 * T * sizeof(int64_t))
    hls = <int32_t *>malloc(team * n_hl * sizeof(int32_t))
    if axis != 0:
        tbufs = <int32_t *>malloc(team * n_tbuf * sizeof(int32_t))
    if (bufs == NULL or statess == NULL or emaxs == NULL or accs == NULL or hls == NULL
            or (axis != 0 and tbufs == NULL)):
        free(cp); free(cp16); free(bufs); free(statess); free(emaxs); free(accs); free(tbufs); free(hls)
        raise MemoryError()
    try:
        with nogil, parallel(num_threads=team):
            buf = bufs + threadid() * n_buf            # the buffers of this thread
            states = statess + threadid() * n_states
            emax = emaxs + threadid() * T
            acc = accs + threadid() * 3 * T
            hl = hls + threadid() * n_hl
            tbuf = tbufs + threadid() * n_tbuf if tbufs != NULL else NULL
            for f in prange(F, schedule="static"):
                memset(emax, 0, T * sizeof(int32_t))
                memset(acc, 0, 3 * T * sizeof(int64_t))
                x_sq[f] = 0
                if narrow and axis == 0:    # narrow: 8-bit codes on an AVX2 CPU, which it runs
                    ek_line_frame_thresholds16(_kind(&X[0, 0, 0, 0]), &X[f, 0, 0, 0], zp, C, H, W, reverse, 1,
                                               &cover_line[0], L, s, cp16, &thetas[0], T, closed, tau,
                                               <int16_t *>states, <int16_t *>buf, acc, acc + T, emax,
                                               acc + 2 * T, &x_sq[f], werr)
                elif narrow:      # int16 transposes of a chunk of planes, scanned by row
                    for cb in range((C + chunk - 1) // chunk):
                        c0 = cb * chunk
                        cc = min(chunk, C - c0)
                        for c in range(c0, c0 + cc):
                            ek_transpose16(_kind(&X[0, 0, 0, 0]), &X[f, c, 0, 0], zp, H, W,
                                           <int16_t *>tbuf + (c - c0) * H * W)
                        ek_line_frame_thresholds16(EK_I16, tbuf, 0, cc, W, H, reverse, 0, &cover_line[0], L, s,
                                                   cp16, &thetas[0], T, closed, tau, <int16_t *>states,
                                                   <int16_t *>buf, acc, acc + T, emax, acc + 2 * T, &x_sq[f],
                                                   werr)
                elif axis == 0:
                    _line_thresholds(&X[f, 0, 0, 0], zp, C, H, W, reverse, &cover_line[0], L, s, cp,
                                     &thetas[0], T, closed, tau, states, buf, buf + nc, buf + 2 * nc,
                                     acc, acc + T, emax, acc + 2 * T, &x_sq[f],
                                     &lut[0], amax, &hist_c[f, 0], &hist_s[f, 0], hl, werr)
                else:  # transpose a chunk of planes (W x H each), scan their rows
                    for cb in range((C + chunk - 1) // chunk):
                        c0 = cb * chunk
                        cc = min(chunk, C - c0)
                        for c in range(c0, c0 + cc):
                            _transpose(&X[f, c, 0, 0], zp, H, W, tbuf + (c - c0) * H * W)
                        ek_line_frame_thresholds(EK_I32, tbuf, 0, cc, W, H, reverse, 0, &cover_line[0], L,
                                                 s, cp, &thetas[0], T, closed, tau, states, buf,
                                                 buf + nc, buf + 2 * nc, acc, acc + T, emax,
                                                 acc + 2 * T, &x_sq[f], &lut[0], amax,
                                                 &hist_c[f, 0], &hist_s[f, 0], hl, werr)
                for t in range(T):
                    events[t, f] += acc[t]
                    sops[t, f] += acc[T + t]
                    err_sq[t, f] = acc[2 * T + t]
                    err_max[t, f] = emax[t]
    finally:
        free(cp); free(cp16); free(bufs); free(statess); free(emaxs); free(accs); free(tbufs); free(hls)


# ---------------------------------------------------------------------------
# Temporal delta
# ---------------------------------------------------------------------------

cdef bint _narrow_state(int kind, int zp, int theta, int tau, bint closed, Py_ssize_t F,
                        int64_t m) noexcept nogil:
    """Whether 16-bit state and lanes hold every value of a temporal delta of 8-bit
    codes. With b = max|X| from the code range and m = max|state| given:
    closed |R| <= max(m, b + theta); open |Y| <= 2m + b + F*theta; deltas and errors
    add at most 2b. tau and theta must fit int16."""
    cdef int64_t xb = _code_bound(kind, zp)
    if xb < 0 or not -1024 <= zp <= 1024:
        return False
    return (theta <= 16000 and tau <= 16000
            and 2 * xb + 2 * m + (1 if closed else F) * <int64_t>theta < 32000)


cdef int64_t _state_bound(int32_t[:, ::1] state) noexcept nogil:
    cdef Py_ssize_t k, i
    cdef int64_t m = 0
    for k in range(2):
        for i in range(state.shape[1]):
            m = max(m, <int64_t>_iabs(state[k, i]))
    return m


cdef void _state_load(int32_t[:, ::1] state, Py_ssize_t i0, Py_ssize_t nb, int32_t *ref,
                      int16_t *ref16, Py_ssize_t TB) noexcept nogil:
    """Block [i0, i0 + nb) of the state (or zeros) into ref / ref16 (R at 0, Y at TB)."""
    cdef Py_ssize_t k, p
    if state is None:  # the start of a stream
        if ref16 != NULL:
            memset(ref16, 0, 2 * TB * sizeof(int16_t))
        else:
            memset(ref, 0, 2 * TB * sizeof(int32_t))
        return
    for k in range(2):
        for p in range(nb):
            if ref16 != NULL:
                ref16[k * TB + p] = <int16_t>(state[k, i0 + p] if state is not None else 0)
            else:
                ref[k * TB + p] = state[k, i0 + p] if state is not None else 0


cdef void _state_store(int32_t[:, ::1] state, Py_ssize_t i0, Py_ssize_t nb, const int32_t *ref,
                       const int16_t *ref16, Py_ssize_t TB, bint closed) noexcept nogil:
    """ref / ref16 back into the state; in the closed loop Y = R."""
    cdef Py_ssize_t k, p, src
    for k in range(2):
        src = 0 if closed else k * TB
        for p in range(nb):
            state[k, i0 + p] = ref16[src + p] if ref16 != NULL else ref[src + p]


def temporal_delta(const code_t[:, :, ::1] X, int theta, bint closed, int tau,
                   int32_t[:, ::1] count, int64_t[::1] err_max, int64_t[::1] err_sq,
                   int64_t[::1] x_sq, int zp=0, int32_t[:, :, ::1] recon=None,
                   int32_t[:, ::1] state=None, int threads=1):
    """Deltas over frames (frame 0 against zeros, or against ``state``). ``X`` is
    (frame, C, H*W); ``count[f, j]`` += number of channels with ``Dt != 0`` at
    position ``j``. Ranges of TBLOCK elements are run through all frames with
    their state in cache; 8-bit codes (``|X| <= 255``) on 16-bit state when no
    value can leave int16. Lossless (theta = tau = 0) without recon or state:
    frames compared as stored, no state.

    ``state`` (2, C*H*W) int32, optional: the sender's reference ``R`` and the
    consumer's sum ``Y`` before frame 0 (zeros: the start of a stream); it is
    overwritten with the state after the last frame (closed loop: ``Y = R``), so
    frames run in chunks give the results of one pass. ``recon`` (frame, C, H*W)
    int32, optional: what the consumer holds after each frame (``R``; open loop ``Y``).
    Ranges of elements (frames, without state) run on ``threads`` OpenMP threads, each
    counting into its own counters, summed after (exact integers: results do not
    depend on the thread count)."""
    cdef Py_ssize_t F = X.shape[0], C = X.shape[1], N = X.shape[2]
    cdef Py_ssize_t f, ib, i0, nb, n = C * N, t
    cdef Py_ssize_t TB = 4 * EK_BLOCK, nblk = (C * N + 4 * EK_BLOCK - 1) // (4 * EK_BLOCK)
    cdef int32_t *ref = NULL
    cdef int16_t *ref16 = NULL
    cdef int32_t *cnts = NULL
    cdef int32_t *r
    cdef int16_t *r16
    cdef int32_t *cnt
    cdef ek_err *te
    cdef ek_err *errs = NULL
    cdef bint lossless = theta == 0 and tau == 0
    cdef bint want = recon is not None
    cdef bint narrow
    cdef int64_t m = 0
    cdef int team = _team(threads, nblk)
    if count.shape[0] != F or count.shape[1] != N:
        raise ValueError("count must have shape (frame, H*W)")
    if theta < 0 or tau < 0:
        raise ValueError("theta and tau must be >= 0")
    _check_recon3(recon, F, C, N)
    if state is not None:
        if state.shape[0] != 2 or state.shape[1] != n:
            raise ValueError("state must have shape (2, C*H*W)")
        m = _state_bound(state)
    elif lossless and not want:
        _temporal_lossless(X, count, err_max, err_sq, x_sq, zp, threads)
        return
    if F == 0:
        return
    narrow = _narrow_state(_kind(<code_t *>NULL), zp, theta, tau, closed, F, m)
    errs = <ek_err *>calloc(team * F, sizeof(ek_err))
    cnts = <int32_t *>calloc(max(1, (team - 1) * F * N), sizeof(int32_t))  # threads 1.. (0 counts into count)
    if narrow:
        ref16 = <int16_t *>malloc(team * 2 * TB * sizeof(int16_t))
    else:
        ref = <int32_t *>malloc(team * 2 * TB * sizeof(int32_t))
    if errs == NULL or cnts == NULL or (narrow and ref16 == NULL) or (not narrow and ref == NULL):
        free(errs); free(ref); free(ref16); free(cnts)
        raise MemoryError()
    try:
        with nogil, parallel(num_threads=team):
            r = ref + threadid() * 2 * TB if ref != NULL else NULL
            r16 = ref16 + threadid() * 2 * TB if ref16 != NULL else NULL
            cnt = &count[0, 0] if threadid() == 0 else cnts + (threadid() - 1) * F * N
            te = errs + threadid() * F
            for ib in prange(nblk, schedule="static"):
                i0 = ib * TB
                nb = min(TB, n - i0)
                _state_load(state, i0, nb, r, r16, TB)
                _temporal_frames(_kind(&X[0, 0, 0]), &X[0, 0, 0], n, F, N, i0, nb, zp, theta, closed, tau,
                                 r, r16, TB, cnt, te, &recon[0, 0, 0] if want else NULL)
                if state is not None:
                    _state_store(state, i0, nb, r, r16, TB, closed)
        _merge_threads(count, cnts, errs, team, F, N)
        for f in range(F):  # lossless: no error (as without state)
            err_max[f] = 0 if lossless else errs[f].emax
            err_sq[f] = 0 if lossless else errs[f].esq
            x_sq[f] = 0 if lossless else errs[f].xsq
    finally:
        free(errs); free(ref); free(ref16); free(cnts)


cdef int _merge_threads(int32_t[:, ::1] count, const int32_t *cnts, ek_err *errs, int team,
                        Py_ssize_t F, Py_ssize_t N) except -1 nogil:
    """Counters and error accumulators of threads 1.. into those of thread 0 (``count``,
    ``errs[:F]``): integer sums and maxima, so the thread count does not change them."""
    cdef Py_ssize_t t, f, j
    for t in range(1, team):
        for f in range(F):
            for j in range(N):
                count[f, j] += cnts[((t - 1) * F + f) * N + j]
            errs[f].esq += errs[t * F + f].esq
            errs[f].xsq += errs[t * F + f].xsq
            if errs[t * F + f].emax > errs[f].emax:
                errs[f].emax = errs[t * F + f].emax
    return 0


cdef int _temporal_lossless(const code_t[:, :, ::1] X, int32_t[:, ::1] count, int64_t[::1] err_max,
                           int64_t[::1] err_sq, int64_t[::1] x_sq, int zp, int threads) except -1:
    """Lossless temporal delta of a whole stream: frames compared as stored, no state
    (frames independent, on ``threads`` threads)."""
    cdef Py_ssize_t F = X.shape[0], C = X.shape[1], N = X.shape[2]
    cdef Py_ssize_t f
    cdef ek_err e
    cdef int team = _team(threads, F)
    if F == 0:
        return 0
    with nogil:
        _err_zero(&e)
        _conv(&X[0, 0, 0], zp, C, N, 0, &count[0, 0], &e, NULL)   # frame 0 against zeros
        for f in prange(1, F, num_threads=team, schedule="static"):  # against the previous frame
            ek_frame_diff(_kind(&X[0, 0, 0]), &X[f, 0, 0], &X[f - 1, 0, 0], C, N, &count[f, 0])
        for f in range(F):
            err_max[f] = 0
            err_sq[f] = 0
            x_sq[f] = 0
    return 0


def temporal_delta_curve(const code_t[:, :, ::1] X, const int64_t[::1] fan_out,
                         const int32_t[::1] thetas, bint closed, int tau,
                         int64_t[:, ::1] events, int64_t[:, ::1] sops,
                         int64_t[:, ::1] err_max, int64_t[:, ::1] err_sq, int64_t[::1] x_sq,
                         const int32_t[::1] lut, int64_t[:, ::1] hist_c, int64_t[:, ::1] hist_s,
                         bint with_error=True, int zp=0, int32_t[:, :, ::1] state=None, int threads=1):
    """:func:`temporal_delta` for many thresholds in one pass: blocks of positions
    are followed through all frames, each block loaded once per frame and run for
    every threshold while in cache. ``fan_out`` (H*W) is the conventional fan-out
    per position. Open loop without the error: events and SOPs go to the
    histograms ``hist_c``, ``hist_s`` (frame, T + 1) as in
    :func:`line_delta_curve`. ``with_error``: error and ``x_sq``; otherwise left 0.

    ``state`` (T, 2, C*H*W) int32, optional: every threshold's state before frame 0
    (zeros: the start of a stream), overwritten with the state after the last frame,
    so frames run in chunks give the results of one pass. Per threshold: the
    sender's reference and the consumer's sum; in the open loop the sender's
    reference (the previous frame after tau) is shared, in threshold 0's slot.
    Channels run on ``threads`` OpenMP threads, each counting into its own counters,
    summed after (exact integers: results do not depend on the thread count)."""
    cdef Py_ssize_t F = X.shape[0], C = X.shape[1], N = X.shape[2], T = thetas.shape[0]
    cdef Py_ssize_t B = EK_BLOCK, H1 = hist_c.shape[1]
    cdef Py_ssize_t n_states = 2 * T * B, n_hl = 8 * EK_HSTRIDE(T), n_acc = 3 * F * T
    cdef Py_ssize_t f, c, jb, j0, nb, p, t, k, i, b
    cdef bint has_state = state is not None
    cdef int team = _team(threads, C)
    cdef int32_t *fan
    cdef int32_t *statess
    cdef int32_t *emaxs
    cdef int64_t *accs
    cdef int32_t *hls
    cdef int64_t *xsqs
    cdef int64_t *hcs
    cdef int64_t *hss
    cdef int32_t *states
    cdef int32_t *emax
    cdef int64_t *acc
    cdef int32_t *hl
    cdef int64_t *xsq
    cdef int64_t *hc
    cdef int64_t *hs
    cdef int64_t fmax = 0
    cdef int32_t amax
    cdef int werr = 1 if with_error else 0
    if fan_out.shape[0] != N:
        raise ValueError("fan_out length does not match the tensor")
    if T < 1:
        raise ValueError("need at least one threshold")
    if has_state and (state.shape[0] != T or state.shape[1] != 2 or state.shape[2] != C * N):
        raise ValueError("state must have shape (threshold, 2, C*H*W)")
    amax = _check_lut(lut, T, hist_c, hist_s, F)
    for p in range(N):
        if fan_out[p] < 0:
            raise ValueError("fan_out must be >= 0")
        fmax = max(fmax, fan_out[p])
    if fmax * B >= 2 ** 31:
        raise OverflowError("fan-out too large for 32-bit block sums")
    fan = <int32_t *>malloc(N * sizeof(int32_t))
    statess = <int32_t *>malloc(team * n_states * sizeof(int32_t))
    emaxs = <int32_t *>calloc(team * F * T, sizeof(int32_t))
    accs = <int64_t *>calloc(team * n_acc, sizeof(int64_t))
    hls = <int32_t *>malloc(team * n_hl * sizeof(int32_t))
    xsqs = <int64_t *>calloc(team * F, sizeof(int64_t))
    hcs = <int64_t *>calloc(team * F * H1, sizeof(int64_t))
    hss = <int64_t *>calloc(team * F * H1, sizeof(int64_t))
    if (fan == NULL or statess == NULL or emaxs == NULL or accs == NULL or hls == NULL or xsqs == NULL
            or hcs == NULL or hss == NULL):
        free(fan); free(statess); free(emaxs); free(accs); free(hls); free(xsqs); free(hcs); free(hss)
        raise MemoryError()
    try:
        with nogil:
            for p in range(N):
                fan[p] = <int32_t>fan_out[p]
        with nogil, parallel(num_threads=team):
            states = statess + threadid() * n_states      # the buffers and counters of this thread
            emax = emaxs + threadid() * F * T
            acc = accs + threadid() * n_acc
            hl = hls + threadid() * n_hl
            xsq = xsqs + threadid() * F
            hc = hcs + threadid() * F * H1
            hs = hss + threadid() * F * H1
            for c in prange(C, schedule="static"):
                for jb in range((N + B - 1) // B):
                    j0 = jb * B
                    nb = min(B, N - j0)
                    if has_state:
                        for k in range(2 * T):
                            memcpy(states + k * B, &state[k // 2, k % 2, c * N + j0], nb * sizeof(int32_t))
                    else:
                        memset(states, 0, 2 * T * B * sizeof(int32_t))
                    for f in range(F):
                        _temporal_thresholds(&X[f, c, j0], zp, nb, &thetas[0], T, closed, tau, states,
                                             fan + j0, acc + f * T, acc + (F + f) * T, emax + f * T,
                                             acc + (2 * F + f) * T, xsq + f, &lut[0], amax,
                                             hc + f * H1, hs + f * H1, hl, werr)
                    if has_state:
                        for k in range(2 * T):
                            memcpy(&state[k // 2, k % 2, c * N + j0], states + k * B, nb * sizeof(int32_t))
        with nogil:
            for i in range(team):
                for f in range(F):
                    x_sq[f] += xsqs[i * F + f]
                    for b in range(H1):
                        hist_c[f, b] += hcs[(i * F + f) * H1 + b]
                        hist_s[f, b] += hss[(i * F + f) * H1 + b]
                    for t in range(T):
                        events[t, f] += accs[i * n_acc + f * T + t]
                        sops[t, f] += accs[i * n_acc + (F + f) * T + t]
                        err_sq[t, f] += accs[i * n_acc + (2 * F + f) * T + t]
                        if emaxs[(i * F + f) * T + t] > err_max[t, f]:
                            err_max[t, f] = emaxs[(i * F + f) * T + t]
    finally:
        free(fan); free(statess); free(emaxs); free(accs); free(hls); free(xsqs); free(hcs); free(hss)


# ---------------------------------------------------------------------------
# Histogram of |X| (conventional curves over tau)
# ---------------------------------------------------------------------------

cdef inline int64_t _abs_hist_frame(const code_t *x, int32_t zp, Py_ssize_t C, Py_ssize_t N, Py_ssize_t V,
                                    const int64_t *fan, int64_t *h, int64_t *hs) noexcept nogil:
    """One frame of :func:`abs_histogram`; returns its ``sum X**2``."""
    cdef Py_ssize_t c, j
    cdef int32_t a
    cdef int64_t xsq = 0
    for c in range(C):
        for j in range(N):
            a = _iabs(<int32_t>x[c * N + j] - zp)
            xsq += <int64_t>a * a
            if a >= V:
                a = <int32_t>(V - 1)
            h[a] += 1
            hs[a] += fan[j]
    return xsq


def abs_histogram(const code_t[:, :, ::1] X, const int64_t[::1] fan_out,
                  int64_t[:, ::1] hist, int64_t[:, ::1] hist_sops, int64_t[::1] x_sq, int zp=0,
                  int threads=1):
    """``hist[f, v]`` += count of ``|X| == v`` and ``hist_sops[f, v]`` += their
    fan-out (``fan_out`` per position, length H*W); values beyond the last bin
    are gathered in the last bin. ``x_sq[f] = sum X**2``. Frames run on ``threads``
    OpenMP threads (each frame's bins are its own)."""
    cdef Py_ssize_t F = X.shape[0], C = X.shape[1], N = X.shape[2]
    cdef Py_ssize_t V = hist.shape[1]
    cdef Py_ssize_t f
    cdef int team = _team(threads, F)
    if fan_out.shape[0] != N:
        raise ValueError("fan_out length does not match the tensor")
    if V < 1:
        raise ValueError("hist needs at least one bin")
    if hist.shape[0] != F or hist_sops.shape[0] != F or hist_sops.shape[1] != V or x_sq.shape[0] != F:
        raise ValueError("hist and hist_sops must have shape (frame, V) and x_sq (frame,)")
    if F == 0 or C * N == 0:
        for f in range(F):
            x_sq[f] = 0
        return
    for f in prange(F, nogil=True, num_threads=team, schedule="static"):
        x_sq[f] = _abs_hist_frame(&X[f, 0, 0], zp, C, N, V, &fan_out[0], &hist[f, 0], &hist_sops[f, 0])


# ---------------------------------------------------------------------------
# Codes of float values with a given scale and zero point, and back (replay)
# ---------------------------------------------------------------------------

cdef extern from "kernels_core.h" nogil:
    void ek_quantize_u8(const float *x, Py_ssize_t n, double scale, double zp, double levels, uint8_t *out)
    void ek_quantize_u16(const float *x, Py_ssize_t n, double scale, double zp, double levels, uint16_t *out)
    void ek_dequantize(const int32_t *v, Py_ssize_t C, Py_ssize_t N, double scale, float *out, int to_last)


ctypedef fused ucode_t:
    uint8_t
    uint16_t


def quantize_codes(const float[::1] x, double scale, int zp, int levels, ucode_t[::1] out):
    """``out = clip(rint(x / scale) + zp, 0, levels)``, the arithmetic of
    ``else_dse.recording.codes_of`` (float64, round half to even) on float32 values."""
    cdef Py_ssize_t n = x.shape[0]
    if out.shape[0] != n:
        raise ValueError("out must have the length of x")
    if not scale > 0:
        raise ValueError("scale must be > 0")
    if n == 0:
        return
    with nogil:
        if ucode_t is uint8_t:
            ek_quantize_u8(&x[0], n, scale, zp, levels, &out[0])
        else:
            ek_quantize_u16(&x[0], n, scale, zp, levels, &out[0])


def dequantize_values(const int32_t[:, ::1] values, double scale, float[::1] out, bint to_last=False):
    """``out = float32(values * scale)`` computed in float64 (``recording.dequantize_codes``) for
    values of shape (C, N): out holds them in that order, or (``to_last``) in (N, C) order."""
    cdef Py_ssize_t C = values.shape[0], N = values.shape[1]
    if out.shape[0] != C * N:
        raise ValueError("out must have the size of values")
    if C * N == 0:
        return
    with nogil:
        ek_dequantize(&values[0, 0], C, N, scale, &out[0], to_last)


# ---------------------------------------------------------------------------
# Batched streaming counts: every tensor and layer of a recording in one call
# ---------------------------------------------------------------------------

from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_C_CONTIGUOUS
from libc.stdint cimport uint32_t

cdef extern from "kernels_core.h" nogil:
    void ek_line_sums(const int32_t *a, Py_ssize_t H, Py_ssize_t W, int axis, const uint32_t *w,
                      int64_t *ev, int64_t *sp)

cdef enum:   # columns of a ``stream_counts`` item row (ITEM_COLUMNS)
    _I_CODES, _I_KIND, _I_ZP, _I_C, _I_N, _I_OP, _I_ARG, _I_NZLO, _I_NZHI, _I_OUT, _I_OUT2, _I_COLS

cdef enum:   # columns of a ``layer_lines`` row (LINE_COLUMNS)
    _L_MODE, _L_H, _L_W, _L_OUT, _L_OUT2, _L_CA, _L_NA, _L_CB, _L_FCH, _L_AXIS, _L_S, _L_REV, _L_COLS

#: ``stream_counts`` item columns: the index of the code array, its EK code type
#: (``CODE_KINDS``), zero point, channels C, positions N, op (0 conventional, 1 lossless
#: temporal delta, 2 lossless line-delta pairs), tau (op 0) or reference distance k (op 2),
#: the non-zero range bounds (op 2: positions ``j < nz_lo`` or ``j >= nz_hi`` also count the
#: channels with ``X[j] != 0``, beside the pairs ``X[j] != X[j - k]``), the offsets in ``counts`` of the
#: count (or pair) and of the non-zero counts (op 2; F*N int32 each)
ITEM_COLUMNS = ("codes", "kind", "zp", "C", "N", "op", "arg", "nz_lo", "nz_hi", "out", "out2")
#: ``layer_lines`` row columns: mode (0 per-position counts summed by rows, 1 lossless line
#: delta), H, W, the offsets in ``counts`` of the count (pair) and non-zero counts, the offset
#: and length in ``covers`` of cover y (mode 0) or cover_line (mode 1), the offset of cover x
#: (mode 0) or cover_pos (mode 1), fan-out channels, and for mode 1 axis (0 rows, 1 columns),
#: reference distance s and reverse (0/1)
LINE_COLUMNS = ("mode", "H", "W", "out", "out2", "cover_a", "n_lines", "cover_b", "fan_channels",
                "axis", "s", "reverse")
#: numpy dtype name -> EK code type of the codes ``stream_counts`` reads
CODE_KINDS = {"int8": EK_I8, "uint8": EK_U8, "int16": EK_I16, "uint16": EK_U16, "int32": EK_I32}


cdef class _CodeViews:
    """The buffers of a list of C-contiguous code arrays, held while a kernel reads them
    (released with the object)."""
    cdef Py_buffer *views
    cdef const char **ptrs
    cdef Py_ssize_t n, got

    def __cinit__(self, list codes):
        cdef Py_ssize_t i
        self.n = len(codes)
        self.views = <Py_buffer *>calloc(max(1, self.n), sizeof(Py_buffer))
        self.ptrs = <const char **>calloc(max(1, self.n), sizeof(char *))
        if self.views == NULL or self.ptrs == NULL:
            raise MemoryError()
        for i in range(self.n):
            PyObject_GetBuffer(codes[i], &self.views[i], PyBUF_C_CONTIGUOUS)
            self.got += 1
            self.ptrs[i] = <const char *>self.views[i].buf

    def __dealloc__(self):
        cdef Py_ssize_t i
        for i in range(self.got):
            PyBuffer_Release(&self.views[i])
        free(self.views)
        free(self.ptrs)

    cdef int check(self, Py_ssize_t item, Py_ssize_t k, int kind, Py_ssize_t n_codes) except -1:
        """Code array ``k`` holds ``n_codes`` codes of type ``kind``, or ValueError naming the item."""
        if self.views[k].itemsize != _code_size(kind) or self.views[k].len != n_codes * self.views[k].itemsize:
            raise ValueError(f"item {item}: the code array's type or size does not match the item")
        return 0


cdef void _stream_unit(const char *x, const int64_t *it, Py_ssize_t f, int32_t *counts,
                       int64_t *err) noexcept nogil:
    """Frame ``f`` of one ``stream_counts`` item (``x``: the item's codes); its counts are
    zeroed first."""
    cdef int kind = <int>it[_I_KIND]
    cdef Py_ssize_t C = it[_I_C], N = it[_I_N], fs = C * N * _code_size(kind)
    cdef ek_err e
    _err_zero(&e)
    memset(counts + it[_I_OUT] + f * N, 0, N * sizeof(int32_t))
    if it[_I_OUT2] != it[_I_OUT]:
        memset(counts + it[_I_OUT2] + f * N, 0, N * sizeof(int32_t))
    if it[_I_OP] == 0:
        ek_conventional(kind, x + f * fs, <int32_t>it[_I_ZP], C, N, <int32_t>it[_I_ARG],
                        counts + it[_I_OUT] + f * N, &e, NULL)
    elif it[_I_OP] == 1:
        if f == 0:   # frame 0 against zeros
            ek_conventional(kind, x, <int32_t>it[_I_ZP], C, N, 0, counts + it[_I_OUT], &e, NULL)
        else:
            ek_frame_diff(kind, x + f * fs, x + (f - 1) * fs, C, N, counts + it[_I_OUT] + f * N)
    else:
        ek_pair_counts(kind, x + f * fs, <int32_t>it[_I_ZP], C, N, it[_I_ARG], it[_I_NZLO],
                       it[_I_NZHI], counts + it[_I_OUT] + f * N, counts + it[_I_OUT2] + f * N)
    err[0] = e.emax
    err[1] = e.esq
    err[2] = e.xsq


def stream_counts(list codes, const int64_t[:, ::1] items, Py_ssize_t F, int32_t[::1] counts,
                  int64_t[:, :, ::1] errs, int threads=1):
    """The streaming kernels of many tensors in one call: per item (a row of ``items``,
    columns ``_I_*``) the per-position counts of frames ``0..F`` of ``codes[row[0]]``
    (C-contiguous, ``F * C * N`` codes of type ``row[1]``) into ``counts`` at the row's
    offsets (each unit zeroes its own first): op 0 :func:`conventional`, op 1 a lossless
    :func:`temporal_delta` without state, op 2 lossless line-delta pairs (``ek_pair_counts``). ``errs[item, f]``
    receives (max error, sum of squared errors, sum X**2) of op 0. Items x frames run
    on ``threads`` OpenMP threads, each unit writing its own outputs."""
    cdef Py_ssize_t n = items.shape[0], u, i, nc = len(codes)
    cdef _CodeViews cv
    cdef const char **ptrs
    cdef int team = _team(threads, n * F)
    if items.shape[1] != <Py_ssize_t>_I_COLS or errs.shape[0] != n or errs.shape[1] != F or errs.shape[2] != 3:
        raise ValueError("items must have shape (n, %d) and errs (n, F, 3)" % _I_COLS)
    for i in range(n):
        if items[i, _I_CODES] < 0 or items[i, _I_CODES] >= nc:
            raise ValueError(f"item {i}: no code array {items[i, _I_CODES]}")
        if (items[i, _I_OUT] < 0 or items[i, _I_OUT] + F * items[i, _I_N] > counts.shape[0]
                or items[i, _I_OUT2] < 0 or items[i, _I_OUT2] + F * items[i, _I_N] > counts.shape[0]):
            raise ValueError(f"item {i}: outputs outside counts")
    cv = _CodeViews(codes)
    for i in range(n):
        cv.check(i, items[i, _I_CODES], <int>items[i, _I_KIND], F * items[i, _I_C] * items[i, _I_N])
    ptrs = cv.ptrs
    for u in prange(n * F, nogil=True, num_threads=team, schedule="dynamic"):
        _stream_unit(ptrs[items[u // F, _I_CODES]], &items[u // F, 0], u % F, &counts[0],
                     &errs[u // F, u % F, 0])


cdef int _layer_frame(const int32_t *counts, const int64_t *sp_row, const uint32_t *covers,
                      Py_ssize_t f, int64_t *line_ev, int64_t *line_sp, int64_t *ev_out,
                      int64_t *sp_out, int64_t *scratch) noexcept nogil:
    """Frame ``f`` of one ``layer_lines`` row: per-line events and SOPs (``line_ev``,
    ``line_sp``: the row's lines, or NULL) and their totals."""
    cdef Py_ssize_t H = sp_row[_L_H], W = sp_row[_L_W], L = sp_row[_L_NA], N = H * W
    cdef Py_ssize_t h, src, r, n
    cdef int64_t fch = sp_row[_L_FCH], ev_tot = 0, sp_tot = 0, ev, sp
    cdef const uint32_t *ca = covers + sp_row[_L_CA]
    cdef const uint32_t *cb = covers + sp_row[_L_CB]
    cdef int axis = <int>sp_row[_L_AXIS], s = <int>sp_row[_L_S]
    cdef bint rev = sp_row[_L_REV] != 0, use_pair
    cdef int64_t *pe = scratch
    cdef int64_t *ps
    cdef int64_t *ne
    cdef int64_t *ns
    if sp_row[_L_MODE] == 0:   # rows of per-position counts; fan = outer(cover y, cover x) * fch
        ps = scratch + H
        ek_line_sums(counts + sp_row[_L_OUT] + f * N, H, W, 0, cb, pe, ps)
        for h in range(H):
            ev = pe[h]
            sp = ps[h] * ca[h] * fch
            if line_ev != NULL:
                line_ev[h] = ev
                line_sp[h] = sp
            ev_tot += ev
            sp_tot += sp
    else:                      # lossless line delta (see layer_lines)
        n = H if axis == 0 else W
        ps = scratch + n
        ne = scratch + 2 * n
        ns = scratch + 3 * n
        ek_line_sums(counts + sp_row[_L_OUT] + f * N, H, W, axis, cb, pe, ps)
        ek_line_sums(counts + sp_row[_L_OUT2] + f * N, H, W, axis, cb, ne, ns)
        for h in range(L):
            ev = 0
            sp = 0
            if ca[h] != 0:
                use_pair = s <= h < n                # D_h = X_h - X_{h-s}
                src = h if h < s or h < n else h - s   # else X_h alone, or -X_{h-s} (bottom padding)
                if src < n:
                    if rev:
                        r = n - 1 - src + s if use_pair else n - 1 - src
                    else:
                        r = src
                    ev = pe[r] if use_pair else ne[r]
                    sp = (ps[r] if use_pair else ns[r]) * ca[h] * fch
            if line_ev != NULL:
                line_ev[h] = ev
                line_sp[h] = sp
            ev_tot += ev
            sp_tot += sp
    ev_out[0] = ev_tot
    sp_out[0] = sp_tot
    return 0


def layer_lines(const int32_t[::1] counts, const int64_t[:, ::1] rows, const uint32_t[::1] covers,
                int64_t[:, ::1] events, int64_t[:, ::1] sops, int64_t[:, :, ::1] line_events=None,
                int64_t[:, :, ::1] line_sops=None, int threads=1):
    """Events and SOPs of many layers from per-position counts (:func:`stream_counts`,
    :func:`delta_counts`): per row (columns ``_L_*``; row j fills ``events[j]``, ``sops[j]``,
    per frame) mode 0 sums per-position counts by rows with the fan-out
    ``outer(cover_y, cover_x) * fch`` (``covers``: every row's covers, uint32); mode 1 assembles a
    lossless line delta's lines from pair and non-zero counts (row-major positions; axis 1
    scans columns): scan line h (row ``n-1-h`` of a reverse scan) sends ``X_h`` for h < s,
    ``X_h - X_{h-s}`` for s <= h < n (the pair of rows r-s, r belongs to scan line r forward
    and to scan line n-1-r+s reverse) and ``-X_{h-s}`` for h >= n; lines with zero cover are
    not sent; SOPs are ``sum count * cover_pos * cover_line * fch``. ``line_events`` /
    ``line_sops`` ``(layers, F, n)`` (optional): per line, the row's lines first, the rest
    left as given."""
    cdef Py_ssize_t n = rows.shape[0], F = events.shape[1], u, j, f, nb, mx = 1
    cdef bint want = line_events is not None
    cdef int64_t *scratch
    cdef int team = _team(threads, n * F)
    if rows.shape[1] != _L_COLS or events.shape[0] != n or sops.shape[0] != n or sops.shape[1] != F:
        raise ValueError("rows must have shape (n, %d), events and sops (n, F)" % _L_COLS)
    if want and (line_sops is None or line_events.shape[0] != n or line_events.shape[1] != F
                 or line_sops.shape[0] != n or line_sops.shape[1] != F
                 or line_sops.shape[2] != line_events.shape[2]):
        raise ValueError("line_events and line_sops must both have shape (n, F, lines)")
    for j in range(n):
        nb = rows[j, _L_H] if rows[j, _L_MODE] == 1 and rows[j, _L_AXIS] == 1 else rows[j, _L_W]   # cover b's length
        if (rows[j, _L_OUT] < 0 or rows[j, _L_OUT] + F * rows[j, _L_H] * rows[j, _L_W] > counts.shape[0]
                or rows[j, _L_OUT2] < 0 or rows[j, _L_OUT2] + F * rows[j, _L_H] * rows[j, _L_W] > counts.shape[0]
                or rows[j, _L_CA] < 0 or rows[j, _L_CA] + rows[j, _L_NA] > covers.shape[0]
                or rows[j, _L_CB] < 0 or rows[j, _L_CB] + nb > covers.shape[0]
                or (rows[j, _L_MODE] == 0 and rows[j, _L_NA] != rows[j, _L_H])
                or (rows[j, _L_MODE] == 1 and rows[j, _L_S] < 1)):
            raise ValueError(f"row {j}: inconsistent geometry or offsets")
        if want and rows[j, _L_NA] > line_events.shape[2]:
            raise ValueError(f"row {j}: {rows[j, _L_NA]} lines, line arrays hold {line_events.shape[2]}")
        mx = max(mx, rows[j, _L_H], rows[j, _L_W])
    scratch = <int64_t *>malloc(team * 4 * mx * sizeof(int64_t))
    if scratch == NULL:
        raise MemoryError()
    try:
        with nogil, parallel(num_threads=team):
            for u in prange(n * F, schedule="dynamic"):
                j = u // F
                f = u % F
                _layer_frame(&counts[0], &rows[j, 0], &covers[0], f,
                             &line_events[j, f, 0] if want else NULL,
                             &line_sops[j, f, 0] if want else NULL,
                             &events[j, f], &sops[j, f], scratch + threadid() * 4 * mx)
    finally:
        free(scratch)


# ---------------------------------------------------------------------------
# Batched lossy deltas: the stateful kernels of many layers in one call
# ---------------------------------------------------------------------------

cdef enum:   # columns of a ``delta_counts`` item row (DELTA_COLUMNS)
    _D_CODES, _D_KIND, _D_ZP, _D_C, _D_H, _D_W, _D_OP, _D_AXIS, _D_REV, _D_S, _D_THETA, _D_CLOSED, \
        _D_TAU, _D_CL, _D_NL, _D_CP, _D_OUT, _D_COLS

#: ``delta_counts`` item columns: the index of the code array, its EK code type
#: (``CODE_KINDS``), zero point, C, H, W, op (0 line delta, 1 temporal delta from zeros),
#: axis (0 y, 1 x), reverse, reference distance s, theta, closed loop (0/1), tau, the
#: offsets in ``covers`` of cover_line and of cover_pos and the number of lines (op 0; as
#: :func:`line_delta`), and the offset in ``counts`` of the per-position counts (op 1)
DELTA_COLUMNS = ("codes", "kind", "zp", "C", "H", "W", "op", "axis", "reverse", "s", "theta",
                 "closed", "tau", "cover_line", "n_lines", "cover_pos", "out")

cdef Py_ssize_t _delta_scratch(const int64_t *it) noexcept nogil:
    """int32 elements of one thread's scratch for an item (see _delta_unit)."""
    cdef Py_ssize_t C = it[_D_C], H = it[_D_H], W = it[_D_W], s = it[_D_S]
    cdef Py_ssize_t npos = W if it[_D_AXIS] == 0 else H
    if it[_D_OP] == 1:
        return 8 * EK_BLOCK   # R and Y of one temporal block (4 * EK_BLOCK), as temporal_delta
    return (2 * s + 3) * C * npos + (min(C, max(1, EK_BLOCK // H)) * H * W if it[_D_AXIS] != 0 else 0)


cdef bint _delta_narrow(const int64_t *it, const int64_t *covers, Py_ssize_t F) noexcept nogil:
    """Whether an item runs on 16-bit state and lanes (as line_delta / temporal_delta)."""
    cdef Py_ssize_t npos = it[_D_W] if it[_D_AXIS] == 0 else it[_D_H]
    if it[_D_OP] == 1:
        return _narrow_state(<int>it[_D_KIND], <int>it[_D_ZP], <int>it[_D_THETA], <int>it[_D_TAU],
                             it[_D_CLOSED] != 0, F, 0)
    return _narrow_line(<int>it[_D_KIND], <int>it[_D_ZP], <int>it[_D_THETA], <int>it[_D_TAU],
                        it[_D_CLOSED] != 0, it[_D_NL], max(EK_BLOCK, npos),
                        _cover_max(covers + it[_D_CP], npos))


cdef inline void _zero_state(void *state, Py_ssize_t nb, Py_ssize_t TB, Py_ssize_t size, int closed) noexcept nogil:
    """Zero the ``nb`` entries a temporal block reads of its state (entries of ``size`` bytes):
    R at 0 and, in the open loop, Y at ``TB``."""
    memset(state, 0, nb * size)
    if not closed:
        memset(<char *>state + TB * size, 0, nb * size)


cdef void _delta_unit(const char *x, const int64_t *it, Py_ssize_t f, Py_ssize_t F,
                      const int64_t *covers, int32_t *counts, int64_t *line_ev, int64_t *line_sp,
                      int64_t *err, int32_t *scratch, ek_err *es) noexcept nogil:
    """Frame ``f`` of a line-delta item (``line_ev``/``line_sp``: its lines, zeroed), or every
    frame of a temporal item (``f`` < 0; counts at the item's offset, zeroed here); ``err``: the
    item's (F, 3) errors; ``scratch`` (_delta_scratch) and ``es`` (F) of the thread."""
    cdef Py_ssize_t C = it[_D_C], H = it[_D_H], W = it[_D_W], N = H * W, n = C * N, s = it[_D_S]
    cdef Py_ssize_t npos = W if it[_D_AXIS] == 0 else H, m = C * npos, c, p, i0 = 0, g
    cdef Py_ssize_t TB = 4 * EK_BLOCK
    cdef int kind = <int>it[_D_KIND]
    cdef int32_t zp = <int32_t>it[_D_ZP]
    cdef bint narrow = _delta_narrow(it, covers, F)
    cdef const int64_t *cp64 = covers + it[_D_CP]
    cdef int32_t *cp
    if it[_D_OP] == 1:
        for g in range(F):
            _err_zero(&es[g])
        memset(counts + it[_D_OUT], 0, F * N * sizeof(int32_t))
        while i0 < n:   # blocks from zeros through every frame: R at 0, Y (open loop) at TB
            _zero_state(scratch, min(TB, n - i0), TB, 2 if narrow else 4, <int>it[_D_CLOSED])
            _temporal_frames(kind, x, n, F, N, i0, min(TB, n - i0), zp, <int32_t>it[_D_THETA],
                             <int>it[_D_CLOSED], <int32_t>it[_D_TAU], NULL if narrow else scratch,
                             <int16_t *>scratch if narrow else NULL, TB, counts + it[_D_OUT], es, NULL)
            i0 += TB
        for g in range(F):
            err[3 * g] = es[g].emax
            err[3 * g + 1] = es[g].esq
            err[3 * g + 2] = es[g].xsq
        return
    cp = scratch + (2 * s + 2) * m
    _fill_covers(cp64, C, npos, cp, narrow)
    _err_zero(&es[0])
    _line(kind, x + f * n * _code_size(kind), zp, C, H, W, <int>it[_D_AXIS], <int>it[_D_REV],
          covers + it[_D_CL], it[_D_NL], s, cp, <int32_t>it[_D_THETA], <int>it[_D_CLOSED],
          <int32_t>it[_D_TAU], scratch + 2 * m, scratch + (2 + s) * m, scratch, scratch + m,
          line_ev, line_sp, &es[0], scratch + (2 * s + 3) * m, NULL, NULL, narrow)
    err[3 * f] = es[0].emax
    err[3 * f + 1] = es[0].esq
    err[3 * f + 2] = es[0].xsq


cdef Py_ssize_t _check_delta_item(Py_ssize_t i, const int64_t[::1] it, Py_ssize_t F, Py_ssize_t nc,
                                  const int64_t[::1] covers, Py_ssize_t n_counts,
                                  Py_ssize_t width) except -1:
    """One ``delta_counts`` item's geometry, parameters and offsets (ValueError naming it);
    returns its scratch size."""
    cdef Py_ssize_t npos = it[_D_W] if it[_D_AXIS] == 0 else it[_D_H], k
    if it[_D_CODES] < 0 or it[_D_CODES] >= nc:
        raise ValueError(f"item {i}: no code array {it[_D_CODES]}")
    if it[_D_C] < 0 or it[_D_H] < 1 or it[_D_W] < 1 or it[_D_OP] not in (0, 1) or it[_D_AXIS] not in (0, 1):
        raise ValueError(f"item {i}: bad shape, op or axis")
    if it[_D_THETA] < 0 or it[_D_TAU] < 0 or it[_D_THETA] > 2 ** 30 or it[_D_TAU] > 2 ** 30:
        raise ValueError(f"item {i}: theta and tau must lie in [0, 2**30]")
    if it[_D_OP] == 1:
        if it[_D_OUT] < 0 or it[_D_OUT] + F * it[_D_H] * it[_D_W] > n_counts:
            raise ValueError(f"item {i}: counts outside the counts array")
        return _delta_scratch(&it[0])
    if it[_D_S] < 1 or it[_D_NL] < 1 or it[_D_NL] > width:
        raise ValueError(f"item {i}: bad stride or line count")
    if (it[_D_CL] < 0 or it[_D_CL] + it[_D_NL] > covers.shape[0] or it[_D_CP] < 0
            or it[_D_CP] + npos > covers.shape[0]):
        raise ValueError(f"item {i}: covers outside the covers array")
    for k in range(it[_D_NL]):
        if covers[it[_D_CL] + k] < 0:
            raise ValueError(f"item {i}: cover_line must be >= 0")
    _cover_pos_max(&covers[it[_D_CP]], npos, it[_D_C], f"item {i}: ")
    return _delta_scratch(&it[0])


def delta_counts(list codes, const int64_t[:, ::1] items, const int64_t[:, ::1] units, Py_ssize_t F,
                 const int64_t[::1] covers, int32_t[::1] counts, int64_t[:, :, ::1] line_events,
                 int64_t[:, :, ::1] line_sops, int64_t[:, :, ::1] errs, int threads=1):
    """The lossy deltas of many tensors in one call. Per item (a row of ``items``, columns
    ``DELTA_COLUMNS``) over frames ``0..F`` of ``codes[row[0]]`` (C-contiguous ``F*C*H*W``
    codes): op 0 :func:`line_delta` into ``line_events[item]``, ``line_sops[item]``
    (``(F, width)``, zeroed); op 1 :func:`temporal_delta` from zeros into the per-position
    counts at the item's offset in ``counts`` (``F*H*W``; the unit zeroes it first).
    ``errs[item, f]``: (max error, sum of squared errors, sum X**2). ``units`` ``(item, frame)`` rows, frame
    -1 for a temporal item's every frame, run on ``threads`` OpenMP threads in the order
    given (dynamic schedule); every unit writes its own outputs."""
    cdef Py_ssize_t n = items.shape[0], nu = units.shape[0], nc = len(codes), i, u, mx = 1
    cdef Py_ssize_t width = line_events.shape[2]
    cdef _CodeViews cv
    cdef const char **ptrs
    cdef int32_t *scratch
    cdef ek_err *es
    cdef int team = _team(threads, nu)
    if (items.shape[1] != <Py_ssize_t>_D_COLS or units.shape[1] != 2 or errs.shape[0] != n
            or errs.shape[1] != F or errs.shape[2] != 3 or line_events.shape[0] != n
            or line_events.shape[1] != F or line_sops.shape[0] != n or line_sops.shape[1] != F
            or line_sops.shape[2] != width):
        raise ValueError("items (n, %d), units (m, 2), errs (n, F, 3), line arrays (n, F, w)" % _D_COLS)
    for i in range(n):
        mx = max(mx, _check_delta_item(i, items[i], F, nc, covers, counts.shape[0], width))
    for u in range(nu):
        if (units[u, 0] < 0 or units[u, 0] >= n or units[u, 1] >= F
                or units[u, 1] != (-1 if items[units[u, 0], _D_OP] == 1 else max(0, units[u, 1]))):
            raise ValueError(f"unit {u}: no item {units[u, 0]} frame {units[u, 1]}")
    cv = _CodeViews(codes)
    for i in range(n):
        cv.check(i, items[i, _D_CODES], <int>items[i, _D_KIND], F * items[i, _D_C] * items[i, _D_H] * items[i, _D_W])
    ptrs = cv.ptrs
    scratch = <int32_t *>malloc(team * mx * sizeof(int32_t))
    es = <ek_err *>malloc(team * max(1, F) * sizeof(ek_err))
    if scratch == NULL or es == NULL:
        free(scratch); free(es)
        raise MemoryError()
    try:
        with nogil, parallel(num_threads=team):
            for u in prange(nu, schedule="dynamic"):
                i = units[u, 0]
                _delta_unit(ptrs[items[i, _D_CODES]], &items[i, 0], units[u, 1], F, &covers[0],
                            &counts[0], &line_events[i, max(0, units[u, 1]), 0],
                            &line_sops[i, max(0, units[u, 1]), 0], &errs[i, 0, 0],
                            scratch + threadid() * mx, es + threadid() * max(1, F))
    finally:
        free(scratch); free(es)
