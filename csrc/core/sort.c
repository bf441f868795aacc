/* pyconc core: parallel sort kernels (see sort.h).  The algorithms live in
 * sort_impl.h, instantiated here once per element type. */
#include "pyconc/sort.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

/* Tuning (measured with benchmarks/bench_parallel.py on 2 cores):
 * below INSERTION_MAX elements insertion sort wins; merge sort recursion
 * stops forking below PAR_SORT_MIN and merges stay sequential below
 * PAR_MERGE_MIN (a fork costs about a microsecond); radix chunks are at
 * least RADIX_MIN_CHUNK elements; the cancel flag is polled every
 * CANCEL_STRIDE elements (well under a millisecond of work). */
#define INSERTION_MAX 24
#define PAR_SORT_MIN 8192
#define PAR_MERGE_MIN 8192
#define RADIX_MIN_CHUNK 4096
#define CANCEL_STRIDE 16384
/* radix digit width for 32- and 64-bit keys (measured) */
#ifndef SORT_DBITS_32
#define SORT_DBITS_32 8
#endif
#ifndef SORT_DBITS_64
#define SORT_DBITS_64 8
#endif

/* x86-64 with GCC or clang: a few memory-bound loops (the order checks)
 * are compiled a second time for AVX2 and chosen at run time. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(PYCONC_NO_AVX2)
#define SORT_AVX2 1
static int sort_have_avx2(void)
{
    static _Atomic int have = -1;
    int h = atomic_load_explicit(&have, memory_order_relaxed);
    if (h < 0) {
        __builtin_cpu_init();
        h = __builtin_cpu_supports("avx2") ? 1 : 0;
        atomic_store_explicit(&have, h, memory_order_relaxed);
    }
    return h;
}
#else
#define SORT_AVX2 0
#endif

typedef struct sctx {
    pcc_pool *pool; /* NULL: sequential */
    int nthreads;
    const _Atomic int *cancel;
} sctx;

/* The scratch buffer.  A small one comes from malloc.  A large one is its
 * own mapping, 2 MiB aligned and asked for in transparent huge pages, and
 * the last one is kept for the next sort:
 *
 * - faulting in a fresh mapping is the kernel zeroing it, a page at a time:
 *   for the 76 MiB of a 10M-element int64 sort that was ~9 ms with huge
 *   pages (45 ms with 4 KiB ones), and with two threads the faults and the
 *   unmap's TLB shootdown were 10-30% of the whole sort here;
 * - so a released buffer is handed back to the kernel with MADV_FREE
 *   (lazily freed: it reclaims those pages first under memory pressure,
 *   and if it has not, the next sort writes to them without a fault) and
 *   kept in one slot; the next sort that fits takes it, and a newer
 *   buffer replaces it (the older one is unmapped);
 * - only buffers up to SCRATCH_KEEP_MAX (and 1/16 of physical memory) are
 *   kept: above that one sort's scratch is unmapped when it ends.
 *
 * The slot is one atomic word (the buffer's address, 2 MiB aligned, OR its
 * size in 2 MiB units), so taking and returning it is lock-free, and a
 * forked child inherits a valid slot with the mapping. */
#define SCRATCH_BIG ((size_t)8 << 20)
#define SCRATCH_ALIGN ((size_t)2 << 20)
#define SCRATCH_KEEP_MAX ((size_t)1 << 30)
static _Atomic uintptr_t scratch_slot;

static size_t scratch_keep_max(void)
{
    size_t cap = SCRATCH_KEEP_MAX;
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGESIZE)
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    if (pages > 0 && psz > 0 && (size_t)pages / 16 < cap / (size_t)psz)
        cap = (size_t)pages / 16 * (size_t)psz;
#endif
    return cap;
}

static inline size_t scratch_round(size_t bytes)
{
    return (bytes + SCRATCH_ALIGN - 1) & ~(SCRATCH_ALIGN - 1);
}

/* a slot word's buffer and its length (0 for the empty slot) */
static inline void *scratch_addr(uintptr_t slot)
{
    return (void *)(slot & ~(uintptr_t)(SCRATCH_ALIGN - 1));
}

static inline size_t scratch_len(uintptr_t slot)
{
    return (size_t)(slot & (SCRATCH_ALIGN - 1)) * SCRATCH_ALIGN;
}

static void scratch_unmap(uintptr_t slot)
{
    if (slot != 0)
        (void)munmap(scratch_addr(slot), scratch_len(slot));
}

/* The in-cache finish's third array (SN(lsd_finish) in sort_impl.h): one
 * per thread, made on the thread's first finish and freed when the thread
 * ends (a key's destructor); NULL if it cannot be made, and the finish then
 * works in its two arrays and copies. */
#define TSCRATCH_BYTES ((size_t)256 << 10)
static pthread_key_t tscratch_key;
static pthread_once_t tscratch_once = PTHREAD_ONCE_INIT;
static int tscratch_ok;

static void tscratch_init(void)
{
    tscratch_ok = pthread_key_create(&tscratch_key, free) == 0;
}

static void *sort_tscratch(void)
{
    if (pthread_once(&tscratch_once, tscratch_init) != 0 || !tscratch_ok)
        return NULL;
    void *p = pthread_getspecific(tscratch_key);
    if (p == NULL && (p = malloc(TSCRATCH_BYTES)) != NULL && pthread_setspecific(tscratch_key, p) != 0) {
        free(p);
        p = NULL;
    }
    return p;
}

static void *sort_alloc(size_t bytes)
{
    if (bytes < SCRATCH_BIG)
        return malloc(bytes);
    size_t len = scratch_round(bytes);
    uintptr_t slot = atomic_exchange_explicit(&scratch_slot, 0, memory_order_acquire);
    if (slot != 0) {
        if (scratch_len(slot) >= len)
            return scratch_addr(slot);
        scratch_unmap(slot); /* too small for this sort: a new one replaces it */
    }
    /* map len + 2 MiB and trim both ends to a 2 MiB boundary */
    char *m = mmap(NULL, len + SCRATCH_ALIGN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    char *p = (char *)(((uintptr_t)m + SCRATCH_ALIGN - 1) & ~(uintptr_t)(SCRATCH_ALIGN - 1));
    if (p > m)
        (void)munmap(m, (size_t)(p - m));
    if (p + len < m + len + SCRATCH_ALIGN)
        (void)munmap(p + len, (size_t)(m + len + SCRATCH_ALIGN - (p + len)));
#ifdef MADV_HUGEPAGE
    (void)madvise(p, len, MADV_HUGEPAGE); /* advice only: fine if refused */
#endif
    return p;
}

size_t pcc_sort_release_scratch(void)
{
    uintptr_t slot = atomic_exchange_explicit(&scratch_slot, 0, memory_order_acquire);
    scratch_unmap(slot);
    return scratch_len(slot);
}

static void sort_free(void *p, size_t bytes)
{
    if (bytes < SCRATCH_BIG) {
        free(p);
        return;
    }
    size_t len = scratch_round(bytes);
    uintptr_t mine = (uintptr_t)p | (uintptr_t)(len / SCRATCH_ALIGN);
    if (len > scratch_keep_max()) {
        scratch_unmap(mine);
        return;
    }
#ifdef MADV_FREE
    (void)madvise(p, len, MADV_FREE);
#endif
    scratch_unmap(atomic_exchange_explicit(&scratch_slot, mine, memory_order_acq_rel));
}

/* From this many elements the 4- and 8-byte integer kernels (and floats on
 * their bit path) distribute the top digit in place instead of allocating
 * a copy of the whole array (1e9 int64: 8 GB, not 16).  The environment
 * variable PYCONC_SORT_INPLACE_MIN overrides it (the tests use a small
 * value to exercise the path). */
#define SORT_INPLACE_MIN ((size_t)1 << 27)

static size_t sort_inplace_min(void)
{
    const char *e = getenv("PYCONC_SORT_INPLACE_MIN");
    if (e != NULL && *e != '\0') {
        char *end;
        unsigned long long v = strtoull(e, &end, 10);
        if (*end == '\0')
            return v < 4096 ? 4096 : (size_t)v;
    }
    return SORT_INPLACE_MIN;
}

static inline int is_cancelled(sctx *c)
{
    return c->cancel != NULL && atomic_load_explicit(c->cancel, memory_order_relaxed) != 0;
}

static void sjoin(sctx *c, pcc_task_fn fa, void *a, pcc_task_fn fb, void *b)
{
    if (c->pool != NULL && c->nthreads > 1 && pcc_pool_join(c->pool, fa, a, fb, b) == 0)
        return;
    fa(a);
    fb(b);
}

/* ---- parallel for over chunk indices [lo, hi), split by join ------------- */

typedef void (*chunk_fn)(void *arg, size_t chunk);
typedef struct {
    sctx *c;
    chunk_fn fn;
    void *arg;
    size_t lo, hi;
} pfor_t;

static void pfor_run(void *p)
{
    pfor_t *f = p;
    if (f->hi - f->lo == 1) {
        f->fn(f->arg, f->lo);
        return;
    }
    size_t mid = f->lo + (f->hi - f->lo) / 2;
    pfor_t a = *f, b = *f;
    a.hi = mid;
    b.lo = mid;
    sjoin(f->c, pfor_run, &a, pfor_run, &b);
}

static void pfor(sctx *c, size_t n, chunk_fn fn, void *arg)
{
    if (n == 0)
        return;
    pfor_t f = {c, fn, arg, 0, n};
    pfor_run(&f);
}

typedef struct {
    char *dst;
    const char *src;
    size_t bytes, csize;
} copy_t;

static void copy_chunk(void *arg, size_t ch)
{
    copy_t *k = arg;
    size_t lo = ch * k->csize, hi = lo + k->csize < k->bytes ? lo + k->csize : k->bytes;
    memcpy(k->dst + lo, k->src + lo, hi - lo);
}

/* Copy bytes in parallel; never cancelled (it restores a permutation). */
static void par_copy(sctx *c, void *dst, const void *src, size_t bytes)
{
    size_t nch = (size_t)c->nthreads * 2;
    if (bytes < ((size_t)1 << 20) || c->nthreads < 2)
        nch = 1;
    copy_t k = {dst, src, bytes, (bytes + nch - 1) / nch};
    pfor(c, (bytes + k.csize - 1) / k.csize, copy_chunk, &k);
}

/* ---- keys ------------------------------------------------------------------ */

uint64_t pcc_sort_key_i64(int64_t x) { return (uint64_t)x ^ 0x8000000000000000ull; }

/* Branch-free (the order checks and the generic float kernels vectorize):
 * every NaN gets the largest key (last, in input order), -0.0 and +0.0 the
 * same key (equal, input order kept). */
static inline uint64_t key_f64(double x)
{
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    uint64_t k = u ^ ((uint64_t)((int64_t)u >> 63) | 0x8000000000000000ull);
    k = (u << 1) == 0 ? 0x8000000000000000ull : k;
    return (u & 0x7FFFFFFFFFFFFFFFull) > 0x7FF0000000000000ull ? UINT64_MAX : k;
}

uint64_t pcc_sort_key_f64(double x) { return key_f64(x); }

static inline uint32_t key_f32(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    uint32_t k = u ^ ((uint32_t)((int32_t)u >> 31) | 0x80000000u);
    k = (u << 1) == 0 ? 0x80000000u : k;
    return (u & 0x7FFFFFFFu) > 0x7F800000u ? UINT32_MAX : k;
}

/* Radix needs a few passes over n elements plus histograms; below these
 * sizes the merge sort is faster (measured: from 512 elements the 4- and
 * 8-byte kernels' in-cache LSD finish wins, 1000 int64 9.6 -> 4.3 us). */
#define RADIX_MIN_1 128
#define RADIX_MIN_2 512
#define RADIX_MIN_4 512
#define RADIX_MIN_8 512

#define ST int8_t
#define SK uint8_t
#define SKEY(x) ((uint8_t)((uint8_t)(x) ^ 0x80u))
#define SN(f) f##_i8
#define SIDENT 1
#define SVAL(k) ((int8_t)((k) ^ 0x80u))
#define SDBITS 8
static const size_t radix_min_i8 = RADIX_MIN_1;
#include "sort_impl.h"
#undef ST
#undef SK
#undef SKEY
#undef SN
#undef SDBITS
#undef SIDENT
#undef SVAL

#define ST uint8_t
#define SK uint8_t
#define SKEY(x) (x)
#define SN(f) f##_u8
#define SIDENT 1
#define SVAL(k) (k)
#define SDBITS 8
static const size_t radix_min_u8 = RADIX_MIN_1;
#include "sort_impl.h"
#undef ST
#undef SK
#undef SKEY
#undef SN
#undef SDBITS
#undef SIDENT
#undef SVAL

#define ST int16_t
#define SK uint16_t
#define SKEY(x) ((uint16_t)((uint16_t)(x) ^ 0x8000u))
#define SN(f) f##_i16
#define SIDENT 1
#define SVAL(k) ((int16_t)((k) ^ 0x8000u))
#define SDBITS 8
static const size_t radix_min_i16 = RADIX_MIN_2;
#include "sort_impl.h"
#undef ST
#undef SK
#undef SKEY
#undef SN
#undef SDBITS
#undef SIDENT
#undef SVAL

#define ST uint16_t
#define SK uint16_t
#define SKEY(x) (x)
#define SN(f) f##_u16
#define SIDENT 1
#define SVAL(k) (k)
#define SDBITS 8
static const size_t radix_min_u16 = RADIX_MIN_2;
#include "sort_impl.h"
#undef ST
#undef SK
#undef SKEY
#undef SN
#undef SDBITS
#undef SIDENT
#undef SVAL

#define ST int32_t
#define SK uint32_t
#define SKEY(x) ((uint32_t)(x) ^ 0x80000000u)
#define SN(f) f##_i32
#define SIDENT 1
#define SVAL(k) ((int32_t)((k) ^ 0x80000000u))
#define SDBITS SORT_DBITS_32
static const size_t radix_min_i32 = RADIX_MIN_4;
#include "sort_impl.h"
#undef ST
#undef SK
#undef SKEY
#undef SN
#undef SDBITS
#undef SIDENT
#undef SVAL

#define ST uint32_t
#define SK uint32_t
#define SKEY(x) (x)
#define SN(f) f##_u32
#define SIDENT 1
#define SVAL(k) (k)
#define SDBITS SORT_DBITS_32
static const size_t radix_min_u32 = RADIX_MIN_4;
#include "sort_impl.h"
#undef ST
#undef SK
#undef SKEY
#undef SN
#undef SDBITS
#undef SIDENT
#undef SVAL

#define ST int64_t
#define SK uint64_t
#define SKEY(x) ((uint64_t)(x) ^ 0x8000000000000000ull)
#define SN(f) f##_i64
#define SIDENT 1
#define SVAL(k) ((int64_t)((k) ^ 0x8000000000000000ull))
#define SDBITS SORT_DBITS_64
static const size_t radix_min_i64 = RADIX_MIN_8;
#include "sort_impl.h"
#undef ST
#undef SK
#undef SKEY
#undef SN
#undef SDBITS
#undef SIDENT
#undef SVAL

#define ST uint64_t
#define SK uint64_t
#define SKEY(x) (x)
#define SN(f) f##_u64
#define SIDENT 1
#define SVAL(k) (k)
#define SDBITS SORT_DBITS_64
static const size_t radix_min_u64 = RADIX_MIN_8;
#include "sort_impl.h"
#undef ST
#undef SK
#undef SKEY
#undef SN
#undef SDBITS
#undef SIDENT
#undef SVAL

#define ST float
#define SK uint32_t
#define SKEY(x) key_f32(x)
#define SN(f) f##_f32
#define SFLT 1
#define SIDENT 0
#define SVAL(k) 0
#define SDBITS SORT_DBITS_32
static const size_t radix_min_f32 = RADIX_MIN_4;
#include "sort_impl.h"
#undef SFLT
#undef ST
#undef SK
#undef SKEY
#undef SN
#undef SDBITS
#undef SIDENT
#undef SVAL

#define ST double
#define SK uint64_t
#define SKEY(x) key_f64(x)
#define SN(f) f##_f64
#define SFLT 1
#define SIDENT 0
#define SVAL(k) 0
#define SDBITS SORT_DBITS_64
static const size_t radix_min_f64 = RADIX_MIN_8;
#include "sort_impl.h"
#undef SFLT
#undef ST
#undef SK
#undef SKEY
#undef SN
#undef SDBITS
#undef SIDENT
#undef SVAL

/* float64 without -0.0 and NaN as its raw bits, keyed on the fly by the
 * order-preserving bijection (flip all bits of negatives, the sign of
 * positives): equal keys are identical floats, so the integer kernels'
 * tricks apply, and no pass transforms the data there and back. */
static inline uint64_t fkey64(uint64_t u) { return u ^ ((uint64_t)((int64_t)u >> 63) | 0x8000000000000000ull); }
static inline uint64_t fval64(uint64_t k) { return k ^ (~(uint64_t)((int64_t)k >> 63) | 0x8000000000000000ull); }

#define ST uint64_t
#define SK uint64_t
#define SKEY(x) fkey64(x)
#define SN(f) f##_fb64
#define SIDENT 1
#define SKEYED 1
#define SVAL(k) fval64(k)
#define SDBITS SORT_DBITS_64
static const size_t radix_min_fb64 = RADIX_MIN_8;
#include "sort_impl.h"
#undef ST
#undef SK
#undef SKEY
#undef SN
#undef SDBITS
#undef SIDENT
#undef SKEYED
#undef SVAL

/* float32 the same way (fb32).  (It used to be transformed to its keys in
 * one pass and back in another around the u32 kernels; with the in-cache
 * LSD finish keying on the fly measured 3-14% faster.) */
static inline uint32_t fkey32(uint32_t u) { return u ^ ((uint32_t)((int32_t)u >> 31) | 0x80000000u); }
static inline uint32_t fval32(uint32_t k) { return k ^ (~(uint32_t)((int32_t)k >> 31) | 0x80000000u); }

#define ST uint32_t
#define SK uint32_t
#define SKEY(x) fkey32(x)
#define SN(f) f##_fb32
#define SIDENT 1
#define SKEYED 1
#define SVAL(k) fval32(k)
#define SDBITS SORT_DBITS_32
static const size_t radix_min_fb32 = RADIX_MIN_4;
#include "sort_impl.h"
#undef ST
#undef SK
#undef SKEY
#undef SN
#undef SDBITS
#undef SIDENT
#undef SKEYED
#undef SVAL

#define ST pcc_kv
#define SK uint64_t
#define SKEY(x) ((x).key)
#define SN(f) f##_kv
#define SIDENT 0
#define SVAL(k) 0
#define SDBITS SORT_DBITS_64
static const size_t radix_min_kv = RADIX_MIN_8;
#include "sort_impl.h"
#undef ST
#undef SK
#undef SKEY
#undef SN
#undef SDBITS
#undef SIDENT
#undef SVAL


/* ---- floats: -0.0 or NaN present? ------------------------------------------
 *
 * The bit-pattern kernels fb64 and fb32 order -0.0 before +0.0 (they must
 * compare equal and keep input order) and NaNs by sign and payload (they
 * must all sort last in input order).  One read finds out whether an
 * array holds either; if so the float kernels (keys computed on the fly,
 * NaN and +-0 handled) do the work. */
#define FLOAT_SPECIAL_BODY(NAME, UT, SIGN, EXP)                                  \
    NAME##_t *k = arg;                                                          \
    size_t lo = ch * k->csize, hi = lo + k->csize < k->n ? lo + k->csize : k->n; \
    const UT *a = k->a;                                                         \
    for (size_t blk = lo; blk < hi; blk += 16384) {                             \
        size_t end = blk + 16384 < hi ? blk + 16384 : hi;                       \
        int special = 0;                                                        \
        for (size_t i = blk; i < end; i++)                                      \
            special |= (a[i] == SIGN) | ((UT)(a[i] & ~SIGN) > EXP);             \
        if (special || atomic_load_explicit(&k->special, memory_order_relaxed)) { \
            atomic_store_explicit(&k->special, 1, memory_order_relaxed);        \
            return;                                                             \
        }                                                                       \
    }
#define FLOAT_SPECIAL_DEF(NAME, UT, SIGN, EXP)                                   \
    typedef struct {                                                            \
        const UT *a;                                                            \
        size_t n, csize;                                                        \
        _Atomic int special;                                                    \
    } NAME##_t;                                                                 \
    static void NAME##_chunk(void *arg, size_t ch) { FLOAT_SPECIAL_BODY(NAME, UT, SIGN, EXP) } \
    FLOAT_SPECIAL_AVX2(NAME, UT, SIGN, EXP)                                     \
    /* 1 if a[0..n) holds a -0.0 or a NaN */                                    \
    static int NAME(sctx *c, const UT *a, size_t n)                             \
    {                                                                           \
        size_t nch = (size_t)c->nthreads * 2;                                   \
        if (n < ((size_t)1 << 16) || c->nthreads < 2)                           \
            nch = 1;                                                            \
        NAME##_t k = {a, n, (n + nch - 1) / nch, 0};                            \
        chunk_fn fn = NAME##_chunk;                                             \
        FLOAT_SPECIAL_PICK(NAME)                                                \
        pfor(c, (n + k.csize - 1) / k.csize, fn, &k);                           \
        return atomic_load_explicit(&k.special, memory_order_relaxed);          \
    }
#if SORT_AVX2
#define FLOAT_SPECIAL_AVX2(NAME, UT, SIGN, EXP)                                  \
    __attribute__((target("avx2"))) static void NAME##_chunk_avx2(void *arg, size_t ch) \
    {                                                                           \
        FLOAT_SPECIAL_BODY(NAME, UT, SIGN, EXP)                                 \
    }
#define FLOAT_SPECIAL_PICK(NAME)                                                \
    if (sort_have_avx2())                                                       \
        fn = NAME##_chunk_avx2;
#else
#define FLOAT_SPECIAL_AVX2(NAME, UT, SIGN, EXP)
#define FLOAT_SPECIAL_PICK(NAME)
#endif

FLOAT_SPECIAL_DEF(special64, uint64_t, 0x8000000000000000ull, 0x7FF0000000000000ull)
FLOAT_SPECIAL_DEF(special32, uint32_t, 0x80000000u, 0x7F800000u)

/* ---- floats with few distinct bit patterns ---------------------------------
 *
 * When the floats all have one sign and their bits differ only within a
 * window of at most SMALL_SPAN bits (16 distinct values, small integers
 * stored as floats) and none is a NaN (equal keys are then identical
 * values; -0.0 and 0.0 differ in the sign), a counting sort straight on
 * the floats does it: one read to find the
 * window (it gives up within the first few thousand elements of random
 * data), one to count, one write -- no transform, no scratch buffer. */
#define SMALL_SPAN 16
#define SMALL_MAXCH 16
#define SMALL_WAYS 4
#define FLOAT_SMALL_DEF(NAME, FT, UT, STI, SIGN, EXP)                             \
    typedef struct {                                                            \
        UT *a;                                                                  \
        size_t n, csize, cnb, ways;                                             \
        int lo, desc;                                                           \
        UT o[SMALL_MAXCH], an[SMALL_MAXCH];                                     \
        size_t *cnt, *start;                                                    \
        UT base, flip;                                                          \
        _Atomic int bail;                                                       \
    } NAME##_t;                                                                 \
    static void NAME##_probe(void *arg, size_t ch)                              \
    {                                                                           \
        NAME##_t *k = arg;                                                      \
        size_t lo = ch * k->csize, hi = lo + k->csize < k->n ? lo + k->csize : k->n; \
        UT o = 0, an = (UT)~(UT)0;                                              \
        for (size_t blk = lo; blk < hi; blk += 4096) {                          \
            size_t end = blk + 4096 < hi ? blk + 4096 : hi;                     \
            for (size_t i = blk; i < end; i++) {                                \
                o |= k->a[i];                                                   \
                an &= k->a[i];                                                  \
            }                                                                   \
            /* raw bits: with one sign throughout, the keys vary in the same \
             * bits (the transform xors a constant); mixed signs: give up */  \
            UT d = o ^ an;                                                      \
            if ((d & SIGN) != 0 ||                                              \
                (d != 0 && 64 - __builtin_clzll((unsigned long long)d) -        \
                                   __builtin_ctzll((unsigned long long)d) > SMALL_SPAN) || \
                atomic_load_explicit(&k->bail, memory_order_relaxed)) {         \
                atomic_store_explicit(&k->bail, 1, memory_order_relaxed);       \
                return;                                                         \
            }                                                                   \
        }                                                                       \
        k->o[ch] = o;                                                           \
        k->an[ch] = an;                                                         \
    }                                                                           \
    static void NAME##_count(void *arg, size_t ch)                              \
    {                                                                           \
        NAME##_t *k = arg;                                                      \
        size_t lo = ch * k->csize, hi = lo + k->csize < k->n ? lo + k->csize : k->n; \
        size_t nb = k->cnb, mask = nb - 1;                                      \
        size_t *cnt = k->cnt + ch * k->ways * nb;                               \
        UT flip = k->flip;                                                      \
        int sh = k->lo;                                                         \
        size_t i = lo;                                                          \
        /* SMALL_WAYS sets of counters (few buckets): runs of one value \
         * do not wait on their own increments */                             \
        if (k->ways == SMALL_WAYS)                                              \
            for (; i + SMALL_WAYS <= hi; i += SMALL_WAYS)                       \
                for (size_t w = 0; w < SMALL_WAYS; w++)                         \
                    cnt[w * nb + ((size_t)((k->a[i + w] ^ flip) >> sh) & mask)]++; \
        for (; i < hi; i++)                                                     \
            cnt[(size_t)((k->a[i] ^ flip) >> sh) & mask]++;                     \
    }                                                                           \
    static void NAME##_fill(void *arg, size_t ch)                               \
    {                                                                           \
        NAME##_t *k = arg;                                                      \
        size_t lo = ch * k->csize, hi = lo + k->csize < k->n ? lo + k->csize : k->n; \
        /* the last slot whose run starts at or before lo */                   \
        size_t l = 0, h = k->cnb;                                               \
        while (h - l > 1) {                                                     \
            size_t m = l + (h - l) / 2;                                         \
            if (k->start[m] <= lo)                                              \
                l = m;                                                          \
            else                                                                \
                h = m;                                                          \
        }                                                                       \
        for (size_t s = l, i = lo; i < hi; s++) {                               \
            size_t b = k->desc ? k->cnb - 1 - s : s;                            \
            UT u = (k->base | ((UT)b << k->lo)) ^ k->flip;                       \
            size_t e = k->start[s + 1] < hi ? k->start[s + 1] : hi;             \
            for (; i < e; i++)                                                  \
                k->a[i] = u;                                                    \
        }                                                                       \
    }                                                                           \
    /* 1: sorted by counting; 0: not applicable (data untouched); <0: error */ \
    static int NAME(sctx *c, FT *data, size_t n, int desc)                     \
    {                                                                           \
        size_t nch = (size_t)c->nthreads * 2;                                   \
        if (n < ((size_t)1 << 16) || c->nthreads < 2)                           \
            nch = 1;                                                            \
        if (nch > SMALL_MAXCH)                                                  \
            nch = SMALL_MAXCH;                                                  \
        NAME##_t k;                                                             \
        memset(&k, 0, sizeof k);                                                \
        k.a = (UT *)data;                                                       \
        k.n = n;                                                                \
        k.csize = (n + nch - 1) / nch;                                          \
        k.desc = desc;                                                          \
        nch = (n + k.csize - 1) / k.csize;                                      \
        atomic_init(&k.bail, 0);                                                \
        pfor(c, nch, NAME##_probe, &k);                                         \
        if (atomic_load_explicit(&k.bail, memory_order_relaxed))                \
            return 0;                                                           \
        UT o = 0, an = (UT)~(UT)0;                                              \
        for (size_t ch = 0; ch < nch; ch++) {                                   \
            o |= k.o[ch];                                                       \
            an &= k.an[ch];                                                     \
        }                                                                       \
        UT d = o ^ an;                                                          \
        if (d == 0)                                                             \
            return 1; /* all equal */                                           \
        int lo = __builtin_ctzll((unsigned long long)d);                        \
        int span = 64 - __builtin_clzll((unsigned long long)d) - lo;            \
        if (span > SMALL_SPAN || n < ((size_t)8 << span))                       \
            return 0;                                                           \
        k.cnb = (size_t)1 << span;                                              \
        k.lo = lo;                                                              \
        /* one sign throughout: key = bits ^ flip (negatives: all bits) */    \
        k.flip = (o & SIGN) ? (UT)~(UT)0 : (UT)SIGN;                            \
        k.base = (an ^ k.flip) & (UT) ~((UT)(k.cnb - 1) << lo);                 \
        /* several counter sets only where they stay small */                 \
        k.ways = k.cnb <= 1024 ? SMALL_WAYS : 1;                                \
        size_t ncnt = nch * k.ways * k.cnb;                                     \
        k.cnt = calloc(ncnt + k.cnb + 1, sizeof(size_t));                       \
        if (k.cnt == NULL)                                                      \
            return 0;                                                           \
        pfor(c, nch, NAME##_count, &k);                                         \
        if (is_cancelled(c)) {                                                  \
            free(k.cnt);                                                        \
            return -ECANCELED;                                                  \
        }                                                                       \
        k.start = k.cnt + ncnt;                                                 \
        size_t run = 0;                                                         \
        for (size_t s = 0; s < k.cnb; s++) {                                    \
            size_t b = desc ? k.cnb - 1 - s : s, tot = 0;                       \
            k.start[s] = run;                                                   \
            for (size_t q = 0; q < nch * k.ways; q++)                           \
                tot += k.cnt[q * k.cnb + b];                                    \
            if (tot != 0) {                                                     \
                /* a NaN must sort last in input order, whatever its bits: \
                 * not for counting (nothing was written yet) */             \
                UT key = k.base | ((UT)b << lo);                                \
                if ((UT)((key ^ k.flip) & ~SIGN) > EXP) {                       \
                    free(k.cnt);                                                \
                    return 0;                                                   \
                }                                                               \
            }                                                                   \
            run += tot;                                                         \
        }                                                                       \
        k.start[k.cnb] = n;                                                     \
        size_t fch = (size_t)c->nthreads * 2;                                   \
        if (n < ((size_t)1 << 16) || c->nthreads < 2)                           \
            fch = 1;                                                            \
        k.csize = (n + fch - 1) / fch;                                          \
        pfor(c, (n + k.csize - 1) / k.csize, NAME##_fill, &k);                  \
        free(k.cnt);                                                            \
        return 1;                                                               \
    }

FLOAT_SMALL_DEF(small64, double, uint64_t, int64_t, 0x8000000000000000ull, 0x7FF0000000000000ull)
FLOAT_SMALL_DEF(small32, float, uint32_t, int32_t, 0x80000000u, 0x7F800000u)

/* Floats of at least this many elements try the bit-pattern path (its
 * two checks are a read each; the generic float kernels key every access:
 * 1000 float32 22 -> 6 us). */
#define FLOAT_BITS_MIN 512

static int sort_f64_any(sctx *c, double *a, size_t n, int desc, pcc_sort_algo algo)
{
    /* presorted or strictly reversed input: one pass, no transforms */
    uint64_t xm = desc ? ~(uint64_t)0 : 0;
    if (n >= FLOAT_BITS_MIN && (check_order_f64(c, a, n, xm) || check_reverse_f64(c, a, n, xm)))
        return 0;
    if (n >= FLOAT_BITS_MIN && algo != PCC_SORT_MERGE) {
        int rc = small64(c, a, n, desc);
        if (rc != 0)
            return rc < 0 ? rc : 0;
        if (!special64(c, (const uint64_t *)a, n))
            return sort_fb64(c, (uint64_t *)a, n, desc, algo);
    }
    return sort_f64(c, a, n, desc, algo);
}

static int sort_f32_any(sctx *c, float *a, size_t n, int desc, pcc_sort_algo algo)
{
    /* presorted or strictly reversed input: one pass, no transforms */
    uint32_t xm = desc ? ~(uint32_t)0 : 0;
    if (n >= FLOAT_BITS_MIN && (check_order_f32(c, a, n, xm) || check_reverse_f32(c, a, n, xm)))
        return 0;
    if (n >= FLOAT_BITS_MIN && algo != PCC_SORT_MERGE) {
        int rc = small32(c, a, n, desc);
        if (rc != 0)
            return rc < 0 ? rc : 0;
        if (!special32(c, (const uint32_t *)a, n))
            return sort_fb32(c, (uint32_t *)a, n, desc, algo);
    }
    return sort_f32(c, a, n, desc, algo);
}

size_t pcc_sort_elsize(pcc_sort_type t)
{
    static const size_t sizes[PCC_SORT_NTYPES] = {1, 1, 2, 2, 4, 4, 8, 8, 4, 8, sizeof(pcc_kv)};
    return (unsigned)t < PCC_SORT_NTYPES ? sizes[t] : 0;
}

int pcc_sort(pcc_pool *pool, pcc_sort_type t, void *data, size_t n, int descending,
             pcc_sort_algo algo, const _Atomic int *cancel)
{
    if ((unsigned)t >= PCC_SORT_NTYPES || (unsigned)algo > PCC_SORT_MERGE)
        return -EINVAL;
    sctx c = {pool, pool ? pcc_pool_num_threads(pool) : 1, cancel};
    switch (t) {
    case PCC_SORT_I8: return sort_i8(&c, data, n, descending, algo);
    case PCC_SORT_U8: return sort_u8(&c, data, n, descending, algo);
    case PCC_SORT_I16: return sort_i16(&c, data, n, descending, algo);
    case PCC_SORT_U16: return sort_u16(&c, data, n, descending, algo);
    case PCC_SORT_I32: return sort_i32(&c, data, n, descending, algo);
    case PCC_SORT_U32: return sort_u32(&c, data, n, descending, algo);
    case PCC_SORT_I64: return sort_i64(&c, data, n, descending, algo);
    case PCC_SORT_U64: return sort_u64(&c, data, n, descending, algo);
    case PCC_SORT_F32: return sort_f32_any(&c, data, n, descending, algo);
    case PCC_SORT_F64: return sort_f64_any(&c, data, n, descending, algo);
    case PCC_SORT_KV: return sort_kv(&c, data, n, descending, algo);
    default: return -EINVAL;
    }
}

/* ---- argsort ---------------------------------------------------------------
 * (key, index) records sorted by the stable KV kernel, the keys built and
 * the indices taken out in parallel chunks (on many threads the two
 * sequential passes over n records were what capped the speed-up: 10M
 * int64 ran 2.07x faster on 16 threads than on 1). */

#define ARG_CHUNK ((size_t)1 << 16)

typedef struct {
    pcc_sort_type t;
    const void *src;
    pcc_kv *kv;
    int64_t *out;
    size_t n;
} arg_t;

static void arg_keys_chunk(void *arg, size_t ch)
{
    const arg_t *k = arg;
    size_t lo = ch * ARG_CHUNK, hi = lo + ARG_CHUNK < k->n ? lo + ARG_CHUNK : k->n;
    pcc_kv *kv = k->kv;
#define ARG_KEYS(T, KEY)                                      \
    for (size_t i = lo; i < hi; i++) {                        \
        T x = ((const T *)k->src)[i];                         \
        kv[i].key = (KEY);                                    \
        kv[i].value = (void *)(uintptr_t)i;                   \
    }                                                         \
    break
    switch (k->t) {
    case PCC_SORT_I8: ARG_KEYS(int8_t, pcc_sort_key_i64(x));
    case PCC_SORT_U8: ARG_KEYS(uint8_t, x);
    case PCC_SORT_I16: ARG_KEYS(int16_t, pcc_sort_key_i64(x));
    case PCC_SORT_U16: ARG_KEYS(uint16_t, x);
    case PCC_SORT_I32: ARG_KEYS(int32_t, pcc_sort_key_i64(x));
    case PCC_SORT_U32: ARG_KEYS(uint32_t, x);
    case PCC_SORT_I64: ARG_KEYS(int64_t, pcc_sort_key_i64(x));
    case PCC_SORT_U64: ARG_KEYS(uint64_t, x);
    case PCC_SORT_F32: ARG_KEYS(float, key_f64((double)x));
    default: ARG_KEYS(double, key_f64(x));
    }
#undef ARG_KEYS
}

static void arg_out_chunk(void *arg, size_t ch)
{
    const arg_t *k = arg;
    size_t lo = ch * ARG_CHUNK, hi = lo + ARG_CHUNK < k->n ? lo + ARG_CHUNK : k->n;
    for (size_t i = lo; i < hi; i++)
        k->out[i] = (int64_t)(uintptr_t)k->kv[i].value;
}

int pcc_argsort(pcc_pool *pool, pcc_sort_type t, const void *src, size_t n, pcc_kv *kv,
                int64_t *out, const _Atomic int *cancel)
{
    if ((unsigned)t >= PCC_SORT_KV)
        return -EINVAL;
    sctx c = {pool, pool ? pcc_pool_num_threads(pool) : 1, cancel};
    arg_t k = {t, src, kv, out, n};
    size_t nch = (n + ARG_CHUNK - 1) / ARG_CHUNK;
    pfor(&c, nch, arg_keys_chunk, &k);
    int rc = sort_kv(&c, kv, n, 0, PCC_SORT_AUTO);
    if (rc == 0 && is_cancelled(&c))
        rc = -ECANCELED;
    if (rc != 0)
        return rc; /* out untouched */
    pfor(&c, nch, arg_out_chunk, &k);
    return 0;
}

/* ---- strings ---------------------------------------------------------------
 *
 * Multikey radix over the pcc_kv kernel: records are sorted (stably) by the
 * key of their first k code points (lists with wider kinds: of their first
 * 8 bytes of UTF-8); each run of equal keys is then sorted
 * by the key of the next k code points (the same kernel, sequentially),
 * and so on, until a run is short, or no string in it reaches past the
 * current window, or the recursion is deep: then a stable merge sort with
 * full comparisons (from the first position not yet known equal) finishes
 * it.  Runs are independent, so they are resolved in parallel. */

static inline uint32_t str_cp(const pcc_str *s, size_t i)
{
    switch (s->width) {
    case 1: return ((const uint8_t *)s->data)[i];
    case 2: return ((const uint16_t *)s->data)[i];
    default: return ((const uint32_t *)s->data)[i];
    }
}

static inline unsigned str_cpk(unsigned maxw) { return maxw == 1 ? 8 : maxw == 2 ? 4 : 3; }

uint64_t pcc_str_key(const pcc_str *s, unsigned maxw, size_t depth)
{
    size_t left = s->len > depth ? s->len - depth : 0;
    if (maxw == 1) {
        const uint8_t *p = (const uint8_t *)s->data + depth;
        uint64_t k;
        if (left >= 8) {
            memcpy(&k, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
            return k;
#else
            return __builtin_bswap64(k);
#endif
        }
        k = 0;
        for (size_t j = 0; j < 8; j++)
            k = (k << 8) | (j < left ? p[j] : 0u);
        return k;
    }
    unsigned cpk = str_cpk(maxw), bits = maxw == 2 ? 16 : 21;
    uint64_t k = 0;
    for (unsigned j = 0; j < cpk; j++)
        k = (k << bits) | (j < left ? str_cp(s, depth + j) : 0u);
    return k;
}

/* The first key of a string in a list with wider kinds: its first 8 bytes
 * in (generalized) UTF-8, whose byte order is the code point order, so
 * ASCII and Latin text gets 4-8 code points into a key instead of 3-4. */
static uint64_t str_key_utf8(const pcc_str *s)
{
    uint64_t k = 0;
    unsigned nb = 0;
    for (size_t i = 0; nb < 8 && i < s->len; i++) {
        uint32_t c = str_cp(s, i);
        uint8_t b[4];
        unsigned l;
        if (c < 0x80) {
            b[0] = (uint8_t)c;
            l = 1;
        } else if (c < 0x800) {
            b[0] = (uint8_t)(0xC0 | (c >> 6));
            b[1] = (uint8_t)(0x80 | (c & 0x3F));
            l = 2;
        } else if (c < 0x10000) {
            b[0] = (uint8_t)(0xE0 | (c >> 12));
            b[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
            b[2] = (uint8_t)(0x80 | (c & 0x3F));
            l = 3;
        } else {
            b[0] = (uint8_t)(0xF0 | (c >> 18));
            b[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3F));
            b[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
            b[3] = (uint8_t)(0x80 | (c & 0x3F));
            l = 4;
        }
        for (unsigned j = 0; j < l && nb < 8; j++, nb++)
            k = (k << 8) | b[j];
    }
    return nb == 0 ? 0 : nb == 8 ? k : k << (8 * (8 - nb));
}

/* How many whole code points (a zero pad byte counts as one) a UTF-8 key
 * holds: strings with equal keys agree on that many, as far as they reach. */
static size_t utf8_key_cps(uint64_t k)
{
    size_t m = 0;
    for (unsigned p = 0; p < 8;) {
        unsigned lead = (unsigned)(k >> (56 - 8 * p)) & 0xFF;
        unsigned l = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
        if (p + l > 8)
            break;
        m++;
        p += l;
    }
    return m;
}

static inline uint64_t str_key0(const pcc_str *s, unsigned maxw)
{
    return maxw == 1 ? pcc_str_key(s, 1, 0) : str_key_utf8(s);
}

/* <0, 0, >0 as a's code points from position d on compare with b's (the
 * first d are known equal, as far as both strings reach). */
static int str_cmp(const pcc_str *a, const pcc_str *b, size_t d)
{
    size_t m = a->len < b->len ? a->len : b->len;
    if (d < m) {
        if (a->width == 1 && b->width == 1) {
            int r = memcmp((const uint8_t *)a->data + d, (const uint8_t *)b->data + d, m - d);
            if (r != 0)
                return r;
        } else if (a->width == 2 && b->width == 2) {
            const uint16_t *x = a->data, *y = b->data;
            for (size_t i = d; i < m; i++)
                if (x[i] != y[i])
                    return x[i] < y[i] ? -1 : 1;
        } else {
            for (size_t i = d; i < m; i++) {
                uint32_t x = str_cp(a, i), y = str_cp(b, i);
                if (x != y)
                    return x < y ? -1 : 1;
            }
        }
    }
    return (a->len > b->len) - (a->len < b->len);
}

/* x belongs strictly before y */
static inline int str_before(const pcc_kv *x, const pcc_kv *y, size_t d, int desc)
{
    int r = str_cmp(x->value, y->value, d);
    return desc ? r > 0 : r < 0;
}

static void str_msort(pcc_kv *a, pcc_kv *buf, size_t k, size_t d, int desc)
{
    if (k <= 16) {
        for (size_t i = 1; i < k; i++) {
            pcc_kv v = a[i];
            size_t j = i;
            while (j > 0 && str_before(&v, &a[j - 1], d, desc)) {
                a[j] = a[j - 1];
                j--;
            }
            a[j] = v;
        }
        return;
    }
    size_t h = k / 2;
    str_msort(a, buf, h, d, desc);
    str_msort(a + h, buf, k - h, d, desc);
    if (!str_before(&a[h], &a[h - 1], d, desc))
        return; /* already in order (runs of equal strings: linear) */
    memcpy(buf, a, h * sizeof *a);
    size_t i = 0, j = h, o = 0;
    while (i < h && j < k)
        a[o++] = str_before(&a[j], &buf[i], d, desc) ? a[j++] : buf[i++];
    while (i < h)
        a[o++] = buf[i++];
}

#define STR_SMALL 32
#define STR_MAX_LEVEL 48
#define PCC_STR_MAXCH 256 /* chunks for the run resolution */

/* Sort a[0..k), whose keys agree on the code points [0, depth). */
static int str_resolve(sctx *c, pcc_kv *a, size_t k, size_t depth, unsigned maxw, int desc,
                       int level)
{
    unsigned cpk = str_cpk(maxw);
    for (;;) {
        if (is_cancelled(c))
            return -ECANCELED;
        size_t maxlen = 0;
        for (size_t j = 0; j < k; j++) {
            size_t l = ((const pcc_str *)a[j].value)->len;
            maxlen = l > maxlen ? l : maxlen;
        }
        if (k <= STR_SMALL || maxlen <= depth + cpk || level >= STR_MAX_LEVEL) {
            pcc_kv small[STR_SMALL / 2], *buf = small;
            if (k > STR_SMALL && (buf = malloc(k / 2 * sizeof *buf)) == NULL)
                return -ENOMEM;
            str_msort(a, buf, k, depth, desc);
            if (buf != small)
                free(buf);
            return 0;
        }
        for (size_t j = 0; j < k; j++)
            a[j].key = pcc_str_key(a[j].value, maxw, depth);
        depth += cpk;
        sctx seq = {NULL, 1, c->cancel};
        int rc = sort_kv(&seq, a, k, desc, PCC_SORT_AUTO);
        if (rc != 0)
            return rc;
        if (a[0].key == a[k - 1].key)
            continue; /* one run: next window, no recursion */
        for (size_t s = 0; s < k;) {
            size_t e = s + 1;
            while (e < k && a[e].key == a[s].key)
                e++;
            if (e - s > 1 && (rc = str_resolve(c, a + s, e - s, depth, maxw, desc, level + 1)) != 0)
                return rc;
            s = e;
        }
        return 0;
    }
}

typedef struct {
    sctx *c;
    pcc_kv *kv;
    size_t n, csize;
    unsigned maxw;
    int desc;
    size_t *starts; /* nchunks + 1 */
    _Atomic int rc;
} str_t;

static void str_keys_chunk(void *arg, size_t ch)
{
    str_t *k = arg;
    size_t lo = ch * k->csize, hi = lo + k->csize < k->n ? lo + k->csize : k->n;
    for (size_t i = lo; i < hi; i++)
        k->kv[i].key = str_key0(k->kv[i].value, k->maxw);
}

/* Phase 1: where the first run starting at or after this chunk's start
 * begins (keys are only read: phase 2 rewrites keys inside runs). */
static void str_starts_chunk(void *arg, size_t ch)
{
    str_t *k = arg;
    size_t s = ch * k->csize;
    if (s > k->n)
        s = k->n;
    while (s > 0 && s < k->n && k->kv[s].key == k->kv[s - 1].key)
        s++;
    k->starts[ch] = s;
}

/* Phase 2: resolve the runs of equal keys in [starts[ch], starts[ch + 1]):
 * whole runs, disjoint from every other chunk's. */
static void str_runs_chunk(void *arg, size_t ch)
{
    str_t *k = arg;
    const pcc_kv *kv = k->kv;
    size_t s = k->starts[ch], hi = k->starts[ch + 1];
    size_t since = 0;
    while (s < hi) {
        size_t e = s + 1;
        while (e < hi && kv[e].key == kv[s].key)
            e++;
        if (e - s > 1) {
            size_t depth = k->maxw == 1 ? 8 : utf8_key_cps(kv[s].key);
            int rc = str_resolve(k->c, k->kv + s, e - s, depth, k->maxw, k->desc, 0);
            if (rc != 0) {
                atomic_store_explicit(&k->rc, rc, memory_order_relaxed);
                return;
            }
        }
        since += e - s;
        if (since >= CANCEL_STRIDE) {
            since = 0;
            if (is_cancelled(k->c))
                return;
        }
        s = e;
    }
}

int pcc_sort_str(pcc_pool *pool, pcc_kv *kv, size_t n, unsigned maxw, int keys_ready,
                 int descending, const _Atomic int *cancel)
{
    if (maxw != 1 && maxw != 2 && maxw != 4)
        return -EINVAL;
    sctx c = {pool, pool ? pcc_pool_num_threads(pool) : 1, cancel};
    if (n < 2)
        return 0;
    size_t nch = (size_t)c.nthreads * 8;
    if (n < ((size_t)1 << 14) || c.nthreads < 2)
        nch = 1;
    size_t starts[PCC_STR_MAXCH + 1];
    if (nch > PCC_STR_MAXCH)
        nch = PCC_STR_MAXCH;
    str_t k = {&c, kv, n, (n + nch - 1) / nch, maxw, descending, starts, 0};
    nch = (n + k.csize - 1) / k.csize;
    if (!keys_ready || maxw != 1)
        pfor(&c, nch, str_keys_chunk, &k);
    int rc = sort_kv(&c, kv, n, descending, PCC_SORT_AUTO);
    if (rc != 0)
        return rc;
    pfor(&c, nch, str_starts_chunk, &k);
    starts[nch] = n;
    pfor(&c, nch, str_runs_chunk, &k);
    rc = atomic_load_explicit(&k.rc, memory_order_relaxed);
    return rc != 0 ? rc : (is_cancelled(&c) ? -ECANCELED : 0);
}
