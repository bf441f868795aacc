"""pyconc's benchmarks: each compares pyconc with its standard-library (or
numpy) counterpart in the same process and prints ratios."""
import os

# OpenBLAS's worker threads (numpy's BLAS) spin between calls once started
# and take a core from the 2-thread runs of a 2-core machine; no benchmark
# here uses BLAS (numpy.sort is single-threaded).  Set before any module
# of the package imports numpy; an explicit setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
