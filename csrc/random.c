/* random.c — a seedable generator (xoshiro256**, seeded through splitmix64) and the
 * random tensors drawn from it. Each generator is its own state: no globals. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>

struct tg_rng {
    uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next_u64(tg_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1) with 53 random bits. */
static double next_double(tg_rng *r) { return (double)(next_u64(r) >> 11) * 0x1.0p-53; }

void tg_rng_seed(tg_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

tg_rng *tg_rng_new(uint64_t seed) {
    tg_rng *r = tg_malloc(sizeof *r);
    if (!r) {
        tg_fail(TG_ERR_NOMEM, "rng: out of memory");
        return NULL;
    }
    tg_rng_seed(r, seed);
    return r;
}

void tg_rng_free(tg_rng *r) { tg_free(r); }

tg_tensor *tg_rand(tg_rng *r, tg_dtype dtype, int ndim, const int64_t *shape, double low,
                   double high) {
    if (dtype != TG_FLOAT32 && dtype != TG_FLOAT64) {
        tg_fail(TG_ERR_DTYPE, "rand: random tensors must be floating, got %s", tg_dtype_name(dtype));
        return NULL;
    }
    if (!(low <= high) || !isfinite(low) || !isfinite(high)) {
        tg_fail(TG_ERR_ARG, "rand: need finite low <= high, got [%g, %g)", low, high);
        return NULL;
    }
    tg_tensor *t = tg_tensor_new(dtype, ndim, shape, 0);
    if (!t) return NULL;
    if (dtype == TG_FLOAT32) {
        float *p = t->data;
        for (int64_t i = 0; i < t->numel; i++) {
            /* 24 random bits: exactly representable, so the draw never rounds up to high */
            double u = (double)(next_u64(r) >> 40) * 0x1.0p-24;
            float v = (float)(low + (high - low) * u);
            p[i] = v < (float)high || low == high ? v : (float)low;
        }
    } else {
        double *p = t->data;
        for (int64_t i = 0; i < t->numel; i++) p[i] = low + (high - low) * next_double(r);
    }
    return t;
}

tg_tensor *tg_randn(tg_rng *r, tg_dtype dtype, int ndim, const int64_t *shape, double mean,
                    double std) {
    if (dtype != TG_FLOAT32 && dtype != TG_FLOAT64) {
        tg_fail(TG_ERR_DTYPE, "randn: random tensors must be floating, got %s", tg_dtype_name(dtype));
        return NULL;
    }
    if (!(std >= 0) || !isfinite(mean) || !isfinite(std)) {
        tg_fail(TG_ERR_ARG, "randn: need a finite mean and std >= 0, got %g, %g", mean, std);
        return NULL;
    }
    tg_tensor *t = tg_tensor_new(dtype, ndim, shape, 0);
    if (!t) return NULL;
    /* Box-Muller, both outputs used. */
    for (int64_t i = 0; i < t->numel; i += 2) {
        double u1 = 1.0 - next_double(r); /* (0, 1]: log is finite */
        double u2 = next_double(r);
        double rad = sqrt(-2.0 * log(u1)), ang = 6.283185307179586 * u2;
        double z[2] = {rad * cos(ang), rad * sin(ang)};
        for (int k = 0; k < 2 && i + k < t->numel; k++) {
            if (dtype == TG_FLOAT32) ((float *)t->data)[i + k] = (float)(mean + std * z[k]);
            else ((double *)t->data)[i + k] = mean + std * z[k];
        }
    }
    return t;
}

tg_status tg_rng_permutation(tg_rng *r, int64_t n, int64_t *out) {
    if (n < 0) return tg_fail(TG_ERR_ARG, "permutation: negative length %lld", (long long)n);
    for (int64_t i = 0; i < n; i++) out[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        /* unbiased draw in [0, i] by rejection */
        uint64_t bound = (uint64_t)i + 1, limit = UINT64_MAX - UINT64_MAX % bound, x;
        do x = next_u64(r);
        while (x >= limit);
        int64_t j = (int64_t)(x % bound), tmp = out[i];
        out[i] = out[j];
        out[j] = tmp;
    }
    return TG_OK;
}
