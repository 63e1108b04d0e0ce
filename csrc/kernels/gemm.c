/* kernels/gemm.c — matrix multiply: C[M,N] = (accumulate ? C : 0) + op(A) . op(B).
 *
 * Paths, chosen per call from the shape only (never from the thread count):
 *   - tiny or thin problems (gemm_path): plain loops, no packing (gemm_small);
 *   - small M (a batch of rows) against a large B: no packing, B read in place
 *     (gemm_smallm.h per ISA; gemm_generic.h at the generic level);
 *   - otherwise packed, cache-blocked, register-tiled (gemm_packed) with the micro-kernel
 *     of the best SIMD level this CPU has: AVX-512F (gemm_avx512.c), AVX2+FMA
 *     (gemm_avx2.c) or generic C (gemm_generic.h). TAPEGRAD_SIMD=generic|avx2|avx512 in the
 *     environment lowers the level (read with getenv on each non-tiny call).
 * Threads: with nthreads > 1, M*N*K >= 2^20 and at least 2^20 multiply-adds per thread
 * (so two threads from M*N*K >= 2^21), the output is cut into row or column strips, one
 * per thread, run by a persistent pool of workers owned by the calling thread (see
 * run_strips; none on Windows). K is never split and its blocking depends only on K, so
 * results are bit-identical for any thread count (the small-M path splits rows or columns
 * the same way; its per-element arithmetic does not depend on the split either).
 * Levels: every level does identical arithmetic, so results are bit-identical across
 * them too: the packed kernels FMA over k in increasing order within the same K blocks,
 * then add into C; the small-M kernels follow the orders stated in gemm_smallm.h. The
 * generic level's kernels (gemm_generic.h) are plain C in those orders with fmaf / fma:
 * gemm_generic_fma.c builds them for FMA on x86-64 and runs them where the CPU has it;
 * other architectures' baseline has the fused instruction. The one exception is an x86
 * CPU without FMA (older than AVX2): a software fma there costs 25-120 ns, so gemm.c's
 * baseline copy multiplies and adds separately and may differ in the last bits.
 * gemm_small (the tiny and thin path) is one copy at every level, so the same at each.
 * If a packing buffer cannot be allocated, the strip runs its kernel's arithmetic
 * unpacked (gemm_generic.h's blocked): correct, slower, the same bits.
 * tg_gemm_ws_f32/f64 take the packing workspace from the caller (sized by
 * tg_gemm_workspace_f32/f64: the maximum over the kernel table and thread counts 1..n, plus
 * 64 bytes to align it) and then allocate nothing for packing; tg_gemm_f32/f64 are
 * tg_gemm_ws with no workspace (allocated per call: on the stack when it fits in 24 KiB,
 * else on the heap). The blocking never depends on where the workspace lives: same bits.
 * tests/test_gemm_ws.py checks the sizes, the guard region past them, the bits, and that
 * a call with a workspace asks for no memory.
 * tests/test_simd.py forces each level this CPU has and checks these claims: every level
 * against tg_gemm_naive_* within the error bound of tests/bounds.py, the same bits for 1, 2
 * and 3 threads, the same bits at every level (signed zeros and a whole training run
 * included) and without packing memory; tests/c/gemm_generic.c checks the baseline copy
 * that does not fuse.
 *
 * Reference build line for this directory alone (the package builds all of csrc/ at once;
 * linking needs tg_malloc/tg_calloc/tg_free from csrc/tensor.c):
 *   gcc -std=c11 -O3 -Wall -Wextra -fPIC -pthread -fno-math-errno -Icsrc/include \
 *       -c csrc/kernels/gemm.c csrc/kernels/gemm_avx2.c csrc/kernels/gemm_avx512.c \
 *       csrc/kernels/gemm_generic_fma.c
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tapegrad.h"
#include "gemm_internal.h"

/* The core's counting allocator (tensor.c, declared in internal.h): packing buffers and
 * the worker pool go through it like every other allocation, so allocation-failure tests
 * reach them. A failed packing buffer falls back to the unpacked loop; a failed pool runs
 * every strip on the calling thread. */
void *tg_malloc(size_t size);
void *tg_calloc(size_t count, size_t size);
void tg_free(void *p);

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define GEMM_HAVE_X86_KERNELS 1
#else
#define GEMM_HAVE_X86_KERNELS 0
#endif

#if !defined(_WIN32)
#include <pthread.h>
#include <unistd.h>
#define GEMM_HAVE_THREADS 1
#else
#define GEMM_HAVE_THREADS 0
#endif

#define TINY_GEMM 4096.0     /* M*N*K below this: no packing */
#define THIN_GEMM 262144.0   /* nor below this when M < 4 or N < 8 */
#define THREADED_GEMM 1048576.0 /* M*N*K at or above this: threads allowed (2^20) */
/* M*N*K per thread (2^20, ~20 us of work at ~100 GFLOP/s). Handing a strip to a pool
 * worker that is still spinning costs ~0.4 us on the 2-core VM this was tuned on; waking
 * one that has gone to sleep costs ~50-90 us (an idle vCPU has to be woken), which is the
 * price of a gemm that follows the previous threaded one by more than POOL_SPIN_NS. */
#define MIN_WORK_PER_THREAD 1048576.0
#define MAX_THREADS 64

/* The kernel-table slot of the generic level built for FMA (gemm_generic_fma.c), after
 * the three TG_SIMD_* levels: what the generic level runs on an x86 CPU with FMA. */
#define GEMM_SLOT_GENERIC_FMA 3

/* The small-M path (gemm_smallm.h: no packing, B read in place) takes every non-tiny
 * problem with M at or below these, when its operands suit it: op(B) rows contiguous
 * (trans_b = 0: broadcast path) or op(A) rows and op(B) columns contiguous in k
 * (trans_a = 0, trans_b = 1: dot path). Chosen from the shape and the transposes only
 * (never the level or the thread count: the paths sum in different orders).
 *   Dot path (the linear layer's forward X.W^T): measured with benchmarks/gemm_shapes.py on
 * the MLP's shapes (and squares up to 4096, one thread, AVX-512 and AVX2), at M <= 256 it
 * is as fast as the packed path or faster (a packed trans_b B is a transposing copy of the
 * weight). On a Zen 3 AVX2 core, with packing as it is now, the packed path was 1.1-1.3x
 * faster than the dot path on the products alone at M = 96..256 (float32; float64
 * 1.2-1.45x from M = 64), but level in the MLP's inference with the thresholds switched in
 * one process (0.97-1.0x of the time on one thread, 1.04x on two) and within the noise in
 * its training step, so the dot path keeps M <= 256. Past that the packed path takes over
 * at about the same speed (the 784 -> 256 forward: within the noise at M = 256 / 257 and
 * up to 1024), except for a narrow op(B) and a K that is not short: with N <= 64 and
 * K >= 64 the AVX2 / AVX-512 dot path stays 1.4-5x faster than the packed one at any M
 * (measured to M = 4096, N = 10..64, K = 64..784; the packed path gathers the transposed
 * weight and pads N to its tile), so it keeps N <= 32 there: the output layer of an MLP
 * (N = 10) has no cliff past batch 256. Not N = 33..64: the generic level's unpacked loop
 * (the same path, shape-only choice) fell 2x behind its packed kernel at N = 64 (at
 * N = 10..32 it is 0.8-1.4x of it). With K < 64 (one to three 16-lane groups, then a
 * reduction per element) the dot path fell 1.3-5x behind at N = 32..64 past M = 1000, so
 * those stay packed.
 *   Broadcast path (the input gradient G.W and the weight gradient G^T.X): up to M = 48.
 * On a Zen 3 AVX2 core (both dtypes, one thread, the two paths interleaved in one
 * process) the packed path was 0.7-0.93x as fast at M = 16..32, level at M = 48, and
 * faster from M = 64: float32 1.08-1.35x at M = 64..256 (N = 784, K = 256: the input
 * gradient of the 784 -> 256 layer), float64 1.15-1.54x; on the weight gradient
 * (M = 256, K = the batch) 0.95x at K = 16, level at 32, 1.1-1.3x from K = 64. The
 * broadcast path walks op(B)'s rows in place, a column strip at a time, so every row
 * tile streams its own A rows and the strip is fetched from L3 again for each column
 * block; the packed path reads both operands from contiguous panels. */
#define SMALLM_MAX_M_DOT 256
#define SMALLM_MAX_N_DOT 32     /* ... and at any M when op(B) has at most this many */
#define SMALLM_MIN_K_NARROW 64  /* columns and K is at least this */
#define SMALLM_MAX_M_BCAST 48

/* The path a call takes, from its shape and transposes only (never from the SIMD level or
 * the thread count):
 *   GEMM_PATH_SMALL  tiny problems, and thin ones (a row or a few columns) of moderate size
 *                    that the small-M path does not take: plain loops (gemm_small);
 *   GEMM_PATH_SMALLM M at or below SMALLM_MAX_M_* (or, for the dot path, N at or below
 *                    SMALLM_MAX_N_DOT) with suitable operands (above);
 *   GEMM_PATH_PACKED everything else. */
enum { GEMM_PATH_SMALL, GEMM_PATH_SMALLM, GEMM_PATH_PACKED };

static int gemm_path(int64_t M, int64_t N, int64_t K, int trans_a, int trans_b) {
    double work = (double)M * (double)N * (double)K;
    if (work < TINY_GEMM) return GEMM_PATH_SMALL;
    if (!trans_b ? M <= SMALLM_MAX_M_BCAST
                 : !trans_a && (M <= SMALLM_MAX_M_DOT ||
                                (N <= SMALLM_MAX_N_DOT && K >= SMALLM_MIN_K_NARROW)))
        return GEMM_PATH_SMALLM;
    if ((M < 4 || N < 8) && work < THIN_GEMM) return GEMM_PATH_SMALL;
    return GEMM_PATH_PACKED;
}

/* ------------------------------------------------------------ SIMD level */

static int cpu_simd_level(void) {
#if GEMM_HAVE_X86_KERNELS
    __builtin_cpu_init(); /* cheap after the first call; needed by clang in shared libs */
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return TG_SIMD_GENERIC;
    return __builtin_cpu_supports("avx512f") ? TG_SIMD_AVX512 : TG_SIMD_AVX2;
#endif
    return TG_SIMD_GENERIC;
}

/* A level pinned by this thread (tg_simd_pin), or -1: a replayed run reads the
 * environment once, not at every kernel call. */
static _Thread_local int tls_pinned_level = -1;

void tg_simd_pin(int level) { tls_pinned_level = level; }

int tg_gemm_simd_level_now(void) {
    if (tls_pinned_level >= 0) return tls_pinned_level;
    int level = cpu_simd_level();
    const char *forced = getenv("TAPEGRAD_SIMD");
    if (forced) {
        int want = level;
        if (strcmp(forced, "generic") == 0) want = TG_SIMD_GENERIC;
        else if (strcmp(forced, "avx2") == 0) want = TG_SIMD_AVX2;
        else if (strcmp(forced, "avx512") == 0) want = TG_SIMD_AVX512;
        if (want < level) level = want;
    }
    return level;
}

const char *tg_simd_level(void) {
    static const char *const names[3] = {"generic", "avx2", "avx512"};
    return names[tg_gemm_simd_level_now()];
}

/* A requested level, lowered to what this CPU (and this build) has. */
static int clamp_level(int level) {
    int cpu = cpu_simd_level();
    if (level < TG_SIMD_GENERIC) return TG_SIMD_GENERIC;
    return level > cpu ? cpu : level;
}

/* ------------------------------------------------------------ threads */

/* How many strips (threads) a non-tiny problem is cut into, and along which dimension.
 * Strips are whole tiles (mr rows or nr columns). */
typedef struct {
    int nstrips;
    int split_rows; /* 1: strips of rows of C (along M); 0: strips of columns (along N) */
    int64_t units;  /* tiles along the split dimension */
    int64_t tile;   /* mr or nr */
} strip_plan;

static strip_plan plan_strips(int64_t M, int64_t N, int64_t K, int mr, int nr, int nthreads) {
    strip_plan p = {1, 1, 1, M};
    double work = (double)M * (double)N * (double)K;
    if (!GEMM_HAVE_THREADS || nthreads <= 1 || work < THREADED_GEMM) return p;
    p.split_rows = M >= N;
    p.tile = p.split_rows ? mr : nr;
    p.units = ((p.split_rows ? M : N) + p.tile - 1) / p.tile;
    int64_t t = nthreads < MAX_THREADS ? nthreads : MAX_THREADS;
    if ((double)t > work / MIN_WORK_PER_THREAD) t = (int64_t)(work / MIN_WORK_PER_THREAD);
    if (t > p.units) t = p.units;
    p.nstrips = t < 1 ? 1 : (int)t;
    return p;
}

/* Strip s covers [*start, *start + *len) of the split dimension (of size dim). */
static void strip_range(const strip_plan *p, int s, int64_t dim, int64_t *start, int64_t *len) {
    int64_t u0 = p->units * s / p->nstrips, u1 = p->units * (s + 1) / p->nstrips;
    int64_t first = u0 * p->tile, end = u1 * p->tile;
    if (end > dim) end = dim;
    *start = first;
    *len = end - first;
}

/* Persistent workers, one pool per calling thread.
 *
 * A thread's first threaded gemm creates its pool (a _Thread_local pointer, so two threads
 * calling gemm never share workers or wait on each other); it grows when more threads are
 * asked for and is joined and freed by a pthread_key_t destructor when its thread exits
 * (the main thread's pool lives until the process ends). Idle workers spin for at most
 * POOL_SPIN_NS, then sleep on a condition variable. Worker w always runs task w + 1 of a
 * call; the calling thread runs task 0 and any task that has no worker. If no pool or no
 * worker can be had, the calling thread runs every task: same strips, same bits. */
#if GEMM_HAVE_THREADS
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>

#define POOL_SPIN_NS 20000 /* 20 us: the owner's wait for its workers, before sleeping */
/* An idle worker polls for the next job for up to 200 us (yielding its core to any other
 * runnable thread after the first 20 us), so the gemms of one training step, which come
 * tens of microseconds apart, find it awake (~0.4 us to hand over) rather than asleep
 * (~50-90 us to wake on a VM). OpenMP runtimes do the same, for longer. */
#define WORKER_SPIN_NS 200000
#define WORKER_YIELD_AFTER_NS 20000

typedef struct gemm_pool gemm_pool;
typedef struct {
    gemm_pool *pool;
    int index;
    unsigned start_generation; /* the last generation before the worker existed */
} pool_worker_arg;

struct gemm_pool {
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* workers wait here for a new generation (or stop) */
    pthread_cond_t done_cv; /* the owner waits here for pending == 0 */
    atomic_uint generation; /* bumped by the owner, under mu, once per dispatch */
    atomic_int pending;     /* tasks handed to workers and not finished yet */
    int stop;               /* under mu */
    /* the current job, written by the owner under mu before generation is bumped */
    int ntasks;
    char *tasks;
    size_t task_size;
    void *(*run)(void *);
    int counted; /* 0 for a tg_parallel_for job: its workers do not count `pending` */
    /* The tg_parallel_for job (parallel_for_run): chunks are claimed from par_next; a
     * thread takes part only after entering through par_refs, which packs the job's
     * generation (high 32 bits) with the count of threads inside (low 32: the owner's 1
     * plus the workers that entered). The owner drops its 1 when no chunk is left and
     * waits for the count to reach 0, so a worker that wakes after that finds the job
     * closed and never touches the caller's data. */
    _Atomic uint64_t par_refs;
    atomic_llong par_next;
    int64_t par_chunks, par_chunk, par_n;
    void (*par_fn)(void *ctx, int64_t begin, int64_t end);
    void *par_ctx;
    pid_t pid; /* of the process that created the workers (they do not survive fork) */
    int nworkers;
    pthread_t threads[MAX_THREADS];
    pool_worker_arg args[MAX_THREADS];
};

static _Thread_local gemm_pool *tls_pool = NULL;
static pthread_key_t pool_key;
static int pool_key_ok = 0;
static pthread_once_t pool_key_once = PTHREAD_ONCE_INIT;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void parallel_for_enter(gemm_pool *pool, unsigned gen);

static void *pool_worker_main(void *varg) {
    pool_worker_arg *arg = varg;
    gemm_pool *pool = arg->pool;
    const int task = arg->index + 1;
    unsigned seen = arg->start_generation;
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        if (pool->stop) break;
        if (atomic_load_explicit(&pool->generation, memory_order_relaxed) == seen) {
            /* bounded spin outside the lock, then sleep */
            pthread_mutex_unlock(&pool->mu);
            int64_t t0 = now_ns();
            for (int i = 1;; i++) {
                if (atomic_load_explicit(&pool->generation, memory_order_acquire) != seen) break;
                cpu_relax();
                if ((i & 63) == 0) {
                    int64_t waited = now_ns() - t0;
                    if (waited > WORKER_SPIN_NS) break;
                    if (waited > WORKER_YIELD_AFTER_NS) sched_yield();
                }
            }
            pthread_mutex_lock(&pool->mu);
            while (!pool->stop &&
                   atomic_load_explicit(&pool->generation, memory_order_relaxed) == seen)
                pthread_cond_wait(&pool->work_cv, &pool->mu);
            if (pool->stop) break;
        }
        /* a new job: snapshot it under the lock */
        seen = atomic_load_explicit(&pool->generation, memory_order_relaxed);
        int mine = task < pool->ntasks;
        const int counted = pool->counted;
        char *job = mine && counted ? pool->tasks + (size_t)task * pool->task_size : NULL;
        void *(*run)(void *) = pool->run;
        pthread_mutex_unlock(&pool->mu);
        if (mine && !counted) {
            parallel_for_enter(pool, seen); /* takes part, or finds the job closed */
        } else if (mine) {
            run(job);
            if (atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_acq_rel) == 1) {
                pthread_mutex_lock(&pool->mu);
                pthread_cond_signal(&pool->done_cv);
                pthread_mutex_unlock(&pool->mu);
            }
        }
        pthread_mutex_lock(&pool->mu);
    }
    pthread_mutex_unlock(&pool->mu);
    return NULL;
}

/* Stops and joins the workers, frees the pool. */
static void pool_destroy(gemm_pool *pool) {
    pthread_mutex_lock(&pool->mu);
    pool->stop = 1;
    pthread_cond_broadcast(&pool->work_cv);
    pthread_mutex_unlock(&pool->mu);
    for (int w = 0; w < pool->nworkers; w++) pthread_join(pool->threads[w], NULL);
    pthread_cond_destroy(&pool->done_cv);
    pthread_cond_destroy(&pool->work_cv);
    pthread_mutex_destroy(&pool->mu);
    tg_free(pool);
}

static void pool_key_destructor(void *p) {
    tls_pool = NULL; /* runs on the exiting thread: a later gemm there starts afresh */
    if (p && ((gemm_pool *)p)->pid == getpid()) pool_destroy(p);
    /* a pool inherited through fork has no workers to join: leave it */
}

static void pool_key_init(void) { pool_key_ok = pthread_key_create(&pool_key, pool_key_destructor) == 0; }

static gemm_pool *pool_create(void) {
    gemm_pool *pool = tg_calloc(1, sizeof *pool);
    if (!pool) return NULL;
    if (pthread_mutex_init(&pool->mu, NULL) != 0) goto fail0;
    if (pthread_cond_init(&pool->work_cv, NULL) != 0) goto fail1;
    if (pthread_cond_init(&pool->done_cv, NULL) != 0) goto fail2;
    atomic_init(&pool->generation, 0u);
    atomic_init(&pool->pending, 0);
    atomic_init(&pool->par_refs, (uint64_t)0);
    atomic_init(&pool->par_next, 0);
    pool->pid = getpid();
    if (pthread_setspecific(pool_key, pool) != 0) goto fail3;
    return pool;
fail3:
    pthread_cond_destroy(&pool->done_cv);
fail2:
    pthread_cond_destroy(&pool->work_cv);
fail1:
    pthread_mutex_destroy(&pool->mu);
fail0:
    tg_free(pool);
    return NULL;
}

/* This thread's pool with at least `want` workers if possible (it may have fewer, or be
 * NULL, when threads or memory cannot be had). */
static gemm_pool *pool_get(int want) {
    pthread_once(&pool_key_once, pool_key_init);
    if (!pool_key_ok) return NULL;
    gemm_pool *pool = tls_pool;
    if (pool && pool->pid != getpid()) pool = tls_pool = NULL; /* forked: workers are gone */
    if (!pool) {
        pool = tls_pool = pool_create();
        if (!pool) return NULL;
    }
    if (want > MAX_THREADS - 1) want = MAX_THREADS - 1;
    if (pool->nworkers < want) {
        /* workers take no signals: the application's threads handle them */
        sigset_t all, old;
        sigfillset(&all);
        int masked = pthread_sigmask(SIG_SETMASK, &all, &old) == 0;
        while (pool->nworkers < want) {
            int w = pool->nworkers;
            pool->args[w].pool = pool;
            pool->args[w].index = w;
            /* the owner (this thread) alone bumps the generation: the worker takes the next */
            pool->args[w].start_generation =
                atomic_load_explicit(&pool->generation, memory_order_relaxed);
            if (pthread_create(&pool->threads[w], NULL, pool_worker_main, &pool->args[w]) != 0)
                break;
            pool->nworkers++;
        }
        if (masked) pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    return pool;
}
#endif

/* Runs run(task s) for s < n, all finished before returning: task 0 and any task without
 * a worker on this thread, the others on this thread's pool. */
static void run_strips(int n, void *tasks, size_t task_size, void *(*run)(void *)) {
    char *base = tasks;
#if GEMM_HAVE_THREADS
    gemm_pool *pool = n > 1 ? pool_get(n - 1) : NULL;
    int nw = pool ? (pool->nworkers < n - 1 ? pool->nworkers : n - 1) : 0;
    if (nw > 0) {
        pthread_mutex_lock(&pool->mu);
        pool->ntasks = nw + 1;
        pool->tasks = base;
        pool->task_size = task_size;
        pool->run = run;
        pool->counted = 1;
        atomic_store_explicit(&pool->pending, nw, memory_order_relaxed);
        atomic_fetch_add_explicit(&pool->generation, 1u, memory_order_release);
        pthread_cond_broadcast(&pool->work_cv);
        pthread_mutex_unlock(&pool->mu);
    }
    run(base);
    for (int s = nw + 1; s < n; s++) run(base + (size_t)s * task_size);
    if (nw > 0) {
        int64_t t0 = now_ns();
        for (int i = 1; atomic_load_explicit(&pool->pending, memory_order_acquire) != 0; i++) {
            cpu_relax();
            if ((i & 63) == 0 && now_ns() - t0 > POOL_SPIN_NS) break;
        }
        if (atomic_load_explicit(&pool->pending, memory_order_acquire) != 0) {
            pthread_mutex_lock(&pool->mu);
            while (atomic_load_explicit(&pool->pending, memory_order_acquire) != 0)
                pthread_cond_wait(&pool->done_cv, &pool->mu);
            pthread_mutex_unlock(&pool->mu);
        }
    }
#else
    for (int s = 0; s < n; s++) run(base + (size_t)s * task_size);
#endif
}

/* ------------------------------------------------------------ parallel loops */

void tg_parallel_for(int64_t n, int64_t chunk, int nthreads,
                     void (*fn)(void *ctx, int64_t begin, int64_t end), void *ctx);

#if GEMM_HAVE_THREADS
/* Claims and runs chunks until none is left. */
static void parallel_for_claim(gemm_pool *pool) {
    for (;;) {
        int64_t c = atomic_fetch_add_explicit(&pool->par_next, 1, memory_order_relaxed);
        if (c >= pool->par_chunks) return;
        int64_t begin = c * pool->par_chunk, end = begin + pool->par_chunk;
        pool->par_fn(pool->par_ctx, begin, end < pool->par_n ? end : pool->par_n);
    }
}

/* A worker's part of the tg_parallel_for job published as generation `gen`. */
static void parallel_for_enter(gemm_pool *pool, unsigned gen) {
    uint64_t r = atomic_load_explicit(&pool->par_refs, memory_order_acquire);
    do {
        if ((r >> 32) != gen || (r & 0xffffffffu) == 0) return; /* closed */
    } while (!atomic_compare_exchange_weak_explicit(&pool->par_refs, &r, r + 1,
                                                    memory_order_acq_rel,
                                                    memory_order_acquire));
    parallel_for_claim(pool);
    atomic_fetch_sub_explicit(&pool->par_refs, 1, memory_order_release);
}
#endif

/* Runs fn(ctx, begin, end) over [0, n) cut into chunks of `chunk` elements (the last may
 * be shorter), on this thread and on those of its pool's nthreads - 1 workers that are
 * awake to claim chunks; returns when every chunk has run. The owner never waits for a
 * worker to wake up: it claims chunks itself until none is left, then waits only for the
 * chunks workers already took. fn must not depend on which thread runs a chunk (every
 * use is elementwise: the same bits for any thread count). No pool (one thread, no
 * threads in this build, or none could be started): fn(ctx, 0, n) on this thread. */
void tg_parallel_for(int64_t n, int64_t chunk, int nthreads,
                     void (*fn)(void *ctx, int64_t begin, int64_t end), void *ctx) {
    if (n <= 0) return;
    if (chunk < 1) chunk = 1;
    int64_t chunks = (n + chunk - 1) / chunk;
#if GEMM_HAVE_THREADS
    gemm_pool *pool = nthreads > 1 && chunks > 1 ? pool_get(nthreads - 1) : NULL;
    int nw = pool ? (pool->nworkers < nthreads - 1 ? pool->nworkers : nthreads - 1) : 0;
    if (nw > 0) {
        pthread_mutex_lock(&pool->mu);
        /* the generation this job is published as (the owner alone bumps it) */
        const unsigned gen = atomic_load_explicit(&pool->generation, memory_order_relaxed) + 1u;
        pool->par_chunks = chunks;
        pool->par_chunk = chunk;
        pool->par_n = n;
        pool->par_fn = fn;
        pool->par_ctx = ctx;
        atomic_store_explicit(&pool->par_next, 0, memory_order_relaxed);
        atomic_store_explicit(&pool->par_refs, (uint64_t)gen << 32 | 1u, memory_order_release);
        pool->ntasks = nw + 1;
        pool->tasks = NULL;
        pool->task_size = 0;
        pool->run = NULL;
        pool->counted = 0;
        atomic_fetch_add_explicit(&pool->generation, 1u, memory_order_release);
        pthread_cond_broadcast(&pool->work_cv);
        pthread_mutex_unlock(&pool->mu);
        parallel_for_claim(pool);
        atomic_fetch_sub_explicit(&pool->par_refs, 1, memory_order_acq_rel);
        while ((atomic_load_explicit(&pool->par_refs, memory_order_acquire) & 0xffffffffu) != 0)
            cpu_relax();
        return;
    }
#else
    (void)nthreads;
#endif
    fn(ctx, 0, n);
}

/* ------------------------------------------------------------ the two dtypes */

/* Does this CPU fuse multiply-adds? (x86: FMA3; elsewhere the baseline build uses fma.)
 * Also the vmath kernels' choice (gemm_internal.h). */
int tg_cpu_has_fma(void) {
#if GEMM_HAVE_X86_KERNELS
    __builtin_cpu_init();
    return __builtin_cpu_supports("fma");
#else
    return 1;
#endif
}

/* The kernel-table slot of a clamped level: the generic level takes its FMA build where
 * the CPU has FMA (same bits as AVX2 / AVX-512), the baseline build elsewhere. */
static int level_slot(int level) {
#if GEMM_HAVE_X86_KERNELS
    if (level == TG_SIMD_GENERIC && tg_cpu_has_fma()) return GEMM_SLOT_GENERIC_FMA;
#endif
    return level;
}

/* The generic level's baseline kernels (gemm_generic.h): fused multiply-adds where the
 * baseline instruction set has them, i.e. off x86-64; on x86-64 (no FMA in the baseline)
 * a multiply and an add, for CPUs without FMA. */
#if GEMM_HAVE_X86_KERNELS
#define GG_FMA_F32(a, b, c) ((a) * (b) + (c))
#define GG_FMA_F64(a, b, c) ((a) * (b) + (c))
#else
#include <math.h>
#define GG_FMA_F32(a, b, c) fmaf((a), (b), (c))
#define GG_FMA_F64(a, b, c) fma((a), (b), (c))
#endif
#define GG_T float
#define GG_NAME(name) gg_##name##_f32
#define GG_FMA GG_FMA_F32
#define GG_LINK static
#include "gemm_generic.h"
#define GG_T double
#define GG_NAME(name) gg_##name##_f64
#define GG_FMA GG_FMA_F64
#define GG_LINK static
#include "gemm_generic.h"

/* Kernel tables, indexed by level_slot(): {mr, nr, mc, kc, nc, micro-kernel, the same
 * arithmetic unpacked}. The kc x nr B micro-panel should sit in L1, the mc x kc A block in
 * L2. Every slot shares kc so that they give identical bits (the baseline generic slot on
 * x86 excepted: it does not fuse). A strip without packing memory runs the unpacked
 * arithmetic of its kernel: the generic FMA build's for AVX2 and AVX-512 (which imply FMA).
 * Off x86 only the generic entry exists (and clamp_level never asks for another). */
#if GEMM_HAVE_X86_KERNELS
#define GEMM_KERNEL_TABLE                                                                 \
    {                                                                                     \
        {TG_GEMM_GENERIC_MR, 8, 128, 256, 4096, gg_ukernel_f32, gg_blocked_f32},          \
        {TG_GEMM_AVX2_MR_F32, TG_GEMM_AVX2_NR_F32, 144, 256, 4080, tg_gemm_ukernel_avx2_f32, \
         tg_gemm_blocked_generic_fma_f32},                                                \
        {TG_GEMM_AVX512_MR_F32, TG_GEMM_AVX512_NR_F32, 144, 256, 4096,                    \
         tg_gemm_ukernel_avx512_f32, tg_gemm_blocked_generic_fma_f32},                    \
        {TG_GEMM_GENERIC_MR, 8, 128, 256, 4096, tg_gemm_ukernel_generic_fma_f32,          \
         tg_gemm_blocked_generic_fma_f32},                                                \
    }
#define GEMM_SMALLM_TABLE                                                                 \
    {gg_smallm_f32, tg_gemm_smallm_avx2_f32, tg_gemm_smallm_avx512_f32,                   \
     tg_gemm_smallm_generic_fma_f32}
#else
#define GEMM_KERNEL_TABLE {{TG_GEMM_GENERIC_MR, 8, 128, 256, 4096, gg_ukernel_f32, gg_blocked_f32}}
#define GEMM_SMALLM_TABLE {gg_smallm_f32}
#endif
#define GEMM_T float
#define GEMM_SFX f32
#include "gemm_driver.h"
#undef GEMM_T
#undef GEMM_SFX
#undef GEMM_KERNEL_TABLE
#undef GEMM_SMALLM_TABLE

#if GEMM_HAVE_X86_KERNELS
#define GEMM_KERNEL_TABLE                                                                 \
    {                                                                                     \
        {TG_GEMM_GENERIC_MR, 4, 128, 256, 4096, gg_ukernel_f64, gg_blocked_f64},          \
        {TG_GEMM_AVX2_MR_F64, TG_GEMM_AVX2_NR_F64, 72, 256, 4096, tg_gemm_ukernel_avx2_f64, \
         tg_gemm_blocked_generic_fma_f64},                                                \
        {TG_GEMM_AVX512_MR_F64, TG_GEMM_AVX512_NR_F64, 72, 256, 4096,                     \
         tg_gemm_ukernel_avx512_f64, tg_gemm_blocked_generic_fma_f64},                    \
        {TG_GEMM_GENERIC_MR, 4, 128, 256, 4096, tg_gemm_ukernel_generic_fma_f64,          \
         tg_gemm_blocked_generic_fma_f64},                                                \
    }
#define GEMM_SMALLM_TABLE                                                                 \
    {gg_smallm_f64, tg_gemm_smallm_avx2_f64, tg_gemm_smallm_avx512_f64,                   \
     tg_gemm_smallm_generic_fma_f64}
#else
#define GEMM_KERNEL_TABLE {{TG_GEMM_GENERIC_MR, 4, 128, 256, 4096, gg_ukernel_f64, gg_blocked_f64}}
#define GEMM_SMALLM_TABLE {gg_smallm_f64}
#endif
#define GEMM_T double
#define GEMM_SFX f64
#include "gemm_driver.h"
#undef GEMM_T
#undef GEMM_SFX
#undef GEMM_KERNEL_TABLE
#undef GEMM_SMALLM_TABLE
