/* C tests of the sort kernels: every type, both algorithms, both
 * directions, against qsort on the same keys; edge cases (empty, one
 * element, all equal, sorted, reversed, few unique, NaN/±0/±inf);
 * stability (records with equal keys keep input order); cancellation
 * leaves a permutation.  Run on a 2-thread pool and sequentially. */
#include "check.h"

#include "pyconc/pool.h"
#include "pyconc/sort.h"

#include <math.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static pcc_pool *pool;

/* The expected order: qsort by (key, original index), i.e. a stable sort. */
typedef struct {
    uint64_t key;
    size_t idx;
} ref_t;
static int ref_cmp(const void *a, const void *b)
{
    const ref_t *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

static uint64_t key_of(pcc_sort_type t, const void *p)
{
    switch (t) {
    case PCC_SORT_I8: return (uint8_t)(*(const int8_t *)p) ^ 0x80u;
    case PCC_SORT_U8: return *(const uint8_t *)p;
    case PCC_SORT_I16: return (uint16_t)(*(const int16_t *)p) ^ 0x8000u;
    case PCC_SORT_U16: return *(const uint16_t *)p;
    case PCC_SORT_I32: return (uint32_t)(*(const int32_t *)p) ^ 0x80000000u;
    case PCC_SORT_U32: return *(const uint32_t *)p;
    case PCC_SORT_I64: return pcc_sort_key_i64(*(const int64_t *)p);
    case PCC_SORT_U64: return *(const uint64_t *)p;
    case PCC_SORT_F32: return pcc_sort_key_f64((double)*(const float *)p);
    case PCC_SORT_F64: return pcc_sort_key_f64(*(const double *)p);
    case PCC_SORT_KV: return ((const pcc_kv *)p)->key;
    default: abort();
    }
}

typedef struct {
    pcc_sort_type t;
    void *data;
    size_t n;
    int desc;
    pcc_sort_algo algo;
    const _Atomic int *cancel;
    int rc;
} sort_job;

static void run_sort(void *arg)
{
    sort_job *j = arg;
    j->rc = pcc_sort(pool, j->t, j->data, j->n, j->desc, j->algo, j->cancel);
}

/* Sort `data` and compare with the stable reference order byte for byte
 * (so ±0 and NaN payloads must be where a stable sort puts them). */
static void check_sort(pcc_sort_type t, void *data, size_t n, int desc, pcc_sort_algo algo,
                       int use_pool)
{
    size_t es = pcc_sort_elsize(t);
    ref_t *ref = malloc((n ? n : 1) * sizeof *ref);
    char *orig = malloc(n * es + 1);
    CHECK(ref && orig);
    memcpy(orig, data, n * es);
    for (size_t i = 0; i < n; i++) {
        uint64_t k = key_of(t, (char *)data + i * es);
        ref[i].key = desc ? ~k : k;
        ref[i].idx = i;
    }
    qsort(ref, n, sizeof *ref, ref_cmp);
    sort_job j = {t, data, n, desc, algo, NULL, -1};
    if (use_pool)
        CHECK(pcc_pool_install(pool, run_sort, &j) == 0);
    else {
        j.rc = pcc_sort(NULL, t, data, n, desc, algo, NULL);
    }
    CHECK(j.rc == 0);
    for (size_t i = 0; i < n; i++)
        CHECK(memcmp((char *)data + i * es, orig + ref[i].idx * es, es) == 0);
    free(ref);
    free(orig);
}

static void fill(pcc_sort_type t, void *data, size_t n, int pattern)
{
    size_t es = pcc_sort_elsize(t);
    for (size_t i = 0; i < n; i++) {
        uint64_t r = rnd();
        switch (pattern) {
        case 0: break;                          /* random */
        case 1: r = i; break;                   /* sorted */
        case 2: r = n - i; break;               /* reversed */
        case 3: r = r % 4; break;               /* few unique */
        case 4: r = 7; break;                   /* all equal */
        }
        char *p = (char *)data + i * es;
        if (t == PCC_SORT_F64) {
            double v = pattern == 0 ? (double)(int64_t)r / 1e9 : (double)r - (double)n / 2;
            if (pattern == 0 && r % 17 == 0) {
                static const double specials[] = {0.0, -0.0, INFINITY, -INFINITY, NAN, -NAN};
                v = specials[(r >> 8) % 6];
            }
            memcpy(p, &v, 8);
        } else if (t == PCC_SORT_F32) {
            float v = pattern == 0 ? (float)((int32_t)r) / 1e3f : (float)r - (float)n / 2;
            if (pattern == 0 && r % 17 == 0) {
                static const float specials[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, -NAN};
                v = specials[(r >> 8) % 6];
            }
            memcpy(p, &v, 4);
        } else if (t == PCC_SORT_KV) {
            pcc_kv kv = {pattern == 0 ? r % 1000 : r, (void *)(uintptr_t)i}; /* many ties */
            memcpy(p, &kv, sizeof kv);
        } else {
            memcpy(p, &r, es); /* little-endian: low bytes */
        }
    }
}

static void test_all_types(void)
{
    static const size_t sizes[] = {0, 1, 2, 3, 23, 24, 25, 100, 1000, 5000, 70000};
    void *data = malloc(70000 * sizeof(pcc_kv));
    CHECK(data != NULL);
    for (int t = 0; t < PCC_SORT_NTYPES; t++)
        for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
            for (int pattern = 0; pattern < 5; pattern++)
                for (int algo = PCC_SORT_AUTO; algo <= PCC_SORT_MERGE; algo++) {
                    int desc = (int)(rnd() % 2);
                    fill((pcc_sort_type)t, data, sizes[s], pattern);
                    check_sort((pcc_sort_type)t, data, sizes[s], desc, (pcc_sort_algo)algo,
                               sizes[s] % 2 == 0 || sizes[s] > 5000);
                }
    free(data);
}

/* Large inputs take the MSD-then-bucket-LSD path (or its fallback to LSD
 * when the top digit is skewed, e.g. float exponents, few unique keys). */
static void test_msd_path(void)
{
    size_t n = 140000;
    void *data = malloc(n * sizeof(pcc_kv));
    CHECK(data != NULL);
    for (int t = 0; t < PCC_SORT_NTYPES; t++)
        for (int pattern = 0; pattern <= 3; pattern += 3) {
            fill((pcc_sort_type)t, data, n, pattern);
            check_sort((pcc_sort_type)t, data, n, (int)(rnd() % 2), PCC_SORT_RADIX, 1);
        }
    /* spread top digit: MSD buckets proper */
    uint64_t *u = data;
    for (size_t i = 0; i < n; i++)
        u[i] = rnd();
    check_sort(PCC_SORT_U64, data, n, 0, PCC_SORT_AUTO, 1);
    check_sort(PCC_SORT_U64, data, n, 1, PCC_SORT_AUTO, 0);
    free(data);
}

/* Floats crowding a few exponents past a million elements: the first pass
 * buckets through a table from a sample; and keys sharing long prefixes
 * in cache-sized ranges: the in-cache finish falls back from its
 * insertion sort to the MSD recursion. */
static void test_skewed_and_clustered(void)
{
    size_t n = ((size_t)1 << 20) + 5;
    double *d = malloc(n * sizeof(double));
    CHECK(d != NULL);
    for (int t = 0; t < 2; t++) {
        for (size_t i = 0; i < n; i++) {
            double u = 0;
            for (int k = 0; k < 4; k++)
                u += (double)(rnd() >> 11) / 9007199254740992.0;
            if (t == 0)
                d[i] = u - 2.0;
            else
                ((float *)d)[i] = (float)(u - 2.0);
        }
        check_sort(t == 0 ? PCC_SORT_F64 : PCC_SORT_F32, d, n, t, PCC_SORT_AUTO, 1);
    }
    uint64_t *u = (uint64_t *)d;
    size_t sizes[] = {511, 4096, 16384, 16385, 32768, 32769, 40000};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        for (size_t i = 0; i < sizes[s]; i++)
            u[i] = ((rnd() % 3) << 56) | (rnd() >> 40);
        check_sort(PCC_SORT_U64, u, sizes[s], (int)(s % 2), PCC_SORT_AUTO, (int)(s % 2));
    }
    free(d);
}

/* The in-place top digit (what a 1e9-element array takes), switched on
 * from 4096 elements: every type, both directions, pool and sequential. */
static void test_in_place_path(void)
{
    CHECK(setenv("PYCONC_SORT_INPLACE_MIN", "4096", 1) == 0);
    size_t sizes[] = {4095, 4096, 4097, 140000};
    void *data = malloc(140000 * sizeof(pcc_kv));
    CHECK(data != NULL);
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
        for (int t = 0; t < PCC_SORT_NTYPES; t++)
            for (int pattern = 0; pattern <= 3; pattern += 3) {
                fill((pcc_sort_type)t, data, sizes[s], pattern);
                check_sort((pcc_sort_type)t, data, sizes[s], (int)(rnd() % 2), PCC_SORT_AUTO,
                           (int)(s % 2));
            }
    free(data);
    CHECK(unsetenv("PYCONC_SORT_INPLACE_MIN") == 0);
}

/* -0.0/+0.0 are equal (input order kept), NaNs last in input order. */
static void test_float_specials(void)
{
    double a[] = {NAN, 1.0, -0.0, 0.0, -INFINITY, -NAN, INFINITY, -0.0, -1.0};
    for (int algo = PCC_SORT_RADIX; algo <= PCC_SORT_MERGE; algo++) {
        double d[9];
        memcpy(d, a, sizeof a);
        CHECK(pcc_sort(NULL, PCC_SORT_F64, d, 9, 0, (pcc_sort_algo)algo, NULL) == 0);
        CHECK(d[0] == -INFINITY && d[1] == -1.0);
        CHECK(d[2] == 0 && signbit(d[2]) && d[3] == 0 && !signbit(d[3]) && signbit(d[4]));
        CHECK(d[5] == 1.0 && d[6] == INFINITY && isnan(d[7]) && isnan(d[8]));
        CHECK(!signbit(d[7]) && signbit(d[8])); /* NaNs keep their input order */
    }
}

static void cancel_job(void *arg)
{
    sort_job *j = arg;
    j->rc = pcc_sort(pool, j->t, j->data, j->n, j->desc, j->algo, j->cancel);
}

/* A cancelled sort returns -ECANCELED and leaves a permutation. */
static void test_cancel_leaves_permutation(void)
{
    size_t n = 300000;
    int64_t *d = malloc(n * sizeof *d);
    CHECK(d != NULL);
    for (int algo = PCC_SORT_RADIX; algo <= PCC_SORT_MERGE; algo++) {
        for (size_t i = 0; i < n; i++)
            d[i] = (int64_t)i * 7919 % (int64_t)n; /* a permutation of 0..n-1 */
        static _Atomic int flag;
        atomic_store(&flag, 1);
        sort_job j = {PCC_SORT_I64, d, n, 0, (pcc_sort_algo)algo, &flag, 0};
        CHECK(pcc_pool_install(pool, cancel_job, &j) == 0);
        CHECK(j.rc == -ECANCELED);
        char *seen = calloc(n, 1);
        CHECK(seen != NULL);
        for (size_t i = 0; i < n; i++) {
            CHECK(d[i] >= 0 && (size_t)d[i] < n && !seen[d[i]]);
            seen[d[i]] = 1;
        }
        free(seen);
    }
    free(d);
}

/* Cancel at a random moment while the sort runs: either it finished (and is
 * sorted) or it stopped early; both leave a permutation. */
static _Atomic int race_flag;
static void *canceller(void *arg)
{
    long us = (long)(uintptr_t)arg;
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
    atomic_store(&race_flag, 1);
    return NULL;
}

static void test_cancel_race(void)
{
    size_t n = 200000;
    int64_t *d = malloc(n * sizeof *d);
    char *seen = malloc(n);
    CHECK(d != NULL && seen != NULL);
    int cancelled = 0;
    for (int round = 0; round < 12; round++) {
        for (size_t i = 0; i < n; i++)
            d[i] = (int64_t)((i * 7919 + (size_t)round) % n);
        atomic_store(&race_flag, 0);
        pthread_t th;
        CHECK(pthread_create(&th, NULL, canceller, (void *)(uintptr_t)(rnd() % 3000)) == 0);
        sort_job j = {PCC_SORT_I64, d, n, 0, (pcc_sort_algo)(1 + round % 2), &race_flag, 0};
        CHECK(pcc_pool_install(pool, cancel_job, &j) == 0);
        pthread_join(th, NULL);
        CHECK(j.rc == 0 || j.rc == -ECANCELED);
        cancelled += j.rc != 0;
        memset(seen, 0, n);
        for (size_t i = 0; i < n; i++) {
            CHECK(d[i] >= 0 && (size_t)d[i] < n && !seen[d[i]]);
            seen[d[i]] = 1;
            if (j.rc == 0)
                CHECK(d[i] == (int64_t)i);
        }
    }
    printf("test_cancel_race: %d of 12 sorts cancelled mid-way\n", cancelled);
    free(seen);
    free(d);
}

/* The scratch buffer kept between large sorts (sort.c): threads sorting
 * arrays of different sizes at once hand it over, replace it when it is
 * too small and unmap the loser; every sort is still exact, and releasing
 * it leaves nothing kept. */
typedef struct {
    uint64_t seed;
    int ok;
} scratch_job;

static void *scratch_worker(void *arg)
{
    scratch_job *j = arg;
    size_t sizes[] = {((size_t)1 << 20) + 77, ((size_t)3 << 19) + 5, ((size_t)9 << 17) + 1};
    int64_t *d = malloc(sizes[1] * sizeof *d);
    j->ok = d != NULL;
    uint64_t x = j->seed;
    for (int round = 0; round < 3 && j->ok; round++) {
        size_t n = sizes[(round + (int)(j->seed & 1)) % 3];
        uint64_t sum = 0, sum2 = 0;
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            d[i] = (int64_t)x;
            sum += x;
        }
        if (pcc_sort(NULL, PCC_SORT_I64, d, n, round & 1, PCC_SORT_AUTO, NULL) != 0)
            j->ok = 0;
        for (size_t i = 0; i < n; i++) {
            sum2 += (uint64_t)d[i];
            if (i > 0 && ((round & 1) ? d[i - 1] < d[i] : d[i - 1] > d[i]))
                j->ok = 0;
        }
        if (sum != sum2)
            j->ok = 0;
    }
    free(d);
    return NULL;
}

static void test_kept_scratch(void)
{
    pthread_t th[3];
    scratch_job jobs[3] = {{11, 0}, {22, 0}, {33, 0}};
    for (int i = 0; i < 3; i++)
        CHECK(pthread_create(&th[i], NULL, scratch_worker, &jobs[i]) == 0);
    for (int i = 0; i < 3; i++) {
        CHECK(pthread_join(th[i], NULL) == 0);
        CHECK(jobs[i].ok);
    }
    CHECK(pcc_sort_release_scratch() >= ((size_t)1 << 20) * sizeof(int64_t));
    CHECK(pcc_sort_release_scratch() == 0);
    /* small sorts never keep one */
    int64_t small[1000];
    for (size_t i = 0; i < 1000; i++)
        small[i] = (int64_t)rnd();
    CHECK(pcc_sort(NULL, PCC_SORT_I64, small, 1000, 0, PCC_SORT_RADIX, NULL) == 0);
    CHECK(pcc_sort_release_scratch() == 0);
}

int main(void)
{
    CHECK(pcc_pool_new(2, NULL, &pool) == 0);
    test_kept_scratch();
    test_float_specials();
    test_all_types();
    test_msd_path();
    test_skewed_and_clustered();
    test_in_place_path();
    test_cancel_leaves_permutation();
    test_cancel_race();
    CHECK(pcc_sort(NULL, PCC_SORT_NTYPES, NULL, 0, 0, PCC_SORT_AUTO, NULL) == -EINVAL);
    pcc_pool_shutdown(pool);
    CHECK(pcc_pool_wait_exit(pool, PCC_FOREVER) == 0);
    pcc_pool_release(pool);
    printf("test_sort: all passed\n");
    return 0;
}
