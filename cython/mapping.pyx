# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, nonecheck=False
"""The cost model's per-layer mapping loops (``else_dse.cost``), compiled into ``else_dse._mapping``.

Each function is the arithmetic of the numpy / Python code it replaces in
``else_dse.cost``, operation for operation in float64 (no fused multiply-add), so
its results are bit-identical to that code, which ``tests/reference.py`` keeps as
the reference. Arrays are C-contiguous and allocated by the caller.
"""

from libc.stdint cimport int64_t, uint8_t
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
