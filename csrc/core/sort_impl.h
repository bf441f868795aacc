/* pyconc core: the sort kernels, instantiated once per element type by
 * sort.c.  Parameters:
 *   ST       element type
 *   SK       unsigned key type (same width as the key)
 *   SKEY(x)  order-preserving key of element x (an SK)
 *   SN(f)    name mangling, f##_suffix
 * Every comparison goes through keys, so NaN/±0 and descending order
 * (key ^ xm, xm = all ones) are handled uniformly and stability holds.
 */

#define KBYTES ((int)sizeof(SK))
#define KEYX(x) ((SK)(SKEY(x) ^ xm))
/* radix digits: SDBITS bits each, set by the includer (sort.c: 8 for
 * every key width -- a 256-bucket histogram and scatter stay in L1; the
 * MSD pass picks its own width from the range of the keys) */
#define NDIG ((KBYTES * 8 + SDBITS - 1) / SDBITS)
#define RADIX ((size_t)1 << SDBITS)
#define DMASK (RADIX - 1)

/* The stable scatter dst[off[BUCKET(v)]++] = v of src[lo..hi), two
 * elements an iteration, both loaded and bucketed before either store:
 * one at a time, each load of the next element waited behind the store
 * before it (10M uint32 into 512 buckets, Zen 3: 20 -> 11 ms; a 20K pass
 * in the cache 1.00 -> 0.84 ns an element).  The stores keep input order,
 * so equal buckets stay stable.  BUCKET takes an SK key. */
#define SCATTER(src, dst, lo, hi, off, BUCKET)                 \
    do {                                                       \
        size_t i_ = (lo), e_ = (hi);                           \
        for (; i_ + 1 < e_; i_ += 2) {                         \
            ST v0_ = (src)[i_], v1_ = (src)[i_ + 1];           \
            size_t b0_ = BUCKET(KEYX(v0_)), b1_ = BUCKET(KEYX(v1_)); \
            (dst)[(off)[b0_]++] = v0_;                         \
            (dst)[(off)[b1_]++] = v1_;                         \
        }                                                      \
        if (i_ < e_) {                                         \
            ST v_ = (src)[i_];                                 \
            (dst)[(off)[BUCKET(KEYX(v_))]++] = v_;             \
        }                                                      \
    } while (0)
/* SCATTER's BUCKET for a digit of the key: its bits at sh under bmask
 * (both in scope at the call) */
#define DIGIT_BUCKET(key) ((size_t)(((key) >> sh) & bmask))

/* ---- merge sort ----------------------------------------------------------- */

static void SN(insertion)(ST *a, size_t n, SK xm)
{
    for (size_t i = 1; i < n; i++) {
        ST v = a[i];
        SK kv = KEYX(v);
        size_t j = i;
        while (j > 0 && kv < KEYX(a[j - 1])) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = v;
    }
}

static void SN(merge_seq)(const ST *L, size_t nl, const ST *R, size_t nr, ST *D, SK xm)
{
    size_t i = 0, j = 0, k = 0;
    if (nl && nr) {
        SK kl = KEYX(L[0]), kr = KEYX(R[0]);
        for (;;) {
            if (kr < kl) { /* strictly less: equal keys take L first (stable) */
                D[k++] = R[j++];
                if (j == nr)
                    break;
                kr = KEYX(R[j]);
            } else {
                D[k++] = L[i++];
                if (i == nl)
                    break;
                kl = KEYX(L[i]);
            }
        }
    }
    if (i < nl)
        memcpy(D + k, L + i, (nl - i) * sizeof(ST));
    else if (j < nr)
        memcpy(D + k, R + j, (nr - j) * sizeof(ST));
}

typedef struct {
    sctx *c;
    const ST *L, *R;
    size_t nl, nr;
    ST *D;
    SK xm;
    int cancelled;
} SN(pm_t);

static void SN(par_merge)(void *arg)
{
    SN(pm_t) *m = arg;
    SK xm = m->xm;
    if (m->nl + m->nr <= PAR_MERGE_MIN || m->nl == 0 || m->nr == 0) {
        SN(merge_seq)(m->L, m->nl, m->R, m->nr, m->D, xm);
        return;
    }
    if (is_cancelled(m->c)) {
        m->cancelled = 1;
        return;
    }
    size_t i, j;
    if (m->nl >= m->nr) {
        /* pivot L[i]; R[0..j) are the keys strictly below it */
        i = m->nl / 2;
        SK p = KEYX(m->L[i]);
        size_t lo = 0, hi = m->nr;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (KEYX(m->R[mid]) < p) lo = mid + 1; else hi = mid;
        }
        j = lo;
    } else {
        /* pivot R[j]; L[0..i) are the keys at or below it */
        j = m->nr / 2;
        SK p = KEYX(m->R[j]);
        size_t lo = 0, hi = m->nl;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (KEYX(m->L[mid]) <= p) lo = mid + 1; else hi = mid;
        }
        i = lo;
    }
    SN(pm_t) a = {m->c, m->L, m->R, i, j, m->D, xm, 0};
    SN(pm_t) b = {m->c, m->L + i, m->R + j, m->nl - i, m->nr - j, m->D + i + j, xm, 0};
    sjoin(m->c, SN(par_merge), &a, SN(par_merge), &b);
    m->cancelled = a.cancelled | b.cancelled;
}

typedef struct {
    sctx *c;
    ST *a, *b;
    size_t n;
    int to_b;
    SK xm;
    int cancelled;
} SN(ms_t);

/* Sort a[0..n) using b[0..n) as scratch; the result lands in b if to_b,
 * else in a.  On cancellation (m->cancelled = 1) the elements are a
 * permutation of the input in a[0..n): children always read from `a`, a
 * merge only reads its sources, so an abandoned merge loses nothing and
 * completed children that wrote to b are copied back. */
static void SN(msort)(void *arg)
{
    SN(ms_t) *m = arg;
    size_t n = m->n;
    SK xm = m->xm;
    if (n <= INSERTION_MAX) {
        SN(insertion)(m->a, n, xm);
        if (m->to_b)
            memcpy(m->b, m->a, n * sizeof(ST));
        return;
    }
    if (is_cancelled(m->c)) {
        m->cancelled = 1;
        return;
    }
    size_t h = n / 2;
    SN(ms_t) l = {m->c, m->a, m->b, h, !m->to_b, xm, 0};
    SN(ms_t) r = {m->c, m->a + h, m->b + h, n - h, !m->to_b, xm, 0};
    if (n >= PAR_SORT_MIN)
        sjoin(m->c, SN(msort), &l, SN(msort), &r);
    else {
        SN(msort)(&l);
        SN(msort)(&r);
    }
    ST *src = m->to_b ? m->a : m->b, *dst = m->to_b ? m->b : m->a;
    if (!l.cancelled && !r.cancelled) {
        SN(pm_t) pm = {m->c, src, src + h, h, n - h, dst, xm, 0};
        SN(par_merge)(&pm);
        if (!pm.cancelled)
            return;
    }
    m->cancelled = 1;
    if (!m->to_b) { /* children sorted into b: bring the finished ones home */
        if (!l.cancelled)
            memcpy(m->a, m->b, h * sizeof(ST));
        if (!r.cancelled)
            memcpy(m->a + h, m->b + h, (n - h) * sizeof(ST));
    }
}

/* ---- LSD radix sort ------------------------------------------------------- */

typedef struct {
    sctx *c;
    const ST *src;
    ST *dst;
    size_t n, csize;
    size_t *hist;  /* [chunk][RADIX]: counts, then start offsets */
    size_t *allh;  /* [chunk][NDIG][RADIX]: counts of every digit */
    int shift;
    SK xm;
} SN(rx_t);

static void SN(allhist_chunk)(void *arg, size_t ch)
{
    SN(rx_t) *r = arg;
    SK xm = r->xm;
    size_t lo = ch * r->csize, hi = lo + r->csize < r->n ? lo + r->csize : r->n;
    size_t *h = r->allh + ch * (size_t)NDIG * RADIX;
    for (size_t i = lo; i < hi; i++) {
        SK k = KEYX(r->src[i]);
        for (int d = 0; d < NDIG; d++)
            h[(size_t)d * RADIX + (size_t)((k >> (SDBITS * d)) & DMASK)]++;
    }
}

static void SN(hist_chunk)(void *arg, size_t ch)
{
    SN(rx_t) *r = arg;
    SK xm = r->xm;
    int sh = r->shift;
    size_t lo = ch * r->csize, hi = lo + r->csize < r->n ? lo + r->csize : r->n;
    size_t *h = r->hist + ch * RADIX;
    memset(h, 0, RADIX * sizeof(size_t));
    for (size_t i = lo; i < hi; i++)
        h[(size_t)((KEYX(r->src[i]) >> sh) & DMASK)]++;
}

static void SN(scatter_chunk)(void *arg, size_t ch)
{
    SN(rx_t) *r = arg;
    SK xm = r->xm;
    int sh = r->shift;
    size_t lo = ch * r->csize, hi = lo + r->csize < r->n ? lo + r->csize : r->n;
    size_t off[RADIX];
    memcpy(off, r->hist + ch * RADIX, sizeof off);
    const ST *src = r->src;
    ST *dst = r->dst;
    for (size_t blk = lo; blk < hi; blk += CANCEL_STRIDE) {
        if (is_cancelled(r->c))
            return; /* the pass is abandoned: src still holds everything */
        size_t end = blk + CANCEL_STRIDE < hi ? blk + CANCEL_STRIDE : hi;
        const SK bmask = DMASK;
        SCATTER(src, dst, blk, end, off, DIGIT_BUCKET);
    }
}

/* The LSD passes, given the chunking and every chunk's digit counts of the
 * unmoved data (allh) and room for one pass's counts (hist).  Returns 1 if
 * cancelled (data is then a permutation in a), else 0. */
static int SN(lsd_passes)(sctx *c, ST *a, ST *buf, size_t n, SK xm, size_t nchunks,
                          size_t csize, size_t *allh, size_t *hist)
{
    SN(rx_t) r = {c, a, buf, n, csize, hist, allh, 0, xm};
    ST *src = a, *dst = buf;
    int first = 1, cancelled = 0;
    for (int d = 0; d < NDIG; d++) {
        /* skip a digit on which every key agrees: the pass would be a copy */
        int skip = 0;
        for (size_t b = 0; b < RADIX && !skip; b++) {
            size_t t = 0;
            for (size_t ch = 0; ch < nchunks; ch++)
                t += allh[(ch * (size_t)NDIG + (size_t)d) * RADIX + b];
            if (t == n)
                skip = 1;
            else if (t != 0)
                break; /* two different digit values: no skip */
        }
        if (skip)
            continue;
        if (is_cancelled(c)) {
            cancelled = 1;
            break;
        }
        r.src = src;
        r.dst = dst;
        r.shift = SDBITS * d;
        if (first) { /* the data has not moved yet: reuse the digit counts */
            for (size_t ch = 0; ch < nchunks; ch++)
                memcpy(hist + ch * RADIX, allh + (ch * (size_t)NDIG + (size_t)d) * RADIX,
                       RADIX * sizeof(size_t));
            first = 0;
        } else {
            pfor(c, nchunks, SN(hist_chunk), &r);
        }
        /* exclusive prefix sum, bucket-major then chunk: chunk ch's run of
         * bucket b follows the runs of every earlier chunk (stability) */
        size_t run = 0;
        for (size_t b = 0; b < RADIX; b++)
            for (size_t ch = 0; ch < nchunks; ch++) {
                size_t cnt = hist[ch * RADIX + b];
                hist[ch * RADIX + b] = run;
                run += cnt;
            }
        pfor(c, nchunks, SN(scatter_chunk), &r);
        if (is_cancelled(c)) {
            cancelled = 1; /* the pass may be partial: keep src */
            break;
        }
        ST *t = src;
        src = dst;
        dst = t;
    }
    if (src != a)
        par_copy(c, a, src, n * sizeof(ST));
    return cancelled;
}

static size_t SN(chunking)(sctx *c, size_t n, size_t *csize)
{
    size_t nchunks = (size_t)c->nthreads * 2;
    if (nchunks > n / RADIX_MIN_CHUNK)
        nchunks = n / RADIX_MIN_CHUNK;
    if (nchunks < 1)
        nchunks = 1;
    *csize = (n + nchunks - 1) / nchunks;
    return (n + *csize - 1) / *csize;
}

/* Returns 1 if cancelled (data is then a permutation in a), -ENOMEM, or 0. */
static int SN(radix)(sctx *c, ST *a, ST *buf, size_t n, SK xm)
{
    size_t csize, nchunks = SN(chunking)(c, n, &csize);
    size_t *allh = calloc(nchunks * (size_t)NDIG * RADIX + nchunks * RADIX, sizeof(size_t));
    if (allh == NULL)
        return -ENOMEM;
    SN(rx_t) r = {c, a, buf, n, csize, NULL, allh, 0, xm};
    pfor(c, nchunks, SN(allhist_chunk), &r);
    int rc = SN(lsd_passes)(c, a, buf, n, xm, nchunks, csize, allh,
                            allh + nchunks * (size_t)NDIG * RADIX);
    free(allh);
    return rc;
}

/* ---- adaptive MSD radix sort ------------------------------------------------
 *
 * A node sorts one range.  It first learns which key bits vary in the range
 * (OR and AND of every key: diff = OR ^ AND), then scatters stably by the
 * top varying `w` bits into the other array and recurses into each bucket.
 * Digits on which every key agrees are never visited (16 distinct values,
 * ints in 0..1000: one pass), and `w` follows the range's length so each
 * level shrinks buckets to a couple of elements: 10M random keys need one
 * scatter over main memory and one inside the cache, then insertion sorts
 * of ~2 elements, instead of NDIG LSD passes.
 *
 * Ping-pong: the input of a node lies in X; the node leaves its result in X
 * (out_x) or in Y.  Its children read from Y (after the scatter) and must
 * put their result where the parent's goes, so a child's out_x is !out_x.
 * A scatter only reads X, so until the children run X still holds the
 * whole input; on cancellation a node only has to make sure its output
 * location holds a permutation of its input (at most one memcpy).
 *
 * Large ranges (parallel nodes) use per-chunk histograms and scatter the
 * chunks in parallel; buckets are then handed out in groups of similar
 * total size; a bucket that is itself large becomes a parallel node.
 * The first pass fuses the OR/AND with the histogram of a guessed digit
 * (the top bits, or those just below the parent's digit): right for
 * random data, one more read when the guess misses.
 */

#define MSD_WMAX 11                /* widest digit: 2048 buckets (16 KB of counts) */
/* The widest digit of a pass over main memory (a parallel node): 8-byte
 * elements scatter into 1024 buckets (10M int64: 117 -> 91 ms on one
 * thread; fewer streams for the TLB and the write buffers; the buckets,
 * ~80 KB, still fit the in-cache finish), 4-byte ones into 512: a scatter
 * whose open lines (one per bucket) outgrow the 32 KB L1 costs ~3x per
 * element (10M uint32, Zen 4: 512 buckets 10.6 ms, 1024 27 ms, 2048 32 ms;
 * 10M int32 on one thread 75 -> 62 ms, and the ~78 KB buckets still fit
 * the finish). */
#ifndef MSD_PAR_WMAX
#define MSD_PAR_WMAX (sizeof(ST) >= 8 ? 10 : 9)
#endif
#define MSD_SMALL 24               /* ranges this short: insertion sort */
#define MSD_SEQ_MAX ((size_t)1 << 20) /* longer ranges use the parallel node */
#define MSD_PAR_MIN ((size_t)1 << 16) /* buckets this long may sort in parallel */
#define KBITS ((int)sizeof(SK) * 8)
/* skewed digits (see SN(build_lut) below), from 2^19 keys: below that the
 * exponent digit's large buckets still fit the 1 MB L2 (callgrind with a
 * 1 MB last level, one thread, normal data, table vs exponent digit:
 * 300K float32 -7% instructions but +23% misses; 450K float64 -6% / -21%;
 * 1M float32 -22% / -13%, float64 -9% / -35%; clock, 1M: float32 8.9 ->
 * 7.0 ms, float64 13.2 -> 9.3 ms) */
#define LUT_MIN ((size_t)1 << 19)
#define LUT_NB ((size_t)1 << (MSD_WMAX + 1)) /* at most this many buckets */
/* a table entry: bucket base (bits 0-15) | mask of the split bits (16-23) |
 * their shift (24-31); one load, two shifts, two ands, one add */
#define LUT_ENTRY(base, w, sh) \
    ((uint32_t)(base) | (uint32_t)((1u << (w)) - 1) << 16 | (uint32_t)((sh) - (w)) << 24)


/* the in-cache finish (SN(lsd_finish) below): its digits, and the ranges
 * it takes */
#define LSDF_W 11
#define LSDF_MIN 512
#define LSDF_MAX_BYTES ((size_t)128 << 10) /* len * sizeof(ST): X and Y in L2 */
/* ...but a range up to twice that still takes the finish rather than one
 * more MSD scatter first (X and Y then fill a 512 KB L2): the table of
 * skewed digits leaves buckets of up to ~2.5x its mean, ~200 KB for 10M
 * normal float64, and a quarter of such data sat in buckets over 128 KB
 * (10M normal float64, builds alternated 3x: 1 thread 116 -> 106 ms, 2
 * threads 60 -> 56 ms; int64 and float32, whose buckets stay under
 * 128 KB, unchanged) */
#define LSDF_TAKE_BYTES (2 * LSDF_MAX_BYTES)
_Static_assert(LSDF_TAKE_BYTES <= TSCRATCH_BYTES, "a finish's range fits the thread's scratch");

/* floor(log2(len)) for len >= 1 (0 for 0) */
static inline int SN(floor_lg)(size_t len)
{
    return len > 1 ? 63 - __builtin_clzll((unsigned long long)len) : 0;
}

/* Digit width for a range of len elements: about len/2 buckets; a range
 * too large for the in-cache finish only as many as make its buckets a
 * quarter of that size (100M int64: a second pass into 32 buckets, not
 * 2048 of 47 elements each needing more passes). */
static inline int SN(msd_width)(size_t len, int hi)
{
    int lg = SN(floor_lg)(len);
    int w = lg - 1;
    if (len * sizeof(ST) > LSDF_MAX_BYTES) {
        int f = 0;
        while (f < w && ((len >> f) * sizeof(ST)) > LSDF_MAX_BYTES / 4)
            f++;
        w = f;
    }
    if (w > MSD_WMAX)
        w = MSD_WMAX;
    if (w < 3)
        w = 3;
    return w > hi + 1 ? hi + 1 : w;
}

/* 1 if keys whose top varying bit is hi differ in their exponents: the
 * float bit-pattern kernels (SKEYED) above the mantissa's FMANT bits. */
#define FMANT (KBITS == 64 ? 52 : 23)
static inline int SN(exp_varies)(int hi)
{
#if SKEYED
    return hi >= FMANT;
#else
    (void)hi;
    return 0;
#endif
}

/* Floats whose exponents vary crowd a few of them (normal data: 80% in
 * four), so a digit of the top `w` bits leaves most keys in one bucket,
 * pass after pass, until the digits reach the low exponent bits.  Their
 * first digit is the sign and the exponent instead (as much of it as
 * MSD_WMAX takes): after it the mantissas below spread evenly.  Only
 * the ranges no table of skewed digits has bucketed (the table does the
 * same from LUT_MIN keys). */
static inline int SN(exp_width)(int hi, int w)
{
    if (SN(exp_varies)(hi)) {
        int e = hi + 1 - FMANT;
        if (e > MSD_WMAX)
            e = MSD_WMAX;
        if (e > w)
            w = e;
    }
    return w;
}

static inline int SN(msb)(SK d)
{
    return 63 - __builtin_clzll((unsigned long long)d);
}

typedef struct {
    sctx *c;
    SK xm;
    _Atomic int cancelled;
} SN(msd_t);

static void SN(msd_par)(SN(msd_t) *k, ST *X, ST *Y, size_t len, int out_x, int guess_hi);

/* Insertion sort of src[0..m) into dst[0..m) (dst == src: in place). */
static inline void SN(ins_to)(const ST *src, ST *dst, size_t m, SK xm)
{
    for (size_t i = 0; i < m; i++) {
        ST v = src[i];
        SK kv = KEYX(v);
        size_t j = i;
        while (j > 0 && kv < KEYX(dst[j - 1])) {
            dst[j] = dst[j - 1];
            j--;
        }
        dst[j] = v;
    }
}

#if SIDENT
/* Equal keys mean identical values here (ints; floats on the bit-exact
 * path), so a sorting network needs no stability and can work on keys
 * alone.  Sorts src[0..m), m <= 4, into dst[0..m) with no data-dependent
 * branch.  It reads src[0..4) and writes dst[0..4) (the caller keeps both
 * in bounds); dst[m..4) gets src[m..4) back, so dst == src (in place)
 * leaves the next bucket intact, and a separate dst is rewritten later. */
#define CSWAP(a, b)                          \
    do {                                     \
        SK lo_ = (a) < (b) ? (a) : (b);      \
        (b) = (a) < (b) ? (b) : (a);         \
        (a) = lo_;                           \
    } while (0)
static inline void SN(net4)(const ST *src, ST *dst, size_t m, SK xm)
{
    const SK mx = (SK)~(SK)0;
    ST v0 = src[0], v1 = src[1], v2 = src[2], v3 = src[3];
    SK k0 = m > 0 ? KEYX(v0) : mx, k1 = m > 1 ? KEYX(v1) : mx;
    SK k2 = m > 2 ? KEYX(v2) : mx, k3 = m > 3 ? KEYX(v3) : mx;
    CSWAP(k0, k1);
    CSWAP(k2, k3);
    CSWAP(k0, k2);
    CSWAP(k1, k3);
    CSWAP(k1, k2);
    dst[0] = m > 0 ? SVAL((SK)(k0 ^ xm)) : v0;
    dst[1] = m > 1 ? SVAL((SK)(k1 ^ xm)) : v1;
    dst[2] = m > 2 ? SVAL((SK)(k2 ^ xm)) : v2;
    dst[3] = m > 3 ? SVAL((SK)(k3 ^ xm)) : v3;
}
#undef CSWAP
#endif

/* Leaves: the range is in X; sort it into the output location. */
static void SN(msd_leaf)(ST *X, ST *Y, size_t len, int out_x, SK xm)
{
    SN(ins_to)(X, out_x ? X : Y, len, xm);
}

/* ---- in-cache finish: LSD on a prefix, then insertion ---------------------
 *
 * A range that fits in the cache (a bucket of the first MSD pass) is
 * sorted by two stable LSD passes on its top B varying bits (one pass when
 * B <= LSDF_W), both digits counted in one read, with B about lg(len) + 6:
 * random keys then share a B-bit prefix only in ~len/64 pairs, so one
 * insertion sort over the whole range finishes it in about one compare per
 * element.  Keys that share long prefixes (clusters, duplicates with
 * different low bits) could make that insertion quadratic: a scan bounds
 * its work first (the sum of the squared sizes of equal-prefix groups), and
 * past the bound each large group is sorted by the MSD recursion instead.
 * Replaces an 11-bit MSD scatter into ~2-element buckets plus a sorting
 * network per bucket, which cost 3x as much per element (perf: the bucket
 * loop's branches and the per-bucket calls). */

static void SN(msd_seq)(SN(msd_t) *k, ST *X, ST *Y, size_t len, int out_x, int guess_hi);
static void SN(msd_step)(SN(msd_t) *k, ST *X, ST *Y, size_t len, int out_x, int guess_hi);

static inline void SN(lsdf_digits)(size_t len, int hi, int top, int *sh0, int *w0, int *sh1, int *w1)
{
    int lg = SN(floor_lg)(len);
    int b = hi + 1 <= 2 * LSDF_W ? hi + 1 : lg + 6; /* all of them when two passes can */
    /* Floats whose exponents differ in a whole array (top: no MSD pass
     * has narrowed the range; arrays that fit the cache) crowd a few
     * exponents, so their top lg + 6 bits are far from uniform: the
     * insertion sort would meet long runs of one prefix (4096 normal
     * float64: 45 -> 27 us).  So they take 4 bits fewer than their
     * exponent's width on top (normal data's exponents hold ~4 bits of
     * entropy): float64 all 22 bits from 512 keys; float32 lg + 10, so
     * 2 x 2048 counts are not spent on a few hundred keys (callgrind,
     * normal float32: 600 keys -28% instructions, 1000 -20%, 3000 -3%;
     * the clock moves too much at a few microseconds).  The buckets of the skewed-digit table are
     * even again, and keep lg + 6 (but for one whose 16-bit values span
     * both signs: its guess is the top bit too, and it does span
     * exponents). */
    if (top && SN(exp_varies)(hi))
        b = lg + 6 + (KBITS - 1 - FMANT) - 4;
    if (b > 2 * LSDF_W)
        b = 2 * LSDF_W;
    if (b > hi + 1)
        b = hi + 1;
    *w1 = b > LSDF_W ? (b + 1) / 2 : b; /* the high digit (the last pass) */
    *w0 = b - *w1;                      /* the low digit (0: one pass) */
    *sh1 = hi + 1 - *w1;
    *sh0 = *sh1 - *w0;
}

/* Both digits' counts for a finish whose top varying bit is hi (the
 * digits from lsdf_digits), with the OR/AND of the keys.  Y is where the
 * first pass scatters, in random order; it was last touched long ago (out
 * of the cache): its lines are fetched meanwhile. */
static inline void SN(lsdf_count)(const ST *X, const ST *Y, size_t len, SK xm, int hi, int top, int d[4],
                           uint32_t *c0, uint32_t *c1, SK *o_, SK *an_)
{
    SN(lsdf_digits)(len, hi, top, &d[0], &d[1], &d[2], &d[3]);
    int sh0 = d[0], sh1 = d[2];
    SK m0 = (SK)(((SK)1 << d[1]) - 1), m1 = (SK)(((SK)1 << d[3]) - 1);
    memset(c0, 0, ((size_t)1 << d[1]) * sizeof c0[0]);
    memset(c1, 0, ((size_t)1 << d[3]) * sizeof c1[0]);
    const size_t line = 64 / sizeof(ST) ? 64 / sizeof(ST) : 1;
    SK o = 0, an = (SK)~(SK)0;
    size_t i = 0;
    for (; i + 1 < len; i += 2) { /* two keys an iteration, as SCATTER */
        SK k0 = KEYX(X[i]), k1 = KEYX(X[i + 1]);
        o |= k0 | k1;
        an &= k0 & k1;
        c0[(k0 >> sh0) & m0]++;
        c1[(k0 >> sh1) & m1]++;
        c0[(k1 >> sh0) & m0]++;
        c1[(k1 >> sh1) & m1]++;
        if (i % line == 0)
            __builtin_prefetch(Y + i, 1);
    }
    for (; i < len; i++) {
        SK key = KEYX(X[i]);
        o |= key;
        an &= key;
        c0[(key >> sh0) & m0]++;
        c1[(key >> sh1) & m1]++;
    }
    *o_ = o;
    *an_ = an;
}

/* One LSD pass: exclusive prefix sum of the counts c of the w bits at sh,
 * then a stable scatter of src[0..len) into dst. */
static inline void SN(lsdf_pass)(const ST *src, ST *dst, size_t len, uint32_t *c, int sh, int w, SK xm)
{
    uint32_t run = 0;
    for (size_t b = 0; b < ((size_t)1 << w); b++) {
        uint32_t n = c[b];
        c[b] = run;
        run += n;
    }
    const SK bmask = (SK)(((SK)1 << w) - 1);
    SCATTER(src, dst, 0, len, c, DIGIT_BUCKET);
}

/* The finish's two passes X -> the thread's scratch -> Y (see below); 0
 * if there is no scratch.  Out of line: inlined, it slowed the other
 * finishes (10M int32, one thread: 78 -> 85 ms). */
static __attribute__((noinline)) int SN(lsdf_via_scratch)(const ST *X, ST *Y, size_t len, uint32_t *c0,
                                                          uint32_t *c1, const int d[4], SK xm)
{
    ST *T = len * sizeof(ST) <= TSCRATCH_BYTES ? sort_tscratch() : NULL;
    if (T == NULL)
        return 0;
    SN(lsdf_pass)(X, T, len, c0, d[0], d[1], xm);
    SN(lsdf_pass)(T, Y, len, c1, d[2], d[3], xm);
    return 1;
}

static void SN(lsd_finish)(SN(msd_t) *k, ST *X, ST *Y, size_t len, int out_x, int guess_hi)
{
    SK xm = k->xm, o, an;
    uint32_t c0[(size_t)1 << LSDF_W], c1[(size_t)1 << LSDF_W];
    int d[4]; /* sh0, w0, sh1, w1 */
    int whole = guess_hi == KBITS - 1; /* the whole array (msd_radix's call) */
    SN(lsdf_count)(X, Y, len, xm, guess_hi, whole, d, c0, c1, &o, &an);
    SK diff = (SK)(o ^ an);
    if (diff == 0) { /* every key equal: already in (stable) order */
        if (!out_x)
            memcpy(Y, X, len * sizeof(ST));
        return;
    }
    int hi = SN(msb)(diff);
    if (hi != guess_hi) /* the top bits agree: count the digits below them */
        SN(lsdf_count)(X, Y, len, xm, hi, whole, d, c0, c1, &o, &an);
    int sh0 = d[0], w0 = d[1], sh1 = d[2], w1 = d[3];
    ST *dst = out_x ? X : Y;
    int all = sh0 <= __builtin_ctzll((unsigned long long)diff); /* every varying bit */
    /* Two digits that sort every varying bit, into Y: X -> Y -> X would
     * end in the wrong array and need a copy, so the low digit goes
     * through the thread's scratch array instead, and the high one from it
     * straight to Y.  Y (the output, which the MSD pass read long ago, out
     * of the cache) is then written once, not twice, and the scratch stays
     * in the cache from one range to the next (10M normal float32, one
     * thread, builds alternated 3x: 104-110 -> 86-87 ms; 2 threads 61-71
     * -> 50-51 ms).  Only there: routing the insertion sort's case through
     * it too (X -> T -> X, then the insertion into Y) made 10M int32
     * slower (76 -> 84 ms). */
    if (all && !out_x && w0 > 0 && SN(lsdf_via_scratch)(X, Y, len, c0, c1, d, xm))
        return;
    /* the passes: X -> Y (low digit, if any), then -> the other array (high
     * digit); R holds the result, S is free */
    ST *R = X, *S = Y;
    if (w0 > 0) {
        SN(lsdf_pass)(X, Y, len, c0, sh0, w0, xm);
        R = Y;
        S = X;
    }
    SN(lsdf_pass)(R, S, len, c1, sh1, w1, xm);
    {
        ST *t = R;
        R = S;
        S = t;
    }
    if (all) { /* every varying bit sorted */
        if (R != dst)
            memcpy(dst, R, len * sizeof(ST));
        return;
    }
    /* Insertion sort into dst with a budget of moves: ties of the prefix
     * are rare here, so it is about one compare per element.  Past the
     * budget (long runs of one prefix), the rest is copied over and the
     * MSD recursion sorts the range instead (the other array is free). */
    size_t budget = 8 * len, i;
    SK top = 0; /* the largest key placed so far (dst[i - 1]'s): the common
                 * case compares with a register, not the store just made */
    for (i = 0; i < len; i++) {
        ST v = R[i];
        SK kv = KEYX(v);
        if (kv >= top) {
            dst[i] = v;
            top = kv;
            continue;
        }
        size_t j = i;
        while (j > 0 && kv < KEYX(dst[j - 1])) {
            dst[j] = dst[j - 1];
            j--;
        }
        dst[j] = v;
        size_t moved = i - j;
        if (moved > budget)
            break;
        budget -= moved;
    }
    if (i < len) {
        if (dst != R)
            memcpy(dst + i + 1, R + i + 1, (len - i - 1) * sizeof(ST));
        SN(msd_step)(k, dst, dst == R ? S : R, len, 1, hi);
    }
}

/* The longest range (bytes) the finish takes.  Not past LSDF_MAX_BYTES for
 * a whole float64 array whose exponents vary: its 22 bits spend ~5 bits of
 * entropy on the sign and exponent, too few for 16K-32K keys, and the
 * insertion sort's budget runs out (normal data, 30K: 0.35-0.46 ->
 * 0.49 ms); whole int64 arrays of 20K-32K keys gain (0.18 -> 0.10 ms), and
 * 4-byte ones of 32K-64K (int32 50K 0.43 -> 0.23 ms, float32 0.55 ->
 * 0.43 ms). */
static inline size_t SN(lsdf_take)(int guess_hi)
{
#if SKEYED
    if (KBITS == 64 && guess_hi == KBITS - 1)
        return LSDF_MAX_BYTES;
#endif
    (void)guess_hi;
    return LSDF_TAKE_BYTES;
}

/* A range sorted by one thread: in the cache, the LSD finish; else an
 * MSD step. */
static void SN(msd_seq)(SN(msd_t) *k, ST *X, ST *Y, size_t len, int out_x, int guess_hi)
{
    if (len >= LSDF_MIN && len * sizeof(ST) <= SN(lsdf_take)(guess_hi))
        SN(lsd_finish)(k, X, Y, len, out_x, guess_hi);
    else
        SN(msd_step)(k, X, Y, len, out_x, guess_hi);
}

/* One MSD scatter by the top varying bits, then each bucket (msd_seq). */
static void SN(msd_step)(SN(msd_t) *k, ST *X, ST *Y, size_t len, int out_x, int guess_hi)
{
    SK xm = k->xm;
    if (len <= MSD_SMALL) {
        SN(msd_leaf)(X, Y, len, out_x, xm);
        return;
    }
    if (len >= 4096 && is_cancelled(k->c)) {
        atomic_store_explicit(&k->cancelled, 1, memory_order_relaxed);
        if (!out_x)
            memcpy(Y, X, len * sizeof(ST));
        return;
    }
    uint32_t cnt[((size_t)1 << MSD_WMAX) + 1];
    int gw = SN(msd_width)(len, guess_hi), gsh = guess_hi + 1 - gw;
    size_t gnb = (size_t)1 << gw;
    memset(cnt, 0, (gnb + 1) * sizeof cnt[0]);
    SK o = 0, an = (SK)~(SK)0;
    for (size_t i = 0; i < len; i++) {
        SK key = KEYX(X[i]);
        o |= key;
        an &= key;
        cnt[((key >> gsh) & (gnb - 1)) + 1]++;
    }
    SK diff = (SK)(o ^ an);
    if (diff == 0) { /* every key equal: already in (stable) order */
        if (!out_x)
            memcpy(Y, X, len * sizeof(ST));
        return;
    }
    int hi = SN(msb)(diff);
    int w = SN(exp_width)(hi, SN(msd_width)(len, hi)), sh = hi + 1 - w;
    size_t nb = (size_t)1 << w;
    if (hi != guess_hi || w != gw) { /* the guess missed: count the real digit */
        memset(cnt, 0, (nb + 1) * sizeof cnt[0]);
        for (size_t i = 0; i < len; i++)
            cnt[((KEYX(X[i]) >> sh) & (nb - 1)) + 1]++;
    }
    for (size_t b = 0; b < nb; b++)
        cnt[b + 1] += cnt[b];
#if SIDENT
    if ((diff & (SK)(((SK)1 << sh) - 1)) == 0) { /* one key per bucket: write them */
        ST *d = out_x ? X : Y;
        SK base = (SK)(an & ~(SK)((SK)(nb - 1) << sh));
        for (size_t b = 0; b < nb; b++) {
            ST v = SVAL((SK)((base | ((SK)b << sh)) ^ xm));
            for (size_t i = cnt[b]; i < cnt[b + 1]; i++)
                d[i] = v;
        }
        return;
    }
#endif
    {
        uint32_t off[(size_t)1 << MSD_WMAX];
        memcpy(off, cnt, nb * sizeof off[0]);
        const SK bmask = (SK)(nb - 1);
        SCATTER(X, Y, 0, len, off, DIGIT_BUCKET);
    }
    ST *dst = out_x ? X : Y;
    for (size_t b = 0; b < nb; b++) {
        size_t s = cnt[b], m = cnt[b + 1] - s;
#if SIDENT
        /* most buckets hold 0-4 elements: a branch-free network */
        if (sh != 0 && m <= 4 && s + 4 <= len) {
            SN(net4)(Y + s, dst + s, m, xm);
            continue;
        }
#endif
        if (m <= MSD_SMALL) { /* most buckets: a handful of elements */
            if (sh == 0) { /* one key value: already in order */
                if (out_x)
                    for (size_t i = s; i < s + m; i++)
                        X[i] = Y[i];
            } else {
                SN(ins_to)(Y + s, dst + s, m, xm);
            }
        } else if (sh == 0) {
            if (out_x)
                memcpy(X + s, Y + s, m * sizeof(ST));
        } else if (m > MSD_SEQ_MAX) {
            SN(msd_par)(k, Y + s, X + s, m, !out_x, sh - 1);
        } else {
            SN(msd_seq)(k, Y + s, X + s, m, !out_x, sh - 1);
        }
    }
}

static inline size_t SN(lut_bucket)(const uint32_t *lut, SK key, int sh)
{
    uint32_t e = lut[(key >> sh) & 0xffff];
    return (e & 0xffff) + (size_t)((key >> (e >> 24)) & ((e >> 16) & 0xff));
}

typedef struct {
    SN(msd_t) *k;
    ST *X, *Y;
    size_t len, csize, nb;
    size_t *hist;  /* [chunk][nb + 1] */
    SK *orand;     /* [chunk][2] */
    int sh, count_only;
    const uint32_t *lut; /* non-NULL: buckets by SN(lut_bucket) */
    const uint16_t *lut16; /* non-NULL: a table without split values: the
                            * bucket is the entry (one load) */
} SN(mp_t);

static void SN(mp_count)(void *arg, size_t ch)
{
    SN(mp_t) *r = arg;
    SK xm = r->k->xm;
    size_t lo = ch * r->csize, hi = lo + r->csize < r->len ? lo + r->csize : r->len;
    size_t *h = r->hist + ch * (r->nb + 1), nb = r->nb;
    int sh = r->sh;
    const ST *X = r->X;
    memset(h, 0, (nb + 1) * sizeof(size_t));
    SK o = 0, an = (SK)~(SK)0;
    for (size_t blk = lo; blk < hi; blk += CANCEL_STRIDE) {
        if (is_cancelled(r->k->c))
            return; /* the caller sees the flag and stops */
        size_t end = blk + CANCEL_STRIDE < hi ? blk + CANCEL_STRIDE : hi;
        if (r->lut16) {
            const uint16_t *lut16 = r->lut16;
            for (size_t i = blk; i < end; i++) {
                SK key = KEYX(X[i]);
                o |= key;
                an &= key;
                h[lut16[(key >> sh) & 0xffff]]++;
            }
        } else if (r->lut) {
            const uint32_t *lut = r->lut;
            for (size_t i = blk; i < end; i++) {
                SK key = KEYX(X[i]);
                o |= key;
                an &= key;
                h[SN(lut_bucket)(lut, key, sh)]++;
            }
        } else if (r->count_only) {
            for (size_t i = blk; i < end; i++)
                h[(KEYX(X[i]) >> sh) & (nb - 1)]++;
        } else {
            for (size_t i = blk; i < end; i++) {
                SK key = KEYX(X[i]);
                o |= key;
                an &= key;
                h[(key >> sh) & (nb - 1)]++;
            }
        }
    }
    r->orand[2 * ch] = o;
    r->orand[2 * ch + 1] = an;
}

static void SN(mp_scatter)(void *arg, size_t ch)
{
    SN(mp_t) *r = arg;
    SK xm = r->k->xm;
    size_t lo = ch * r->csize, hi = lo + r->csize < r->len ? lo + r->csize : r->len;
    size_t nb = r->nb, *off = r->hist + ch * (nb + 1);
    int sh = r->sh;
    const ST *X = r->X;
    ST *Y = r->Y;
    for (size_t blk = lo; blk < hi; blk += CANCEL_STRIDE) {
        if (is_cancelled(r->k->c))
            return; /* X still holds everything */
        size_t end = blk + CANCEL_STRIDE < hi ? blk + CANCEL_STRIDE : hi;
        if (r->lut16) {
            const uint16_t *lut16 = r->lut16;
#define L16_BUCKET(key) ((size_t)lut16[((key) >> sh) & 0xffff])
            SCATTER(X, Y, blk, end, off, L16_BUCKET);
#undef L16_BUCKET
        } else if (r->lut) {
            const uint32_t *lut = r->lut;
#define LUT_BUCKET(key) SN(lut_bucket)(lut, (key), sh)
            SCATTER(X, Y, blk, end, off, LUT_BUCKET);
#undef LUT_BUCKET
        } else {
            const SK bmask = (SK)(nb - 1);
            SCATTER(X, Y, blk, end, off, DIGIT_BUCKET);
        }
    }
}

typedef struct {
    SN(msd_t) *k;
    ST *X, *Y; /* the parent's arrays: buckets are in Y */
    const size_t *start; /* [nb + 1] */
    const size_t *group; /* [ngroups + 1] bucket index ranges */
    size_t len;
    int out_x, sh;
    const signed char *gh; /* non-NULL: bucket b's guessed top varying bit */
} SN(mg_t);

static void SN(mp_group)(void *arg, size_t g)
{
    SN(mg_t) *q = arg;
    sctx *c = q->k->c;
    for (size_t b = q->group[g]; b < q->group[g + 1]; b++) {
        size_t s = q->start[b], m = q->start[b + 1] - s;
        if (m == 0)
            continue;
        int guess = q->gh ? q->gh[b] : q->sh - 1;
        if ((q->sh == 0 && !q->gh) || m == 1 || guess < 0) {
            if (q->out_x)
                memcpy(q->X + s, q->Y + s, m * sizeof(ST));
        } else if (m > MSD_SEQ_MAX ||
                   (c->nthreads > 1 && m >= MSD_PAR_MIN && m > q->len / ((size_t)c->nthreads * 4))) {
            SN(msd_par)(q->k, q->Y + s, q->X + s, m, !q->out_x, guess);
        } else {
            SN(msd_seq)(q->k, q->Y + s, q->X + s, m, !q->out_x, guess);
        }
    }
}

#if SIDENT
/* When the digit spans every varying bit, each bucket holds one key value,
 * and equal keys are identical values here: the sorted output can simply be
 * written from the counts (a counting sort) -- no scatter, no scratch. */
typedef struct {
    ST *D;
    const size_t *start; /* [nb + 1] */
    size_t nb, len, csize;
    SK base, xm;
    int sh;
} SN(fill_t);

static void SN(fill_chunk)(void *arg, size_t ch)
{
    SN(fill_t) *f = arg;
    size_t lo = ch * f->csize, hi = lo + f->csize < f->len ? lo + f->csize : f->len;
    size_t b = 0, top = f->nb;
    while (b + 1 < top) { /* the bucket holding position lo */
        size_t mid = b + (top - b) / 2;
        if (f->start[mid] <= lo) b = mid; else top = mid;
    }
    SK xm = f->xm;
    for (size_t i = lo; i < hi; b++) {
        size_t e = f->start[b + 1] < hi ? f->start[b + 1] : hi;
        ST v = SVAL((SK)((f->base | ((SK)b << f->sh)) ^ xm));
        for (; i < e; i++)
            f->D[i] = v;
    }
}
#endif

/* ---- skewed digits: buckets from a sample ----------------------------------
 *
 * Random floats crowd a few exponents: the top 11 bits of a float64 key of
 * normal data put ~97% of it in ~10 of 2048 buckets, each of which then
 * needs another pass over main memory.  When the real digit's histogram is
 * that skewed, the parallel node instead buckets by a table built from a
 * sample of the top 16 varying bits: consecutive 16-bit values share a
 * bucket until it holds len/2^MSD_PAR_WMAX of the sample, and a value
 * heavier than that gets 2^w buckets of its own, split by the w bits below
 * (within one 16-bit value the keys spread evenly).  An entry (LUT_ENTRY)
 * holds the base, the mask of the w bits and their shift: bucket = base +
 * the w bits below the 16.  So one pass over memory leaves
 * cache-sized buckets again.  A bucket covering 16-bit values a..b holds
 * keys sharing the prefix above the highest bit where a and b differ (and
 * a split one, the w bits too): that gives its children's guess. */
/* The sample: every step-th of ~16K keys, read in place (three short
 * strided loops; no allocation unless the table is built). */
#define LUT_SAMPLE ((size_t)1 << 14)
static inline size_t SN(lut_step)(size_t len)
{
    return len / LUT_SAMPLE ? len / LUT_SAMPLE : 1;
}

/* The sample's 16 bits at sh: 1 if over a quarter of it lies in
 * MSD_PAR_WMAX-bit digits holding over 8x their mean share. */
static int SN(lut_skewed)(const ST *X, size_t len, int sh, SK xm)
{
    const size_t nb = (size_t)1 << MSD_PAR_WMAX;
    uint32_t cnt[(size_t)1 << MSD_PAR_WMAX];
    memset(cnt, 0, sizeof cnt);
    size_t step = SN(lut_step)(len), n = 0, big = 0;
    for (size_t i = 0; i < len; i += step, n++)
        cnt[((KEYX(X[i]) >> sh) & 0xffff) >> (16 - MSD_PAR_WMAX)]++;
    for (size_t b = 0; b < nb; b++)
        if (cnt[b] > 8 * (n / nb))
            big += cnt[b];
    return big > n / 4;
}

/* the top varying bit of a bucket's keys: those of 16-bit values a..b */
static inline signed char SN(lut_guess)(size_t a, size_t b, int sh)
{
    if (a != b)
        return (signed char)(sh + 63 - __builtin_clzll((unsigned long long)(a ^ b)));
    return (signed char)(sh > 0 ? sh - 1 : -1);
}

/* Count the sample's 16 bits at sh into fh[65536], then fill lut[65536]
 * and gh[bucket] (the children's guessed top varying bit; -1: no bit
 * below); returns the number of buckets (<= LUT_NB).  sh >= 0.  *split:
 * whether some value has buckets of its own (else every entry is just its
 * bucket). */
static size_t SN(build_lut)(const ST *X, size_t len, SK xm, uint32_t *fh, int sh, uint32_t *lut,
                            signed char *gh, int *split)
{
    *split = 0;
    const size_t nf = (size_t)1 << 16;
    size_t step = SN(lut_step)(len), ns = 0;
    memset(fh, 0, nf * sizeof(uint32_t));
    for (size_t i = 0; i < len; i += step, ns++)
        fh[(KEYX(X[i]) >> sh) & 0xffff]++;
    size_t target = ns / ((size_t)1 << MSD_PAR_WMAX) + 1, b = 0, acc = 0, first = 0;
    int open = 0; /* bucket b holds 16-bit values first..f-1 */
    for (size_t f = 0; f < nf; f++) {
        size_t cf = fh[f];
        int w = 0;
        while (w < 8 && w < sh && (cf >> w) > 2 * target)
            w++;
        /* never past LUT_NB buckets (the last one takes what is left) */
        while (w > 0 && b + 2 + ((size_t)1 << w) > LUT_NB)
            w--;
        if (open && (w > 0 || (acc > 0 && acc + cf > target && b + 2 < LUT_NB))) {
            gh[b] = SN(lut_guess)(first, f - 1, sh); /* close the open bucket */
            b++;
            acc = 0;
            open = 0;
        }
        if (w > 0) { /* a heavy value: 2^w buckets of its own */
            *split = 1;
            lut[f] = LUT_ENTRY(b, w, sh);
            for (size_t q = 0; q < ((size_t)1 << w); q++)
                gh[b + q] = (signed char)(sh - w - 1);
            b += (size_t)1 << w;
            continue;
        }
        if (!open)
            first = f;
        open = 1;
        lut[f] = LUT_ENTRY(b, 0, sh);
        acc += cf;
    }
    if (open) {
        gh[b] = SN(lut_guess)(first, nf - 1, sh);
        b++;
    }
    return b;
}

static void SN(msd_par)(SN(msd_t) *k, ST *X, ST *Y, size_t len, int out_x, int guess_hi)
{
    sctx *c = k->c;
    size_t nchunks = (size_t)c->nthreads * 2;
    if (nchunks > len / RADIX_MIN_CHUNK)
        nchunks = len / RADIX_MIN_CHUNK;
    if (nchunks < 1)
        nchunks = 1;
    size_t csize = (len + nchunks - 1) / nchunks;
    nchunks = (len + csize - 1) / csize;
    int gw = SN(msd_width)(len, guess_hi);
    if (gw > MSD_PAR_WMAX)
        gw = MSD_PAR_WMAX;
    SN(mp_t) r = {k, X, Y, len, csize, (size_t)1 << gw, NULL, NULL, guess_hi + 1 - gw, 0, NULL, NULL};
    uint32_t *lut = NULL;
    signed char *gh = NULL;
    if (len >= LUT_MIN && guess_hi >= 15) {
        /* A sample tells whether the digit below its top varying bit is
         * skewed (see build_lut).  Not when the sample's keys vary in 16
         * bits or fewer (few distinct values, small ranges): the counting
         * sort below takes those.  The table is only valid if no key varies
         * above the sample's top bit: checked after the count. */
        SK xm = k->xm, so = 0, sa = (SK)~(SK)0;
        size_t step = SN(lut_step)(len);
        for (size_t i = 0; i < len; i += step) {
            SK key = KEYX(X[i]);
            so |= key;
            sa &= key;
        }
        int shi = so != sa ? SN(msb)((SK)(so ^ sa)) : -1;
        int slo = so != sa ? __builtin_ctzll((unsigned long long)(so ^ sa)) : 0;
        int lsh = shi + 1 - 16;
        if (shi - slo + 1 > 16 && lsh >= 0 && SN(lut_skewed)(X, len, lsh, xm)) {
            const size_t nf = (size_t)1 << 16;
            lut = malloc(2 * nf * sizeof(uint32_t) + LUT_NB);
            if (lut != NULL) {
                gh = (signed char *)(lut + 2 * nf);
                r.sh = lsh;
                int split;
                r.nb = SN(build_lut)(X, len, xm, lut + nf, lsh, lut, gh, &split);
                r.lut = lut;
                if (!split) {
                    /* every entry is its bucket (< LUT_NB): 16-bit entries,
                     * one load per key and half the cache lines (float32
                     * normal data; 10M on one thread: ~10% faster), written
                     * where the sample's counts were (free now) */
                    uint16_t *lut16 = (uint16_t *)(lut + nf);
                    for (size_t f = 0; f < nf; f++)
                        lut16[f] = (uint16_t)(lut[f] & 0xffff);
                    r.lut = NULL;
                    r.lut16 = lut16;
                }
            }
        } else if (shi >= 0 && shi < guess_hi) {
            /* no sampled key varies above shi (floats in [1, 2), ints below
             * 2^20): count that digit first, not the guess's (a full
             * recount when a key beyond the sample varies higher) */
            guess_hi = shi;
            gw = SN(msd_width)(len, shi);
            if (gw > MSD_PAR_WMAX)
                gw = MSD_PAR_WMAX;
            r.nb = (size_t)1 << gw;
            r.sh = shi + 1 - gw;
        }
    }
    /* the widest digit, or the sample's buckets */
    size_t maxnb = lut ? LUT_NB : (size_t)1 << MSD_WMAX;
    size_t *mem = malloc((nchunks * (maxnb + 1) + 2 * (maxnb + 1)) * sizeof(size_t) +
                         2 * nchunks * sizeof(SK));
    if (mem == NULL) {
        free(lut);
        atomic_store_explicit(&k->cancelled, -ENOMEM, memory_order_relaxed);
        if (!out_x)
            memcpy(Y, X, len * sizeof(ST));
        return;
    }
    size_t *start = mem + nchunks * (maxnb + 1), *group = start + maxnb + 1;
    SK *orand = (SK *)(group + maxnb + 1);
    r.hist = mem;
    r.orand = orand;
    pfor(c, nchunks, SN(mp_count), &r);
    if (is_cancelled(c))
        goto cancelled;
    SK o = 0, an = (SK)~(SK)0;
    for (size_t ch = 0; ch < nchunks; ch++) {
        o |= orand[2 * ch];
        an &= orand[2 * ch + 1];
    }
    SK diff = (SK)(o ^ an);
    if (diff == 0) {
        if (!out_x)
            par_copy(c, Y, X, len * sizeof(ST));
        free(lut);
        free(mem);
        return;
    }
    int hi = SN(msb)(diff);
    int w = SN(msd_width)(len, hi);
    if (w > MSD_PAR_WMAX)
        w = MSD_PAR_WMAX;
    if (!lut)
        w = SN(exp_width)(hi, w);
#if SIDENT
    {
        /* every varying bit within 16 (16 distinct floats, ints in a small
         * range): a counting sort over that window -- count, then write */
        int lo = __builtin_ctzll((unsigned long long)diff), span = hi - lo + 1;
        if (span > w && span <= 16 && len >= ((size_t)8 << span)) {
            size_t cnb = (size_t)1 << span;
            size_t *ch = calloc(nchunks * (cnb + 1) + cnb + 1, sizeof(size_t));
            if (ch != NULL) {
                SN(mp_t) cr = {k, X, Y, len, csize, cnb, ch, orand, lo, 1, NULL, NULL};
                pfor(c, nchunks, SN(mp_count), &cr);
                if (is_cancelled(c)) {
                    free(ch);
                    goto cancelled;
                }
                size_t *cst = ch + nchunks * (cnb + 1), run = 0;
                for (size_t b = 0; b < cnb; b++) {
                    cst[b] = run;
                    for (size_t q = 0; q < nchunks; q++)
                        run += ch[q * (cnb + 1) + b];
                }
                cst[cnb] = len;
                size_t fch = (size_t)c->nthreads * 2;
                SN(fill_t) f = {out_x ? X : Y, cst, cnb, len, (len + fch - 1) / fch,
                                (SK)(an & ~(SK)((SK)(cnb - 1) << lo)), k->xm, lo};
                pfor(c, (len + f.csize - 1) / f.csize, SN(fill_chunk), &f);
                free(ch);
                free(lut);
                free(mem);
                return;
            }
        }
    }
#endif
    if (lut && hi > r.sh + 15) { /* a key varies above the sample's bits */
        free(lut);
        lut = NULL;
        gh = NULL;
        r.lut = NULL;
        r.lut16 = NULL;
        gw = -1; /* recount below */
    }
    if (!lut && (hi != guess_hi || w != gw)) {
        r.nb = (size_t)1 << w;
        r.sh = hi + 1 - w;
        r.count_only = 1;
        pfor(c, nchunks, SN(mp_count), &r);
        if (is_cancelled(c))
            goto cancelled;
    }
    size_t nb = r.nb;
    /* exclusive prefix sum, bucket-major then chunk: chunk ch's run of
     * bucket b follows the runs of every earlier chunk (stability) */
    size_t run = 0;
    for (size_t b = 0; b < nb; b++) {
        start[b] = run;
        for (size_t ch = 0; ch < nchunks; ch++) {
            size_t cnt = mem[ch * (nb + 1) + b];
            mem[ch * (nb + 1) + b] = run;
            run += cnt;
        }
    }
    start[nb] = len;
#if SIDENT
    if (!lut && (diff & (SK)(((SK)1 << r.sh) - 1)) == 0) { /* no varying bit below the digit */
        size_t fch = (size_t)c->nthreads * 2;
        SN(fill_t) f = {out_x ? X : Y, start, nb, len, (len + fch - 1) / fch,
                        (SK)(an & ~(SK)((SK)(nb - 1) << r.sh)), k->xm, r.sh};
        pfor(c, (len + f.csize - 1) / f.csize, SN(fill_chunk), &f);
        free(lut);
        free(mem);
        return;
    }
#endif
    pfor(c, nchunks, SN(mp_scatter), &r);
    if (is_cancelled(c))
        goto cancelled;
    /* groups of consecutive buckets holding about len/(8 threads) elements */
    size_t target = len / ((size_t)c->nthreads * 8) + 1, ng = 0, acc = 0;
    group[0] = 0;
    for (size_t b = 0; b < nb; b++) {
        acc += start[b + 1] - start[b];
        if (acc >= target || b + 1 == nb) {
            group[++ng] = b + 1;
            acc = 0;
        }
    }
    SN(mg_t) q = {k, X, Y, start, group, len, out_x, r.sh, gh};
    pfor(c, ng, SN(mp_group), &q);
    free(lut);
    free(mem);
    return;
cancelled:
    /* only X was read so far: it still holds the whole input */
    atomic_store_explicit(&k->cancelled, 1, memory_order_relaxed);
    if (!out_x)
        par_copy(c, Y, X, len * sizeof(ST));
    free(lut);
    free(mem);
}

/* Returns 1 if cancelled (data is a permutation in a), -ENOMEM, or 0. */
static int SN(msd_radix)(sctx *c, ST *a, ST *buf, size_t n, SK xm)
{
    SN(msd_t) k = {c, xm, 0};
    /* the parallel node also on one thread: its counting sort and its
     * table for skewed digits are not in msd_step (1M int64 in 0..1000 on
     * one thread: 6.3 -> 2.2 ms) */
    if (n >= MSD_PAR_MIN)
        SN(msd_par)(&k, a, buf, n, 1, KBITS - 1);
    else
        SN(msd_seq)(&k, a, buf, n, 1, KBITS - 1);
    int rc = atomic_load_explicit(&k.cancelled, memory_order_relaxed);
    return rc < 0 ? rc : (rc || is_cancelled(c));
}

#undef KBITS
#undef FMANT

/* ---- presorted and reversed input ------------------------------------------
 *
 * The order tests: on keys, or for ints (SIDENT and not SKEYED: the key
 * order is the value order) and floats (SFLT) on the values themselves, which
 * vectorizes better; -0.0 and 0.0 compare equal as their keys do, NaNs
 * pass the presorted test only where they sort (at the end, in any order
 * among themselves) and never the strictly-reversed one. */
#if defined(SFLT)
/* NaNs sort last (first descending) in input order: a NaN may follow
 * anything (precede anything, descending), nothing else may follow one */
#define ORD_LE(x, y) (xm ? ((x) >= (y)) | ((x) != (x)) : ((x) <= (y)) | ((y) != (y)))
#define ORD_LT(x, y) (xm ? (x) > (y) : (x) < (y))
#elif SIDENT && !defined(SKEYED)
#define ORD_LE(x, y) (xm ? (x) >= (y) : (x) <= (y))
#define ORD_LT(x, y) (xm ? (x) > (y) : (x) < (y))
#else
#define ORD_LE(x, y) (KEYX(x) <= KEYX(y))
#define ORD_LT(x, y) (KEYX(x) < KEYX(y))
#endif

typedef struct {
    const ST *a;
    size_t n, csize;
    SK xm;
    _Atomic int fail;
} SN(chk_t);

/* The loop body, compiled twice where the compiler can target AVX2 (its
 * 64-bit compares vectorize the loop; chosen at run time). */
#define CHECK_CHUNK_BODY                                                        \
    SN(chk_t) *k = arg;                                                         \
    SK xm = k->xm;                                                              \
    const ST *a = k->a;                                                         \
    size_t lo = ch * k->csize, hi = lo + k->csize + 1 < k->n ? lo + k->csize + 1 : k->n; \
    /* blocks of 256 pairs without an early exit, so the compiler can          \
     * vectorize; random input still fails within the first block */          \
    for (size_t blk = lo + 1; blk < hi; blk += 256) {                           \
        size_t end = blk + 256 < hi ? blk + 256 : hi;                           \
        int bad = 0;                                                            \
        for (size_t i = blk; i < end; i++)                                      \
            bad |= !ORD_LE(a[i - 1], a[i]);                                     \
        if (bad) {                                                              \
            atomic_store_explicit(&k->fail, 1, memory_order_relaxed);           \
            return;                                                             \
        }                                                                       \
        if ((blk & 16383) < 256 && atomic_load_explicit(&k->fail, memory_order_relaxed)) \
            return; /* another chunk already found disorder */                  \
    }

static void SN(check_chunk)(void *arg, size_t ch) { CHECK_CHUNK_BODY }
#if SORT_AVX2
__attribute__((target("avx2"))) static void SN(check_chunk_avx2)(void *arg, size_t ch)
{
    CHECK_CHUNK_BODY
}
#endif
#undef CHECK_CHUNK_BODY

/* 1 if the data is already in order (a stable sort is the identity).
 * Random input fails within a few elements of every chunk, so the check
 * costs nothing there. */
static int SN(check_order)(sctx *c, const ST *a, size_t n, SK xm)
{
    size_t nch = (size_t)c->nthreads * 2;
    if (n < ((size_t)1 << 16) || c->nthreads < 2)
        nch = 1;
    SN(chk_t) k = {a, n, (n + nch - 1) / nch, xm, 0};
    chunk_fn fn = SN(check_chunk);
#if SORT_AVX2
    if (sort_have_avx2())
        fn = SN(check_chunk_avx2);
#endif
    pfor(c, (n + k.csize - 1) / k.csize, fn, &k);
    return !atomic_load_explicit(&k.fail, memory_order_relaxed);
}

static int SN(sort)(sctx *c, ST *a, size_t n, int desc, pcc_sort_algo algo);

/* Strictly the other way round (no equal keys): reversing is the stable
 * sort.  The test and the reversal are one pass: every chunk of the first
 * half tests a block of pairs at both ends, then swaps the block; on the
 * first failure every chunk swaps back what it swapped (random input fails
 * in the first block).  The pairs straddling two chunks are tested before. */
#define REV_MAXCH 64
typedef struct {
    ST *a;
    size_t n, half, csize;
    SK xm;
    size_t done[REV_MAXCH];
    _Atomic int fail;
} SN(rev_t);

#define REV_CHUNK_BODY \
    SN(rev_t) *r = arg;                                                                          \
    ST *a = r->a;                                                                                \
    SK xm = r->xm;                                                                               \
    size_t n = r->n, lo = ch * r->csize, hi = lo + r->csize < r->half ? lo + r->csize : r->half; \
    /* the pair (hi-1, hi) reads the next chunk's first element */                               \
    size_t chk_hi = hi < r->half ? hi - 1 : hi;                                                  \
    size_t j = lo;                                                                               \
    while (j < hi) {                                                                             \
        size_t end = j + 256 < hi ? j + 256 : hi, cend = end < chk_hi ? end : chk_hi;            \
        int bad = 0;                                                                             \
        for (size_t i = j; i < cend; i++)                                                        \
            bad |= (!ORD_LT(a[i + 1], a[i])) | (!ORD_LT(a[n - 1 - i], a[n - 2 - i]));            \
        if (bad || atomic_load_explicit(&r->fail, memory_order_relaxed)) {                       \
            atomic_store_explicit(&r->fail, 1, memory_order_relaxed);                            \
            break;                                                                               \
        }                                                                                        \
        for (size_t i = j; i < end; i++) {                                                       \
            ST t = a[i];                                                                         \
            a[i] = a[n - 1 - i];                                                                 \
            a[n - 1 - i] = t;                                                                    \
        }                                                                                        \
        j = end;                                                                                 \
    }                                                                                            \
    r->done[ch] = j;

static void SN(rev_chunk)(void *arg, size_t ch) { REV_CHUNK_BODY }
#if SORT_AVX2
__attribute__((target("avx2"))) static void SN(rev_chunk_avx2)(void *arg, size_t ch)
{
    REV_CHUNK_BODY
}
#endif
#undef REV_CHUNK_BODY

static void SN(unrev_chunk)(void *arg, size_t ch)
{
    SN(rev_t) *r = arg;
    ST *a = r->a;
    size_t n = r->n;
    for (size_t i = ch * r->csize; i < r->done[ch]; i++) {
        ST t = a[i];
        a[i] = a[n - 1 - i];
        a[n - 1 - i] = t;
    }
}

/* 1 if a[0..n) was strictly decreasing in sort order and is now reversed;
 * 0 if not (a unchanged).  Never cancelled (it is one pass). */
static int SN(check_reverse)(sctx *c, ST *a, size_t n, SK xm)
{
    if (n < 2)
        return n == 1;
    size_t half = n / 2, nch = (size_t)c->nthreads * 2;
    if (half < ((size_t)1 << 16) || c->nthreads < 2)
        nch = 1;
    if (nch > REV_MAXCH)
        nch = REV_MAXCH;
    SN(rev_t) r;
    r.a = a;
    r.n = n;
    r.half = half;
    r.csize = (half + nch - 1) / nch;
    r.xm = xm;
    atomic_init(&r.fail, 0);
    nch = (half + r.csize - 1) / r.csize;
    for (size_t ch = 1; ch < nch; ch++) { /* the straddling pairs */
        size_t i = ch * r.csize - 1;
        if (!ORD_LT(a[i + 1], a[i]) || !ORD_LT(a[n - 1 - i], a[n - 2 - i]))
            return 0;
    }
    chunk_fn fn = SN(rev_chunk);
#if SORT_AVX2
    if (sort_have_avx2())
        fn = SN(rev_chunk_avx2);
#endif
    pfor(c, nch, fn, &r);
    if (!atomic_load_explicit(&r.fail, memory_order_relaxed))
        return 1;
    pfor(c, nch, SN(unrev_chunk), &r);
    return 0;
}

#if SIDENT
/* ---- in place, for arrays too large for a second copy ----------------------
 *
 * Above sort_inplace_min() elements (or when the scratch buffer cannot be
 * had) the top digit is distributed in place, American-flag style: every
 * element is swapped straight into its bucket, so at every moment the array
 * is a permutation of the input (a cancel may stop anywhere).  Swapping is
 * not stable, which only types whose equal keys are identical values
 * (SIDENT) can afford.  The buckets -- 1/2048 of the data each for random
 * keys -- are then sorted in parallel, each with a buffer its own size. */

typedef struct {
    sctx *c;
    ST *a;
    const size_t *start, *group;
    int desc;
    pcc_sort_algo algo;
    _Atomic int rc;
} SN(ip_t);

static void SN(ip_group)(void *arg, size_t g)
{
    SN(ip_t) *q = arg;
    for (size_t b = q->group[g]; b < q->group[g + 1]; b++) {
        size_t s = q->start[b], m = q->start[b + 1] - s;
        if (m < 2 || is_cancelled(q->c))
            continue;
        int rc = SN(sort)(q->c, q->a + s, m, q->desc, q->algo);
        if (rc != 0)
            atomic_store_explicit(&q->rc, rc, memory_order_relaxed);
    }
}

static int SN(sort_inplace)(sctx *c, ST *a, size_t n, int desc, pcc_sort_algo algo)
{
    SK xm = desc ? (SK)~(SK)0 : (SK)0;
    size_t nb = (size_t)1 << MSD_WMAX;
    size_t *start = calloc(3 * (nb + 1), sizeof(size_t));
    if (start == NULL)
        return -ENOMEM;
    size_t *head = start + nb + 1, *group = head + nb + 1;
    SK o = 0, an = (SK)~(SK)0;
    for (size_t i = 0; i < n; i++) {
        SK key = KEYX(a[i]);
        o |= key;
        an &= key;
    }
    SK diff = (SK)(o ^ an);
    if (diff == 0) {
        free(start);
        return 0;
    }
    int hi = SN(msb)(diff), w = SN(msd_width)(n, hi), sh = hi + 1 - w;
    nb = (size_t)1 << w;
    for (size_t i = 0; i < n; i++)
        start[((KEYX(a[i]) >> sh) & (nb - 1)) + 1]++;
    for (size_t b = 0; b < nb; b++)
        start[b + 1] += start[b];
    memcpy(head, start, nb * sizeof(size_t));
    size_t moved = 0;
    for (size_t b = 0; b < nb; b++) {
        while (head[b] < start[b + 1]) {
            ST v = a[head[b]];
            size_t d = (size_t)((KEYX(v) >> sh) & (nb - 1));
            while (d != b) { /* swap v into its bucket; take what was there */
                ST t = a[head[d]];
                a[head[d]++] = v;
                v = t;
                d = (size_t)((KEYX(v) >> sh) & (nb - 1));
                moved++;
            }
            /* v goes to the hole at head[b]: a permutation again */
            a[head[b]++] = v;
            if (++moved >= 16384) {
                moved = 0;
                if (is_cancelled(c)) {
                    free(start);
                    return -ECANCELED;
                }
            }
        }
    }
    size_t target = n / ((size_t)c->nthreads * 8) + 1, ng = 0, acc = 0;
    group[0] = 0;
    for (size_t b = 0; b < nb; b++) {
        acc += start[b + 1] - start[b];
        if (acc >= target || b + 1 == nb) {
            group[++ng] = b + 1;
            acc = 0;
        }
    }
    SN(ip_t) q = {c, a, start, group, desc, algo, 0};
    if (sh == 0) /* the digit was the whole key: done */
        ng = 0;
    pfor(c, ng, SN(ip_group), &q);
    free(start);
    int rc = atomic_load_explicit(&q.rc, memory_order_relaxed);
    return rc != 0 ? rc : (is_cancelled(c) ? -ECANCELED : 0);
}
#endif

static int SN(sort)(sctx *c, ST *a, size_t n, int desc, pcc_sort_algo algo)
{
    SK xm = desc ? (SK)~(SK)0 : (SK)0;
    if (n < 2)
        return 0;
    if (n <= INSERTION_MAX) {
        SN(insertion)(a, n, xm);
        return 0;
    }
    /* Already sorted: a stable sort is the identity.  Strictly the other
     * way round: no equal keys, so reversing is the stable sort. */
    if (SN(check_order)(c, a, n, xm) || SN(check_reverse)(c, a, n, xm))
        return 0;
    if (algo == PCC_SORT_AUTO)
        algo = n >= SN(radix_min) ? PCC_SORT_RADIX : PCC_SORT_MERGE;
#if SIDENT
    if (algo == PCC_SORT_RADIX && KBYTES >= 4 && n >= sort_inplace_min())
        return SN(sort_inplace)(c, a, n, desc, algo);
#endif
    ST *buf = sort_alloc(n * sizeof(ST));
    if (buf == NULL) {
#if SIDENT
        if (algo == PCC_SORT_RADIX && KBYTES >= 4 && n >= ((size_t)1 << 16))
            return SN(sort_inplace)(c, a, n, desc, algo);
#endif
        return -ENOMEM;
    }
    int rc;
    if (algo == PCC_SORT_RADIX && KBYTES >= 4) {
        rc = SN(msd_radix)(c, a, buf, n, xm);
    } else if (algo == PCC_SORT_RADIX) {
        rc = SN(radix)(c, a, buf, n, xm);
    } else {
        SN(ms_t) m = {c, a, buf, n, 0, xm, 0};
        SN(msort)(&m);
        rc = m.cancelled;
    }
    sort_free(buf, n * sizeof(ST));
    return rc < 0 ? rc : (rc ? -ECANCELED : 0);
}

#undef KBYTES
#undef KEYX
#undef ORD_LE
#undef ORD_LT
#undef NDIG
#undef RADIX
#undef DMASK
#undef SCATTER
#undef DIGIT_BUCKET
