/* tensor.c — errors, storage, tensor creation, reference counting, grad mode. */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__unix__) || defined(__APPLE__)
#include <sched.h>
#include <unistd.h>
#define TG_YIELD() sched_yield()
#else
#define TG_YIELD() ((void)0)
#endif

/* ------------------------------------------------------------------ errors (thread-local) */

static _Thread_local tg_status last_status = TG_OK;
static _Thread_local char last_message[512];

tg_status tg_last_status(void) { return last_status; }
const char *tg_last_error(void) { return last_message; }
void tg_clear_error(void) {
    last_status = TG_OK;
    last_message[0] = '\0';
}

tg_status tg_fail(tg_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_message, sizeof last_message, fmt, ap);
    va_end(ap);
    last_status = status;
    return status;
}

const char *tg_shape_str(int ndim, const int64_t *shape, char *buf, size_t n) {
    size_t used = 0;
    used += (size_t)snprintf(buf + used, n - used, "(");
    for (int i = 0; i < ndim && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (used < n) used += (size_t)snprintf(buf + used, n - used, ndim == 1 ? ",)" : ")");
    return buf;
}

/* ------------------------------------------------------------------ the allocator
 *
 * Thread-local counters, so threads never share them (no global mutable state) and a
 * test's countdown only affects allocations made on its own thread (a gemm worker's
 * packing buffer is made on the worker: never injected, and it falls back anyway). */

static _Thread_local int64_t alloc_fail_in = 0; /* allocations until a failure; 0 = off */
static _Thread_local int64_t alloc_count = 0;   /* allocations attempted on this thread */
static _Thread_local int64_t alloc_live = 0;    /* blocks allocated minus blocks freed */

#if defined(__GNUC__) || defined(__clang__)
#define TG_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define TG_UNLIKELY(x) (x)
#endif

/* Counts one allocation; whether it is the one to fail. */
static inline int alloc_injected_failure(void) {
    alloc_count++;
    if (TG_UNLIKELY(alloc_fail_in != 0)) return --alloc_fail_in == 0;
    return 0;
}

void *tg_malloc(size_t size) {
    if (alloc_injected_failure()) return NULL;
    void *p = malloc(size);
    if (p) alloc_live++;
    return p;
}

void *tg_calloc(size_t count, size_t size) {
    if (alloc_injected_failure()) return NULL;
    void *p = calloc(count, size);
    if (p) alloc_live++;
    return p;
}

void *tg_realloc(void *p, size_t size) {
    if (alloc_injected_failure()) return NULL;
    void *q = realloc(p, size);
    if (q && !p) alloc_live++;
    return q;
}

void tg_free(void *p) {
    if (!p) return;
    alloc_live--;
    free(p);
}

void tg_debug_fail_allocation(int64_t n) { alloc_fail_in = n > 0 ? n : 0; }
int64_t tg_debug_allocations(void) { return alloc_count; }
int64_t tg_debug_live_allocations(void) { return alloc_live; }

/* ------------------------------------------------------------------ tensor storage
 *
 * A tensor's data is 64-byte aligned (a cache line, an AVX-512 vector). Blocks of at
 * least STORAGE_CACHE_MIN bytes come in size classes (eight per power of two, so at most
 * 1/8 is unused) and, when freed, go to a bounded cache of the freeing thread instead of
 * back to the C library: a training step frees and asks again for blocks of the same
 * sizes every step, and a large block that is returned is handed out again later as
 * fresh pages the kernel must fault in and zero (measured: a third of an elementwise op
 * on 4096 x 4096 floats). The cache holds at most STORAGE_CACHE_SLOTS blocks and the
 * thread's limit in bytes (tg_set_storage_cache_limit; default 256 MiB, 0 turns it off),
 * dropping the oldest first; tg_storage_cache_release empties it, and a thread's cache is
 * emptied when the thread exits. Per thread, so threads never share or lock it (no global
 * mutable state). Counting: a cached block counts as freed, a reused one as a new
 * allocation (tg_debug_allocations, tg_debug_live_allocations and the failure injection
 * see the same sequence with and without the cache). */
#define STORAGE_ALIGN 64
#define STORAGE_CACHE_MIN ((size_t)1 << 16)
#define STORAGE_CACHE_SLOTS 32
#define STORAGE_CACHE_DEFAULT_LIMIT ((size_t)256 << 20)

typedef struct {
    void *block[STORAGE_CACHE_SLOTS]; /* oldest first */
    size_t cap[STORAGE_CACHE_SLOTS];
    int n;
    size_t bytes;
    size_t limit;
    int limit_set;  /* 0: the default limit */
    int registered; /* the exit destructor knows this thread's cache */
} storage_cache;

static _Thread_local storage_cache tls_cache;

static size_t cache_limit(const storage_cache *c) {
    return c->limit_set ? c->limit : STORAGE_CACHE_DEFAULT_LIMIT;
}

/* nbytes rounded up to its size class: below STORAGE_CACHE_MIN, itself */
static size_t storage_class(size_t nbytes) {
    if (nbytes < STORAGE_CACHE_MIN) return nbytes;
    size_t top = (size_t)1 << 16;
    while (top <= nbytes / 2) top <<= 1; /* top <= nbytes < 2 top */
    size_t step = top / 8;
    if (nbytes > SIZE_MAX - step) return nbytes;
    return (nbytes + step - 1) / step * step;
}

static void cache_drop_oldest(storage_cache *c) {
    free(c->block[0]);
    c->bytes -= c->cap[0];
    c->n--;
    memmove(c->block, c->block + 1, (size_t)c->n * sizeof c->block[0]);
    memmove(c->cap, c->cap + 1, (size_t)c->n * sizeof c->cap[0]);
}

static void cache_empty(storage_cache *c) {
    while (c->n) cache_drop_oldest(c);
}

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
static pthread_key_t cache_key;
static int cache_key_ok = 0;
static pthread_once_t cache_key_once = PTHREAD_ONCE_INIT;
/* A later destructor of the exiting thread may still free a tensor: registered = 0 makes
 * that block register the cache again, so the destructor runs once more (POSIX repeats
 * destructors whose value was set again). */
static void cache_key_destructor(void *p) {
    storage_cache *c = p;
    cache_empty(c);
    c->registered = 0;
}
static void cache_key_init(void) {
    cache_key_ok = pthread_key_create(&cache_key, cache_key_destructor) == 0;
}
/* Whether this thread's cache will be emptied when the thread exits (else: no caching) */
static int cache_register(storage_cache *c) {
    if (c->registered) return 1;
    pthread_once(&cache_key_once, cache_key_init);
    if (!cache_key_ok || pthread_setspecific(cache_key, c) != 0) return 0;
    return c->registered = 1;
}
#else
static int cache_register(storage_cache *c) { (void)c; return 0; }
#endif

/* A block of at least cap bytes past a 64-byte boundary (zeroed up to nbytes if asked):
 * *block is what to free, the return value the aligned data. NULL when out of memory. */
static void *storage_alloc(size_t nbytes, size_t cap, int zero, void **block) {
    if (alloc_injected_failure()) return NULL;
    storage_cache *c = &tls_cache;
    if (cap >= STORAGE_CACHE_MIN) {
        for (int k = c->n - 1; k >= 0; k--) {
            if (c->cap[k] != cap) continue;
            *block = c->block[k];
            c->bytes -= cap;
            c->n--;
            memmove(c->block + k, c->block + k + 1, (size_t)(c->n - k) * sizeof c->block[0]);
            memmove(c->cap + k, c->cap + k + 1, (size_t)(c->n - k) * sizeof c->cap[0]);
            alloc_live++;
            void *data = (void *)(((uintptr_t)*block + STORAGE_ALIGN - 1) &
                                  ~(uintptr_t)(STORAGE_ALIGN - 1));
            if (zero) memset(data, 0, nbytes);
            return data;
        }
    }
    if (cap > SIZE_MAX - STORAGE_ALIGN) return NULL;
    *block = zero ? calloc(cap + STORAGE_ALIGN, 1) : malloc(cap + STORAGE_ALIGN);
    if (!*block) return NULL;
    alloc_live++;
    return (void *)(((uintptr_t)*block + STORAGE_ALIGN - 1) & ~(uintptr_t)(STORAGE_ALIGN - 1));
}

static void storage_free(void *block, size_t cap) {
    if (!block) return;
    alloc_live--;
    storage_cache *c = &tls_cache;
    const size_t limit = cache_limit(c);
    if (cap < STORAGE_CACHE_MIN || cap > limit || !cache_register(c)) {
        free(block);
        return;
    }
    while (c->n && (c->n == STORAGE_CACHE_SLOTS || c->bytes + cap > limit)) cache_drop_oldest(c);
    c->block[c->n] = block;
    c->cap[c->n] = cap;
    c->n++;
    c->bytes += cap;
}

void tg_set_storage_cache_limit(size_t bytes) {
    storage_cache *c = &tls_cache;
    c->limit = bytes;
    c->limit_set = 1;
    while (c->n && c->bytes > bytes) cache_drop_oldest(c);
}

size_t tg_get_storage_cache_limit(void) { return cache_limit(&tls_cache); }

size_t tg_storage_cache_bytes(void) { return tls_cache.bytes; }

void tg_storage_cache_release(void) { cache_empty(&tls_cache); }

/* ------------------------------------------------------------------ dtypes */

size_t tg_dtype_size(tg_dtype dtype) {
    switch (dtype) {
    case TG_FLOAT32: return 4;
    case TG_FLOAT64: return 8;
    case TG_INT64: return 8;
    case TG_BOOL: return 1;
    default: return 0;
    }
}

const char *tg_dtype_name(tg_dtype dtype) {
    switch (dtype) {
    case TG_FLOAT32: return "float32";
    case TG_FLOAT64: return "float64";
    case TG_INT64: return "int64";
    case TG_BOOL: return "bool";
    default: return "invalid";
    }
}

/* ------------------------------------------------------------------ grad mode & threads */

static _Thread_local int grad_disabled = 0; /* 0 means enabled, so the default is on */
static _Thread_local int nthreads_setting = 0; /* 0 means "default" */

int tg_set_grad_enabled(int enabled) {
    int previous = !grad_disabled;
    grad_disabled = !enabled;
    return previous;
}
int tg_is_grad_enabled(void) { return !grad_disabled; }

static long online_cpus(void) {
    long n = 1;
#if defined(_SC_NPROCESSORS_ONLN)
    n = sysconf(_SC_NPROCESSORS_ONLN);
#endif
    return n < 1 ? 1 : n;
}

static int default_nthreads(void) {
    long n = online_cpus();
    return n > 8 ? 8 : (int)n;
}

tg_status tg_set_num_threads(int n) {
    if (n < 1) return tg_fail(TG_ERR_ARG, "set_num_threads: need at least 1 thread, got %d", n);
    /* A sane bound: set_num_threads(10**9) must not start dozens of threads on a 2-core
     * machine. 8 stays allowed anywhere (oversubscribing a small machine on purpose,
     * e.g. to check results do not depend on the count). */
    long cap = online_cpus();
    if (cap < 8) cap = 8;
    nthreads_setting = n > cap ? (int)cap : n;
    return TG_OK;
}
int tg_get_num_threads(void) {
    /* sysconf reads /proc on Linux (microseconds): ask once per thread, then remember */
    if (!nthreads_setting) nthreads_setting = default_nthreads();
    return nthreads_setting;
}
int tg_get_nthreads_internal(void) { return tg_get_num_threads(); }

/* ------------------------------------------------------------------ creation */

/* Bytes of physical memory, or 0 if unknown. */
static size_t physical_memory(void) {
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGESIZE)
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0 && (uint64_t)pages <= SIZE_MAX / (uint64_t)page)
        return (size_t)pages * (size_t)page;
#endif
    return 0;
}

static tg_status check_shape(const char *op, int ndim, const int64_t *shape, int64_t *numel) {
    if (ndim < 0 || ndim > TG_MAX_DIMS)
        return tg_fail(TG_ERR_SHAPE, "%s: ndim must be in [0, %d], got %d", op, TG_MAX_DIMS, ndim);
    if (ndim > 0 && !shape) return tg_fail(TG_ERR_ARG, "%s: shape is NULL", op);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            char buf[TG_SHAPE_BUF];
            return tg_fail(TG_ERR_SHAPE, "%s: negative size in shape %s", op,
                           tg_shape_str(ndim, shape, buf, sizeof buf));
        }
        if (shape[i] != 0 && n > INT64_MAX / shape[i]) {
            char buf[TG_SHAPE_BUF];
            return tg_fail(TG_ERR_NOMEM, "%s: shape %s has too many elements", op,
                           tg_shape_str(ndim, shape, buf, sizeof buf));
        }
        n *= shape[i];
    }
    *numel = n;
    return TG_OK;
}

tg_tensor *tg_tensor_new(tg_dtype dtype, int ndim, const int64_t *shape, int zero) {
    size_t elsize = tg_dtype_size(dtype);
    if (!elsize) {
        tg_fail(TG_ERR_DTYPE, "tensor: invalid dtype %d", (int)dtype);
        return NULL;
    }
    int64_t numel = 0;
    if (check_shape("tensor", ndim, shape, &numel) != TG_OK) return NULL;
    if ((uint64_t)numel > (uint64_t)(PTRDIFF_MAX / 2) / elsize) {
        char buf[TG_SHAPE_BUF];
        tg_fail(TG_ERR_NOMEM, "tensor: shape %s of %s is too large to allocate",
                tg_shape_str(ndim, shape, buf, sizeof buf), tg_dtype_name(dtype));
        return NULL;
    }
    size_t nbytes = (size_t)numel * elsize;
    /* More bytes than the machine has: fail now. With memory overcommit (Linux
     * vm.overcommit_memory=1) malloc would succeed and the first write would get the
     * process killed instead of raising MemoryError. */
    size_t phys = nbytes > ((size_t)1 << 30) ? physical_memory() : 0;
    if (phys && nbytes > phys) {
        char buf[TG_SHAPE_BUF];
        tg_fail(TG_ERR_NOMEM,
                "tensor: shape %s of %s needs %zu bytes, more than this machine's %zu bytes "
                "of memory", tg_shape_str(ndim, shape, buf, sizeof buf), tg_dtype_name(dtype),
                nbytes, phys);
        return NULL;
    }
    tg_tensor *t = tg_malloc(sizeof *t);
    tg_storage *s = tg_malloc(sizeof *s);
    /* Allocate at least one element so data is never NULL. */
    const size_t want = nbytes ? nbytes : elsize, cap = storage_class(want);
    void *block = NULL, *data = t && s ? storage_alloc(want, cap, zero, &block) : NULL;
    if (!t || !s || !data) {
        tg_free(t);
        tg_free(s);
        storage_free(block, cap);
        char buf[TG_SHAPE_BUF];
        tg_fail(TG_ERR_NOMEM, "tensor: out of memory allocating %zu bytes for shape %s (%s)",
                nbytes, tg_shape_str(ndim, shape, buf, sizeof buf), tg_dtype_name(dtype));
        return NULL;
    }
    s->refcount = 1;
    s->data = data;
    s->block = block;
    s->cap = cap;
    s->nbytes = nbytes;
    s->version = 0;
    memset(t, 0, sizeof *t);
    t->refcount = 1;
    t->storage = s;
    t->data = data;
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->numel = numel;
    return t;
}

tg_tensor *tg_tensor_new_like(const tg_tensor *t, int zero) {
    return tg_tensor_new(t->dtype, t->ndim, t->shape, zero);
}

tg_tensor *tg_tensor_view(tg_tensor *t, int ndim, const int64_t *shape) {
    tg_tensor *v = tg_malloc(sizeof *v);
    if (!v) {
        tg_fail(TG_ERR_NOMEM, "view: out of memory");
        return NULL;
    }
    memset(v, 0, sizeof *v);
    v->refcount = 1;
    v->storage = t->storage;
    TG_REF_INC(&t->storage->refcount);
    v->data = t->data;
    v->dtype = t->dtype;
    v->ndim = ndim;
    for (int i = 0; i < ndim; i++) v->shape[i] = shape[i];
    v->numel = t->numel;
    return v;
}

tg_tensor *tg_zeros(tg_dtype dtype, int ndim, const int64_t *shape) {
    return tg_tensor_new(dtype, ndim, shape, 1);
}

/* Whether a double converts to int64 without overflow (C leaves the cast undefined for
 * NaN, infinities and values outside [-2^63, 2^63)). The fraction is truncated. */
static int fits_int64(double v) { return v >= -9223372036854775808.0 && v < 9223372036854775808.0; }

tg_tensor *tg_full(tg_dtype dtype, int ndim, const int64_t *shape, double value) {
    if (dtype == TG_INT64 && !fits_int64(value)) {
        tg_fail(TG_ERR_ARG, "full: fill value %g cannot be converted to int64 without overflow",
                value);
        return NULL;
    }
    tg_tensor *t = tg_tensor_new(dtype, ndim, shape, 0);
    if (!t) return NULL;
    if (dtype == TG_BOOL) {
        memset(t->data, value != 0, (size_t)t->numel);
    } else if (dtype == TG_INT64) {
        int64_t *p = t->data;
        for (int64_t i = 0; i < t->numel; i++) p[i] = (int64_t)value;
    } else {
        TG_FLOAT_SWITCH(dtype, {
            T *p = t->data;
            for (int64_t i = 0; i < t->numel; i++) p[i] = (T)value;
        });
    }
    return t;
}

tg_tensor *tg_from_data(tg_dtype dtype, int ndim, const int64_t *shape, const void *data) {
    tg_tensor *t = tg_tensor_new(dtype, ndim, shape, 0);
    if (!t) return NULL;
    if (t->numel) {
        if (!data) {
            tg_tensor_release(t);
            tg_fail(TG_ERR_ARG, "from_data: data is NULL");
            return NULL;
        }
        memcpy(t->data, data, t->storage->nbytes);
    }
    return t;
}

tg_tensor *tg_arange(tg_dtype dtype, double start, double step, int64_t n) {
    if (n < 0) {
        tg_fail(TG_ERR_ARG, "arange: negative length %lld", (long long)n);
        return NULL;
    }
    if (dtype == TG_BOOL) {
        tg_fail(TG_ERR_DTYPE, "arange: bool is not a valid dtype for a range");
        return NULL;
    }
    tg_tensor *t = tg_tensor_new(dtype, 1, &n, 0);
    if (!t) return NULL;
    if (dtype == TG_INT64) {
        int64_t *p = t->data;
        for (int64_t i = 0; i < n; i++) {
            double v = start + step * (double)i;
            if (!fits_int64(v)) {
                tg_tensor_release(t);
                tg_fail(TG_ERR_ARG, "arange: value %g (element %lld) cannot be converted to "
                        "int64 without overflow", v, (long long)i);
                return NULL;
            }
            p[i] = (int64_t)v;
        }
    } else {
        TG_FLOAT_SWITCH(dtype, {
            T *p = t->data;
            for (int64_t i = 0; i < n; i++) p[i] = (T)(start + step * (double)i);
        });
    }
    return t;
}

/* ------------------------------------------------------------------ reference counting */

void tg_tensor_retain(tg_tensor *t) {
    if (t) TG_REF_INC(&t->refcount);
}

/* Free x (refcount already 0) and write the references it held into children
 * (at most TG_NODE_MAX_INPUTS + 3 of them); returns how many. */
static int free_tensor(tg_tensor *x, tg_tensor **children) {
    int k = 0;
    if (x->grad) children[k++] = x->grad;
    tg_node *n = x->node;
    if (n && TG_REF_DEC(&n->refcount) == 0) {
        for (int i = 0; i < n->n_inputs; i++)
            if (n->inputs[i]) children[k++] = n->inputs[i];
        if (n->saved) children[k++] = n->saved;
        if (n->priv) children[k++] = n->priv;
        if (n->grad) children[k++] = n->grad;
        tg_free(n);
    }
    if (TG_REF_DEC(&x->storage->refcount) == 0) {
        storage_free(x->storage->block, x->storage->cap);
        tg_free(x->storage);
    }
    tg_free(x);
    return k;
}

/* Release iteratively: freeing a tensor may free its node, which releases the node's
 * inputs, and so on down a long chain. An explicit stack keeps the C stack flat. */
void tg_tensor_release(tg_tensor *t) {
    if (!t) return;
    enum { LOCAL = 64 };
    tg_tensor *local[LOCAL];
    tg_tensor **stack = local;
    int64_t cap = LOCAL, top = 0;
    stack[top++] = t;
    while (top > 0) {
        tg_tensor *x = stack[--top];
        if (TG_REF_DEC(&x->refcount) > 0) continue;
        tg_tensor *children[TG_NODE_MAX_INPUTS + 4];
        int k = free_tensor(x, children);
        for (int i = 0; i < k; i++) {
            if (top == cap) {
                tg_tensor **grown = tg_malloc((size_t)cap * 2 * sizeof *grown);
                if (!grown) {
                    /* No memory for a bigger stack: release this child recursively. */
                    tg_tensor_release(children[i]);
                    continue;
                }
                memcpy(grown, stack, (size_t)top * sizeof *grown);
                if (stack != local) tg_free(stack);
                stack = grown;
                cap *= 2;
            }
            stack[top++] = children[i];
        }
    }
    if (stack != local) tg_free(stack);
}

/* ------------------------------------------------------------------ grad locks */

#if defined(_MSC_VER) && !defined(__clang__)
#define TG_LOCK_TRY(p) (_InterlockedExchange((volatile long *)(p), 1) == 0)
#define TG_LOCK_HELD(p) (*(volatile int *)(p) != 0)
#define TG_LOCK_FREE(p) ((void)_InterlockedExchange((volatile long *)(p), 0))
#else
#define TG_LOCK_TRY(p) (__atomic_exchange_n((p), 1, __ATOMIC_ACQUIRE) == 0)
#define TG_LOCK_HELD(p) (__atomic_load_n((p), __ATOMIC_RELAXED) != 0)
#define TG_LOCK_FREE(p) __atomic_store_n((p), 0, __ATOMIC_RELEASE)
#endif

void tg_grad_lock(tg_tensor *t) {
    if (TG_LOCK_TRY(&t->grad_lock)) return; /* the common, uncontended case */
    for (;;) {
        /* Wait with plain loads (no cache-line ping-pong); the holder may be adding a
         * large gradient, so give the CPU away rather than spin for long. */
        for (int spins = 0; TG_LOCK_HELD(&t->grad_lock); spins++)
            if (spins >= 64) {
                TG_YIELD();
                spins = 0;
            }
        if (TG_LOCK_TRY(&t->grad_lock)) return;
    }
}

void tg_grad_unlock(tg_tensor *t) { TG_LOCK_FREE(&t->grad_lock); }

/* ------------------------------------------------------------------ accessors */

tg_dtype tg_tensor_dtype(const tg_tensor *t) { return t->dtype; }
int tg_tensor_ndim(const tg_tensor *t) { return t->ndim; }
const int64_t *tg_tensor_shape(const tg_tensor *t) { return t->shape; }
int64_t tg_tensor_numel(const tg_tensor *t) { return t->numel; }
void *tg_tensor_data(tg_tensor *t) { return t->data; }

/* memmove: the caller's buffer may be (or overlap) the tensor's own data, e.g.
 * load_state_dict(model.state_dict()) copies each parameter from a view of itself. */
tg_status tg_tensor_copy_to(const tg_tensor *t, void *out) {
    if (t->numel) memmove(out, t->data, (size_t)t->numel * tg_dtype_size(t->dtype));
    return TG_OK;
}

tg_status tg_tensor_copy_from(tg_tensor *t, const void *data) {
    tg_status st = tg_capture_guard("copy_from (an in-place write)", t, NULL);
    if (st) return st;
    if (t->numel) memmove(t->data, data, (size_t)t->numel * tg_dtype_size(t->dtype));
    tg_bump_version(t);
    return TG_OK;
}

int64_t tg_tensor_version(const tg_tensor *t) { return tg_storage_version(t); }

tg_status tg_tensor_item(const tg_tensor *t, double *out) {
    if (t->numel != 1) {
        char buf[TG_SHAPE_BUF];
        return tg_fail(TG_ERR_SHAPE,
                       "item: a tensor with %lld elements (shape %s) cannot be converted to a "
                       "Python scalar; it needs exactly one element",
                       (long long)t->numel, tg_shape_str(t->ndim, t->shape, buf, sizeof buf));
    }
    switch (t->dtype) {
    case TG_FLOAT32: *out = *(const float *)t->data; break;
    case TG_FLOAT64: *out = *(const double *)t->data; break;
    case TG_BOOL: *out = *(const unsigned char *)t->data ? 1.0 : 0.0; break;
    default: *out = (double)*(const int64_t *)t->data; break;
    }
    return TG_OK;
}

int tg_tensor_requires_grad(const tg_tensor *t) { return t->requires_grad; }

tg_status tg_tensor_set_requires_grad(tg_tensor *t, int requires_grad) {
    if (t->node)
        return tg_fail(TG_ERR_STATE,
                       "requires_grad can only be changed on leaf tensors; this one was made by "
                       "'%s' (use detach() to get a leaf)",
                       tg_op_rows[t->node->op]->name);
    if (requires_grad && t->dtype != TG_FLOAT32 && t->dtype != TG_FLOAT64)
        return tg_fail(TG_ERR_DTYPE, "only floating point tensors can require gradients (dtype %s)",
                       tg_dtype_name(t->dtype));
    t->requires_grad = requires_grad ? 1 : 0;
    return TG_OK;
}

int tg_tensor_is_leaf(const tg_tensor *t) { return t->node == NULL; }

const char *tg_tensor_op_name(const tg_tensor *t) {
    return t->node ? tg_op_rows[t->node->op]->name : NULL;
}

tg_tensor *tg_tensor_grad(const tg_tensor *t) {
    tg_tensor *m = (tg_tensor *)t; /* the lock is not part of the value */
    tg_grad_lock(m);
    tg_tensor *g = m->grad;
    if (g) TG_REF_INC(&g->refcount);
    tg_grad_unlock(m);
    return g;
}

/* Whether target is reached from `from` by following .grad links (from itself included).
 * The chain has no cycle (set_grad refuses to make one), so this ends. Each link is
 * read under its tensor's lock and retained before the lock is let go, so a concurrent
 * set_grad cannot free a link under us. */
static int grad_chain_reaches(tg_tensor *from, const tg_tensor *target) {
    tg_tensor *cur = from;
    tg_tensor_retain(cur);
    int found = 0;
    while (cur) {
        if (cur == target) {
            found = 1;
            break;
        }
        tg_grad_lock(cur);
        tg_tensor *next = cur->grad;
        tg_tensor_retain(next);
        tg_grad_unlock(cur);
        tg_tensor_release(cur);
        cur = next;
    }
    tg_tensor_release(cur);
    return found;
}

tg_status tg_tensor_set_grad(tg_tensor *t, tg_tensor *grad) {
    if (tg_capture_active() && tg_capture_guard("assigning .grad", t, grad)) return TG_ERR_STATE;
    return tg_set_grad_internal(t, grad);
}

tg_status tg_set_grad_internal(tg_tensor *t, tg_tensor *grad) {
    if (grad) {
        if (grad->dtype != t->dtype || grad->ndim != t->ndim ||
            memcmp(grad->shape, t->shape, (size_t)t->ndim * sizeof(int64_t)) != 0) {
            char b1[TG_SHAPE_BUF], b2[TG_SHAPE_BUF];
            return tg_fail(TG_ERR_SHAPE,
                           "grad: assigned gradient of shape %s (%s) does not match tensor of "
                           "shape %s (%s)",
                           tg_shape_str(grad->ndim, grad->shape, b1, sizeof b1),
                           tg_dtype_name(grad->dtype), tg_shape_str(t->ndim, t->shape, b2, sizeof b2),
                           tg_dtype_name(t->dtype));
        }
        /* PyTorch refuses w.grad = w. A gradient holding a reference back to t (its own
         * .grad chain, or a record whose inputs lead back to t) would make a reference
         * cycle that is never freed: refuse those too. A tensor sharing t's storage
         * (w.detach()) is accepted, as in PyTorch: backward then adds into that storage. */
        if (grad == t)
            return tg_fail(TG_ERR_STATE, "grad: can't assign a tensor as its own grad");
        if (grad->node)
            return tg_fail(TG_ERR_STATE,
                           "grad: the assigned gradient was made by '%s' (it has a grad_fn); "
                           "tapegrad keeps only leaf gradients: assign its .detach()",
                           tg_op_rows[grad->node->op]->name);
        if (grad_chain_reaches(grad, t))
            return tg_fail(TG_ERR_STATE,
                           "grad: the assigned gradient's own .grad chain leads back to this "
                           "tensor (a reference cycle); assign a tensor without that link");
        TG_REF_INC(&grad->refcount);
    }
    tg_grad_lock(t);
    tg_tensor *old = t->grad;
    t->grad = grad;
    tg_grad_unlock(t);
    tg_tensor_release(old); /* outside the lock: freeing may cascade */
    return TG_OK;
}

void tg_tensor_zero_grad(tg_tensor *t) {
    tg_grad_lock(t);
    if (t->grad && t->grad->numel)
        memset(t->grad->data, 0, (size_t)t->grad->numel * tg_dtype_size(t->grad->dtype));
    tg_grad_unlock(t);
}

tg_tensor *tg_detach(tg_tensor *t) {
    /* a program would keep reading the captured step's values through the copy's data */
    if (tg_capture_guard("detach", t, NULL)) return NULL;
    return tg_tensor_view(t, t->ndim, t->shape);
}

tg_tensor *tg_clone_data(const tg_tensor *t) {
    return tg_from_data(t->dtype, t->ndim, t->shape, t->data);
}

tg_status tg_check_finite(const tg_tensor *t, const char *name) {
    if (t->dtype != TG_FLOAT32 && t->dtype != TG_FLOAT64) return TG_OK;
    int64_t bad = -1;
    TG_FLOAT_SWITCH(t->dtype, {
        const T *p = t->data;
        for (int64_t i = 0; i < t->numel; i++)
            if (!isfinite(p[i])) {
                bad = i;
                break;
            }
    });
    if (bad >= 0)
        return tg_fail(TG_ERR_VALUE, "%s: non-finite value (NaN or Inf) at flat index %lld",
                       name ? name : "tensor", (long long)bad);
    return TG_OK;
}

/* ------------------------------------------------------------------ op helpers */

tg_status tg_check_float_meta(const char *op, const tg_meta *m) {
    if (m->dtype != TG_FLOAT32 && m->dtype != TG_FLOAT64)
        return tg_fail(TG_ERR_DTYPE, "%s: expected a floating tensor (float32 or float64), got %s",
                       op, tg_dtype_name(m->dtype));
    return TG_OK;
}

tg_status tg_check_float(const char *op, const tg_tensor *t) {
    if (!t) return tg_fail(TG_ERR_ARG, "%s: got a NULL tensor", op);
    tg_meta m;
    tg_meta_of(t, &m);
    return tg_check_float_meta(op, &m);
}

tg_status tg_check_same_dtype_meta(const char *op, const tg_meta *a, const tg_meta *b) {
    if (a->dtype != b->dtype) {
        char b1[TG_SHAPE_BUF], b2[TG_SHAPE_BUF];
        return tg_fail(TG_ERR_DTYPE, "%s: dtype mismatch, %s %s and %s %s (convert one first)", op,
                       tg_dtype_name(a->dtype), tg_shape_str(a->ndim, a->shape, b1, sizeof b1),
                       tg_dtype_name(b->dtype), tg_shape_str(b->ndim, b->shape, b2, sizeof b2));
    }
    return TG_OK;
}

tg_status tg_check_same_dtype(const char *op, const tg_tensor *a, const tg_tensor *b) {
    tg_meta ma, mb;
    tg_meta_of(a, &ma);
    tg_meta_of(b, &mb);
    return tg_check_same_dtype_meta(op, &ma, &mb);
}

tg_status tg_normalize_dim(const char *op, int ndim, int *dim) {
    int lo = ndim ? -ndim : -1, hi = ndim ? ndim - 1 : 0;
    if (*dim < lo || *dim > hi)
        return tg_fail(TG_ERR_INDEX, "%s: dim %d out of range for a %d-d tensor (expected [%d, %d])",
                       op, *dim, ndim, lo, hi);
    if (*dim < 0) *dim += ndim ? ndim : 1;
    return TG_OK;
}

/* ------------------------------------------------------------------ version */

_Static_assert(TG_VERSION_NUMBER == TG_VERSION_MAJOR * 10000 + TG_VERSION_MINOR * 100 + TG_VERSION_PATCH,
               "TG_VERSION_NUMBER does not match TG_VERSION_MAJOR/MINOR/PATCH");
#define TG_STR_(x) #x
#define TG_STR(x) TG_STR_(x)

const char *tg_version(void) {
    return TG_STR(TG_VERSION_MAJOR) "." TG_STR(TG_VERSION_MINOR) "." TG_STR(TG_VERSION_PATCH);
}
int tg_version_number(void) { return TG_VERSION_NUMBER; }
