# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Event-counting kernels (placeholder module; see issue 3)."""
