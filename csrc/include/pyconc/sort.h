/* pyconc core: parallel sort kernels over the work-stealing pool.
 *
 * Two stable algorithms, both using at most one extra buffer of n
 * elements:
 * - a parallel LSD radix sort on order-preserving unsigned keys (signed
 *   ints: flip the sign bit; floats: flip all bits of negatives, the sign
 *   bit of positives; -0.0 and +0.0 share a key, every NaN gets the
 *   largest key, so NaNs sort last like numpy and equal keys keep their
 *   input order).  Chunk histograms and scatters run in parallel; a digit
 *   position on which all keys agree is skipped.
 * - a parallel merge sort: halves sorted under pcc_pool_join, merged by a
 *   parallel merge that splits at a binary-searched pivot (rayon's
 *   par_merge).  Ping-pongs between the data and the buffer.
 * PCC_SORT_AUTO picks by type and size (measured; see benchmarks/).
 *
 * Cancellation: `cancel` (may be NULL) is polled every few thousand
 * elements; once it reads non-zero the sort stops early, returns
 * -ECANCELED, and the data is a permutation of the input.
 */
#ifndef PYCONC_SORT_H
#define PYCONC_SORT_H

#include "pyconc/common.h"
#include "pyconc/pool.h"

typedef enum {
    PCC_SORT_I8, PCC_SORT_U8, PCC_SORT_I16, PCC_SORT_U16, PCC_SORT_I32, PCC_SORT_U32,
    PCC_SORT_I64, PCC_SORT_U64, PCC_SORT_F32, PCC_SORT_F64,
    /* records {uint64 key, void *value} ordered by key (the binding sorts
     * list items by a precomputed key this way) */
    PCC_SORT_KV,
    PCC_SORT_NTYPES
} pcc_sort_type;

typedef enum { PCC_SORT_AUTO, PCC_SORT_RADIX, PCC_SORT_MERGE } pcc_sort_algo;

typedef struct pcc_kv {
    uint64_t key;
    void *value;
} pcc_kv;

/* Element size in bytes of a type. */
size_t pcc_sort_elsize(pcc_sort_type t);

/* Sort data[0..n) of type t in place, stable, ascending (descending: the
 * reverse order of keys, still stable -- equal keys keep input order).
 * Runs on `pool` (call it from a worker of that pool, e.g. inside
 * pcc_pool_install, for parallelism; pool NULL means sequential).
 * Returns 0, -ECANCELED (data is a permutation of the input), -ENOMEM
 * (data untouched) or -EINVAL. */
int pcc_sort(pcc_pool *pool, pcc_sort_type t, void *data, size_t n, int descending,
             pcc_sort_algo algo, const _Atomic int *cancel);

/* Stable argsort: out[i] = the index of the i-th element of src[0..n) (of
 * type t, not KV) in sorted order, equal elements in index order, NaN
 * last, -0.0 == 0.0 (numpy's argsort(kind="stable")).  kv: n records of
 * scratch.  Runs on `pool` as pcc_sort.  Returns 0, -ECANCELED or -ENOMEM
 * (out untouched), or -EINVAL.  `out` is never left half-written: a cancel
 * that comes once the records are sorted lets the (short) copy finish and
 * returns 0. */
int pcc_argsort(pcc_pool *pool, pcc_sort_type t, const void *src, size_t n, pcc_kv *kv,
                int64_t *out, const _Atomic int *cancel);

/* The scratch buffer of the last large sort is kept, lazily freed
 * (MADV_FREE), for the next one (see sort.c).  This unmaps it now and
 * returns its size in bytes (0: none was kept). */
size_t pcc_sort_release_scratch(void);

/* Order-preserving keys, for building PCC_SORT_KV records. */
uint64_t pcc_sort_key_i64(int64_t x);
uint64_t pcc_sort_key_f64(double x);

/* ---- strings --------------------------------------------------------------
 * A string record: `len` code units of `width` bytes (1, 2 or 4), compared
 * as unsigned code points (str in code point order, bytes in byte order);
 * `obj` is carried along for the caller.  The data must stay valid while
 * the sort runs. */
typedef struct pcc_str {
    const void *data;
    size_t len;
    void *obj;
    unsigned width;
} pcc_str;

/* The order-preserving 64-bit key of s's code points [depth, depth + k)
 * (k = 8, 4 or 3 for maxw = 1, 2 or 4: maxw is the widest width among the
 * strings sorted together; missing code points count as 0, so equal keys
 * leave ties for the full comparison). */
uint64_t pcc_str_key(const pcc_str *s, unsigned maxw, size_t depth);

/* Sort kv[0..n), whose values point at pcc_str records, stably by those
 * strings (descending: reverse order, equal strings keep input order).
 * keys_ready (maxw 1 only; ignored otherwise): every kv[i].key already is
 * pcc_str_key(value, 1, 0).
 * Records are sorted by key prefixes (the radix kernel), ties resolved by
 * further key prefixes and full comparisons, on the pool.  Returns 0,
 * -ECANCELED (kv is a permutation) or -ENOMEM. */
int pcc_sort_str(pcc_pool *pool, pcc_kv *kv, size_t n, unsigned maxw, int keys_ready,
                 int descending, const _Atomic int *cancel);

#endif
