# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, nonecheck=False
"""The cost model's per-layer mapping loops (``else_dse.cost``), compiled into ``else_dse._mapping``.

Each function is the arithmetic of the numpy / Python code it replaces in
``else_dse.cost``, operation for operation in float64, so its results are
bit-identical to that code, which ``tests/test_mapping_kernels.py`` keeps as the
reference (the module is built with ``-ffp-contract=off``: no fused multiply-add on
any target). Arrays are C-contiguous and allocated by the caller.
"""

from libc.stdint cimport int64_t, uint8_t
from libc.math cimport floor
from libc.stdlib cimport malloc, free, calloc


def pack_layers(const int64_t[::1] neurons, const double[::1] mem, const int64_t[::1] cores,
                const uint8_t[::1] single, double buf, int64_t neurons_per_core, double sram_per_core,
                int64_t[::1] group, int64_t[::1] first, double[::1] core_mem) -> int:
    """Consecutive single-core layers share a core while ``neurons`` and ``mem`` (bytes, one
    event buffer ``buf`` per core) fit: fills each layer's core ``group``, the ``first`` core of
    its group and ``core_mem`` (a shared core's memory; give a copy of ``mem``); returns the
    number of physical cores."""
    cdef Py_ssize_t n = mem.shape[0], i, j, m0 = 0
    cdef int64_t g = -1, phys = 0, first_g = 0, cur_neu = 0
    cdef double cur_mem = 0.0
    cdef bint open_ = False
    if not (neurons.shape[0] == cores.shape[0] == single.shape[0] == group.shape[0] == first.shape[0]
            == core_mem.shape[0] == n):
        raise ValueError("pack_layers: every array must have one value per layer")
    with nogil:
        for i in range(n):
            if open_ and single[i] and cur_neu + neurons[i] <= neurons_per_core \
                    and cur_mem + mem[i] - buf <= sram_per_core:
                cur_neu = cur_neu + neurons[i]
                cur_mem = cur_mem + (mem[i] - buf)
            else:
                if i - m0 > 1:
                    for j in range(m0, i):
                        core_mem[j] = cur_mem
                g += 1
                first_g = phys
                phys += cores[i]
                open_, cur_neu, cur_mem, m0 = single[i], neurons[i], mem[i], i
            group[i] = g
            first[i] = first_g
        if n - m0 > 1:
            for j in range(m0, n):
                core_mem[j] = cur_mem
    return phys


cdef int _cdf_terms(const int64_t *counts, const double *inv, const int64_t *producer, Py_ssize_t n,
                    Py_ssize_t size, double *f, double[:, ::1] out) noexcept nogil:
    """``out[l, k] = F_p(k) (1 - F_l(k)) + F_l(k) (1 - F_p(k))``: ``F_l`` the running sum over
    ``k`` of ``counts[l, k] * inv[l]`` (layer ``n``, the outside: 1 at every ``k``), ``p`` the
    producer of ``l``; ``f`` is scratch for ``(n + 1) * size`` values."""
    cdef Py_ssize_t l, k
    cdef double h, fl, fp, a, b
    for l in range(n):
        for k in range(size):
            h = <double>counts[l * size + k] * inv[l]
            f[l * size + k] = h if k == 0 else f[l * size + k - 1] + h
    for k in range(size):
        f[n * size + k] = 1.0
    for l in range(n):
        for k in range(size):
            fl = f[l * size + k]
            fp = f[producer[l] * size + k]
            a = fp * (1.0 - fl)
            b = fl * (1.0 - fp)
            out[l, k] = a + b
    return 0


def snake_distance_terms(const int64_t[::1] first, const int64_t[::1] cores, const int64_t[::1] producer,
                         Py_ssize_t mx, Py_ssize_t ny, double[:, ::1] tx, double[:, ::1] ty) -> None:
    """The per-coordinate terms of each layer's mean Manhattan distance to its producer's cores
    (``else_dse.cost._mean_distance``): layer ``l`` holds cores ``first[l] ..
    first[l] + cores[l] - 1`` numbered in snake order on a mesh ``mx`` wide and ``ny`` high
    (odd rows run backwards); ``producer[l]`` is its producer, ``n`` for the outside (all
    at node (0, 0)). Fills ``tx`` ``(n, mx)`` (columns) and ``ty`` ``(n, ny)`` (rows); the
    distance is ``tx.sum(1) + ty.sum(1)``."""
    cdef Py_ssize_t n = cores.shape[0], l, j, idx, y, r
    if first.shape[0] != n or producer.shape[0] != n or tx.shape[0] != n or ty.shape[0] != n \
            or tx.shape[1] != mx or ty.shape[1] != ny or mx < 1 or ny < 1:
        raise ValueError("snake_distance_terms: first, cores, producer, tx and ty must have one row "
                         "per layer, tx mx columns and ty ny columns")
    if n == 0:
        return
    for l in range(n):
        if cores[l] < 0 or not 0 <= producer[l] <= n or first[l] < 0 or first[l] + cores[l] > mx * ny:
            raise ValueError(f"snake_distance_terms: layer {l}: cores {first[l]}..{first[l] + cores[l] - 1} "
                             f"outside the {mx} x {ny} mesh, or producer {producer[l]} not in 0..{n}")
    cdef int64_t *cx = <int64_t *>calloc(n * mx + 1, sizeof(int64_t))
    cdef int64_t *cy = <int64_t *>calloc(n * ny + 1, sizeof(int64_t))
    cdef double *inv = <double *>malloc((n + 1) * sizeof(double))
    cdef double *fx = <double *>malloc(((n + 1) * mx + 1) * sizeof(double))
    cdef double *fy = <double *>malloc(((n + 1) * ny + 1) * sizeof(double))
    try:
        if cx == NULL or cy == NULL or inv == NULL or fx == NULL or fy == NULL:
            raise MemoryError()
        with nogil:
            for l in range(n):
                inv[l] = 1.0 / <double>cores[l]
                for j in range(cores[l]):
                    idx = first[l] + j
                    y = idx // mx
                    r = idx - y * mx
                    cx[l * mx + (mx - 1 - r if y & 1 else r)] += 1
                    cy[l * ny + y] += 1
            _cdf_terms(cx, inv, &producer[0], n, mx, fx, tx)
            _cdf_terms(cy, inv, &producer[0], n, ny, fy, ty)
    finally:
        free(cx)
        free(cy)
        free(inv)
        free(fx)
        free(fy)


cdef inline int64_t _ceil_div(int64_t a, int64_t b) noexcept nogil:
    """``-(-a // b)`` for a >= 0, b > 0."""
    return (a + b - 1) // b


cdef inline int64_t _as_int64(double v) noexcept nogil:
    """numpy's ``float64 -> int64`` cast on x86-64: NaN and values below the range give INT64_MIN."""
    if v != v or v < -9.2233720368547758e18:
        return -9223372036854775807 - 1
    return <int64_t>v


def fewest_cores_tiling(const int64_t[::1] c, const int64_t[::1] rows, const int64_t[::1] cols,
                        const int64_t[::1] wpc, const double[::1] row_bytes, const int64_t[::1] base,
                        double weight_bytes, double buf, int64_t neurons_per_core, double sram_per_core,
                        int64_t[::1] n_c, int64_t[::1] n_r, int64_t[::1] cc, int64_t[::1] rr,
                        double[::1] mem, double[::1] share, uint8_t[::1] fits) -> None:
    """Per layer, of the tilings into ``ceil(c / min(base[j], c))``-channel groups (every
    ``base[j]``, then ``c`` itself) and the row bands that fit ``neurons_per_core`` and
    ``sram_per_core``, the one with the fewest cores (ties: the smaller busiest-core share, then
    fewer channel groups; the finest when none fits): ``else_dse.cost._fewest_cores_tiling``.
    ``wpc`` weights per output channel, ``row_bytes`` bytes of one row of one channel,
    ``weight_bytes`` bytes per weight, ``buf`` the event buffer's bytes."""
    cdef Py_ssize_t n = c.shape[0], nb = base.shape[0], l, j
    cdef int64_t ncand, cc_j, nc_j, rr_neu, rr_max, nr_j, rr_j, w
    cdef double a, b, rr_mem, m, share_j, key, best
    cdef int64_t b_nc = 0, b_nr = 0, b_cc = 0, b_rr = 0
    cdef double b_a = 0.0, b_b = 0.0, b_share = 0.0
    cdef bint ok, b_ok = False
    if not (rows.shape[0] == cols.shape[0] == wpc.shape[0] == row_bytes.shape[0] == n_c.shape[0]
            == n_r.shape[0] == cc.shape[0] == rr.shape[0] == mem.shape[0] == share.shape[0]
            == fits.shape[0] == n):
        raise ValueError("fewest_cores_tiling: every array must have one value per layer")
    for l in range(n):
        if c[l] < 1 or rows[l] < 1 or cols[l] < 1:
            raise ValueError(f"fewest_cores_tiling: layer {l}: channels {c[l]}, rows {rows[l]} and columns "
                             f"{cols[l]} must be >= 1")
    for j in range(nb):
        if base[j] < 1:
            raise ValueError("fewest_cores_tiling: base candidates must be >= 1")
    with nogil:
        for l in range(n):
            best = 0.0
            for j in range(nb + 1):
                ncand = c[l] if j == nb or base[j] > c[l] else base[j]
                cc_j = _ceil_div(c[l], ncand)
                nc_j = _ceil_div(c[l], cc_j)
                a = <double>(cc_j * wpc[l]) * weight_bytes + buf
                b = <double>cc_j * row_bytes[l]
                rr_neu = neurons_per_core // (cc_j * cols[l])
                rr_mem = floor((sram_per_core - a) / b)
                # np.minimum(np.minimum(rr_neu, rr_mem), rows): float64, NaN propagates
                m = rr_mem if (rr_mem != rr_mem or rr_mem < <double>rr_neu) else <double>rr_neu
                m = m if (m != m or m < <double>rows[l]) else <double>rows[l]
                rr_max = _as_int64(m)
                ok = rr_max >= 1
                nr_j = _ceil_div(rows[l], rr_max if rr_max > 1 else 1)
                rr_j = _ceil_div(rows[l], nr_j)
                share_j = <double>(cc_j * rr_j) / <double>(c[l] * rows[l])
                w = nc_j * nr_j if ok else nc_j * nr_j + <int64_t>1000000000000
                key = <double>w + 0.5 * share_j
                key = key + 1e-9 * <double>nc_j
                if j == 0 or key < best:
                    best = key
                    b_nc, b_nr, b_cc, b_rr, b_a, b_b, b_share, b_ok = nc_j, nr_j, cc_j, rr_j, a, b, share_j, ok
            n_c[l], n_r[l], cc[l], rr[l] = b_nc, b_nr, b_cc, b_rr
            mem[l] = b_a + <double>b_rr * b_b
            share[l] = b_share
            fits[l] = b_ok
