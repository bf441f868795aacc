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
/* radix digits: SDBITS bits each (8 for narrow keys, 11 for wide ones:
 * fewer passes over memory, histograms still fit in L1/L2) */
#define NDIG ((KBYTES * 8 + SDBITS - 1) / SDBITS)
#define RADIX ((size_t)1 << SDBITS)
#define DMASK (RADIX - 1)

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
        for (size_t i = blk; i < end; i++) {
            ST v = src[i];
            dst[off[(size_t)((KEYX(v) >> sh) & DMASK)]++] = v;
        }
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

/* ---- MSD pass, then cache-sized LSD sorts per bucket ---------------------
 *
 * For large inputs one stable scatter by the most significant varying
 * digit splits the data into up to RADIX buckets; each bucket (n/RADIX
 * elements: a few hundred KB for n = 10M) is then LSD-sorted while it sits
 * in the core's cache, buckets in parallel.  That replaces NDIG-1 passes
 * over main memory by passes over L2, and needs no barrier between them.
 */

typedef struct {
    sctx *c;
    ST *a, *buf;
    size_t *start; /* [RADIX + 1] bucket boundaries */
    size_t big;    /* buckets above this many elements sort in parallel */
    SK xm;
    _Atomic int cancelled;
} SN(bk_t);

static void SN(bucket_task)(void *arg, size_t b)
{
    SN(bk_t) *k = arg;
    size_t s = k->start[b], len = k->start[b + 1] - s;
    if (len == 0)
        return;
    /* home first, so a cancelled sort still leaves a permutation in a */
    memcpy(k->a + s, k->buf + s, len * sizeof(ST));
    if (len < 2 || is_cancelled(k->c))
        return;
    SK xm = k->xm;
    if (len <= INSERTION_MAX) {
        SN(insertion)(k->a + s, len, xm);
        return;
    }
    int rc;
    if (len > k->big) {
        rc = SN(radix)(k->c, k->a + s, k->buf + s, len, xm);
    } else {
        sctx seq = {NULL, 1, k->c->cancel};
        rc = SN(radix)(&seq, k->a + s, k->buf + s, len, xm);
    }
    if (rc != 0)
        atomic_store_explicit(&k->cancelled, rc, memory_order_relaxed);
}

/* Returns 1 if cancelled (data is a permutation in a), -ENOMEM, or 0. */
static int SN(msd_radix)(sctx *c, ST *a, ST *buf, size_t n, SK xm)
{
    size_t csize, nchunks = SN(chunking)(c, n, &csize);
    size_t *allh = calloc(nchunks * (size_t)NDIG * RADIX + nchunks * RADIX + RADIX + 1,
                          sizeof(size_t));
    if (allh == NULL)
        return -ENOMEM;
    size_t *hist = allh + nchunks * (size_t)NDIG * RADIX;
    size_t *start = hist + nchunks * RADIX;
    SN(rx_t) r = {c, a, buf, n, csize, hist, allh, 0, xm};
    pfor(c, nchunks, SN(allhist_chunk), &r);
    /* the most significant digit on which keys differ */
    int top = -1;
    for (int d = NDIG - 1; d >= 0 && top < 0; d--) {
        for (size_t b = 0; b < RADIX; b++) {
            size_t t = 0;
            for (size_t ch = 0; ch < nchunks; ch++)
                t += allh[(ch * (size_t)NDIG + (size_t)d) * RADIX + b];
            if (t != 0) {
                if (t != n)
                    top = d;
                break;
            }
        }
    }
    if (top < 0) { /* every key equal: already sorted */
        free(allh);
        return 0;
    }
    for (size_t ch = 0; ch < nchunks; ch++)
        memcpy(hist + ch * RADIX, allh + (ch * (size_t)NDIG + (size_t)top) * RADIX,
               RADIX * sizeof(size_t));
    /* Skewed top digit (floats' exponents, clustered ints): buckets would
     * not fit in cache, so the plain LSD sort is the better deal. */
    size_t biggest = 0;
    for (size_t b = 0; b < RADIX; b++) {
        size_t t = 0;
        for (size_t ch = 0; ch < nchunks; ch++)
            t += hist[ch * RADIX + b];
        if (t > biggest)
            biggest = t;
    }
    if (biggest > n / MSD_MAX_SHARE) {
        int rc = SN(lsd_passes)(c, a, buf, n, xm, nchunks, csize, allh, hist);
        free(allh);
        return rc;
    }
    size_t run = 0;
    for (size_t b = 0; b < RADIX; b++) {
        start[b] = run;
        for (size_t ch = 0; ch < nchunks; ch++) {
            size_t cnt = hist[ch * RADIX + b];
            hist[ch * RADIX + b] = run;
            run += cnt;
        }
    }
    start[RADIX] = n;
    r.shift = SDBITS * top;
    if (is_cancelled(c)) {
        free(allh);
        return 1;
    }
    pfor(c, nchunks, SN(scatter_chunk), &r);
    if (is_cancelled(c)) { /* the scatter may be partial: a still holds all */
        free(allh);
        return 1;
    }
    SN(bk_t) k = {c, a, buf, start, n / ((size_t)c->nthreads * 2), xm, 0};
    if (top == 0) { /* one digit only: the scatter sorted it */
        par_copy(c, a, buf, n * sizeof(ST));
    } else {
        pfor(c, RADIX, SN(bucket_task), &k);
    }
    free(allh);
    int rc = atomic_load_explicit(&k.cancelled, memory_order_relaxed);
    return rc < 0 ? rc : (rc || is_cancelled(c));
}

/* ---- presorted input ------------------------------------------------------ */

typedef struct {
    const ST *a;
    size_t n, csize;
    SK xm;
    int strict_desc; /* 0: check non-decreasing keys; 1: strictly decreasing */
    _Atomic int fail;
} SN(chk_t);

static void SN(check_chunk)(void *arg, size_t ch)
{
    SN(chk_t) *k = arg;
    SK xm = k->xm;
    size_t lo = ch * k->csize, hi = lo + k->csize + 1 < k->n ? lo + k->csize + 1 : k->n;
    SK prev = KEYX(k->a[lo]);
    for (size_t i = lo + 1; i < hi; i++) {
        SK cur = KEYX(k->a[i]);
        if (k->strict_desc ? cur >= prev : cur < prev) {
            atomic_store_explicit(&k->fail, 1, memory_order_relaxed);
            return;
        }
        prev = cur;
        if ((i & 4095) == 0 && atomic_load_explicit(&k->fail, memory_order_relaxed))
            return; /* another chunk already found disorder */
    }
}

/* 1 if the keys are already in order (strict_desc=0: non-decreasing) or
 * strictly decreasing (strict_desc=1).  Random input fails within a few
 * elements of every chunk, so the check costs nothing there. */
static int SN(check_order)(sctx *c, const ST *a, size_t n, SK xm, int strict_desc)
{
    size_t nch = (size_t)c->nthreads * 2;
    if (n < ((size_t)1 << 16) || c->nthreads < 2)
        nch = 1;
    SN(chk_t) k = {a, n, (n + nch - 1) / nch, xm, strict_desc, 0};
    pfor(c, (n + k.csize - 1) / k.csize, SN(check_chunk), &k);
    return !atomic_load_explicit(&k.fail, memory_order_relaxed);
}

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
    if (SN(check_order)(c, a, n, xm, 0))
        return 0;
    if (SN(check_order)(c, a, n, xm, 1)) {
        for (size_t i = 0, j = n - 1; i < j; i++, j--) {
            ST t = a[i];
            a[i] = a[j];
            a[j] = t;
        }
        return 0;
    }
    if (algo == PCC_SORT_AUTO)
        algo = n >= SN(radix_min) ? PCC_SORT_RADIX : PCC_SORT_MERGE;
    ST *buf = malloc(n * sizeof(ST));
    if (buf == NULL)
        return -ENOMEM;
    int rc;
    if (algo == PCC_SORT_RADIX && NDIG > 1 && n >= MSD_MIN) {
        rc = SN(msd_radix)(c, a, buf, n, xm);
    } else if (algo == PCC_SORT_RADIX) {
        rc = SN(radix)(c, a, buf, n, xm);
    } else {
        SN(ms_t) m = {c, a, buf, n, 0, xm, 0};
        SN(msort)(&m);
        rc = m.cancelled;
    }
    free(buf);
    return rc < 0 ? rc : (rc ? -ECANCELED : 0);
}

#undef KBYTES
#undef KEYX
#undef NDIG
#undef RADIX
#undef DMASK
