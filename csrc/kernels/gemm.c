/* kernels/gemm.c — matrix multiply: C[M,N] = (accumulate ? C : 0) + op(A) . op(B).
 *
 * Paths, chosen per call from the shape only (never from the thread count):
 *   - tiny or thin problems (is_tiny_gemm): plain loops, no packing (gemm_small);
 *   - otherwise packed, cache-blocked, register-tiled (gemm_packed) with the micro-kernel
 *     of the best SIMD level this CPU has: AVX-512F (gemm_avx512.c), AVX2+FMA
 *     (gemm_avx2.c) or generic C (gemm_driver.h). TAPEGRAD_SIMD=generic|avx2|avx512 in the
 *     environment lowers the level (read with getenv on each non-tiny call).
 * Threads: with nthreads > 1, M*N*K >= 2^20 and at least 2^23 multiply-adds per thread
 * (so two threads from M*N*K >= 2^24), the output is cut into row or column strips, one
 * per thread (pthreads, spawned and joined within the call; none on Windows). K is never
 * split and its blocking depends only on K, so results are bit-identical for any thread
 * count. The AVX2 and AVX-512 kernels do identical arithmetic (FMA, same K blocks); the
 * generic kernel and the unpacked small path multiply and add separately, so results may
 * differ from them in the last bits. If a packing buffer cannot be allocated, the strip
 * falls back to the unpacked loop (correct, slower, possibly different last bits).
 *
 * Reference build line for this directory alone (the package builds all of csrc/ at once):
 *   gcc -std=c11 -O3 -Wall -Wextra -fPIC -pthread -Icsrc/include \
 *       -c csrc/kernels/gemm.c csrc/kernels/gemm_avx2.c csrc/kernels/gemm_avx512.c
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tapegrad.h"
#include "gemm_internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define GEMM_HAVE_X86_KERNELS 1
#else
#define GEMM_HAVE_X86_KERNELS 0
#endif

#if !defined(_WIN32)
#include <pthread.h>
#define GEMM_HAVE_THREADS 1
#else
#define GEMM_HAVE_THREADS 0
#endif

#define TINY_GEMM 4096.0     /* M*N*K below this: no packing */
#define THIN_GEMM 262144.0   /* nor below this when M < 4 or N < 8 */
#define THREADED_GEMM 1048576.0 /* M*N*K at or above this: threads allowed (2^20) */
/* M*N*K per thread (2^23, ~170 us of work): starting and joining a thread costs 60-80 us
 * on the 2-core VM this was tuned on, so smaller strips would only lose time. */
#define MIN_WORK_PER_THREAD 8388608.0
#define MAX_THREADS 64

#define GEMM_GENERIC_MR 4

/* Tiny problems, and thin ones (a row or a few columns) of moderate size, skip packing:
 * a register tile would be mostly padding. */
static int is_tiny_gemm(int64_t M, int64_t N, int64_t K) {
    double work = (double)M * (double)N * (double)K;
    return work < TINY_GEMM || ((M < 4 || N < 8) && work < THIN_GEMM);
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

int tg_gemm_simd_level_now(void) {
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

/* Runs run(task s) for s < n: tasks 1..n-1 on new threads, task 0 on this one, all joined
 * before returning. A thread that cannot be created has its task run here instead. */
static void run_strips(int n, void *tasks, size_t task_size, void *(*run)(void *)) {
    char *base = tasks;
#if GEMM_HAVE_THREADS
    pthread_t threads[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    for (int s = 1; s < n; s++) {
        started[s] = pthread_create(&threads[s], NULL, run, base + (size_t)s * task_size) == 0;
        if (!started[s]) run(base + (size_t)s * task_size);
    }
    run(base);
    for (int s = 1; s < n; s++)
        if (started[s]) pthread_join(threads[s], NULL);
#else
    for (int s = 0; s < n; s++) run(base + (size_t)s * task_size);
#endif
}

/* ------------------------------------------------------------ the two dtypes */

/* Kernel tables, indexed by TG_SIMD_*: {mr, nr, mc, kc, nc, micro-kernel}. The kc x nr
 * B micro-panel should sit in L1, the mc x kc A block in L2. AVX2 and AVX-512 share kc so
 * that they give identical bits. Off x86 only the generic entry exists (and clamp_level
 * never asks for another). */
#if GEMM_HAVE_X86_KERNELS
#define GEMM_KERNEL_TABLE                                                                     \
    {                                                                                         \
        {GEMM_GENERIC_MR, 8, 128, 256, 4096, ukernel_generic_f32},                            \
        {TG_GEMM_AVX2_MR_F32, TG_GEMM_AVX2_NR_F32, 144, 256, 4080, tg_gemm_ukernel_avx2_f32}, \
        {TG_GEMM_AVX512_MR_F32, TG_GEMM_AVX512_NR_F32, 144, 256, 4096,                        \
         tg_gemm_ukernel_avx512_f32},                                                         \
    }
#else
#define GEMM_KERNEL_TABLE {{GEMM_GENERIC_MR, 8, 128, 256, 4096, ukernel_generic_f32}}
#endif
#define GEMM_T float
#define GEMM_SFX f32
#include "gemm_driver.h"
#undef GEMM_T
#undef GEMM_SFX
#undef GEMM_KERNEL_TABLE

#if GEMM_HAVE_X86_KERNELS
#define GEMM_KERNEL_TABLE                                                                    \
    {                                                                                        \
        {GEMM_GENERIC_MR, 4, 128, 256, 4096, ukernel_generic_f64},                           \
        {TG_GEMM_AVX2_MR_F64, TG_GEMM_AVX2_NR_F64, 72, 256, 4096, tg_gemm_ukernel_avx2_f64}, \
        {TG_GEMM_AVX512_MR_F64, TG_GEMM_AVX512_NR_F64, 72, 256, 4096,                        \
         tg_gemm_ukernel_avx512_f64},                                                        \
    }
#else
#define GEMM_KERNEL_TABLE {{GEMM_GENERIC_MR, 4, 128, 256, 4096, ukernel_generic_f64}}
#endif
#define GEMM_T double
#define GEMM_SFX f64
#include "gemm_driver.h"
#undef GEMM_T
#undef GEMM_SFX
#undef GEMM_KERNEL_TABLE
