/* kernels/gemm_driver.h — the blocked gemm driver, written once for both dtypes.
 *
 * Included twice by gemm.c with GEMM_T (float / double) and GEMM_SFX (f32 / f64) defined;
 * not a header for anyone else. Loop nest (GotoBLAS / BLIS):
 *
 *   for jc over N by NC            B block  kc x nc  packed once per (jc, pc), lives in L3
 *     for pc over K by KC          K blocks depend on K and the kernel only (determinism)
 *       pack op(B)[pc.., jc..]
 *       for ic over M by MC        A block  mc x kc  packed, lives in L2
 *         pack op(A)[ic.., pc..]
 *         for jr over nc by NR     B micro-panel kc x NR stays in L1
 *           for ir over mc by MR   micro-kernel: MR x NR tile of C in registers
 */
#if !defined(GEMM_T) || !defined(GEMM_SFX) || !defined(GEMM_KERNEL_TABLE) || \
    !defined(GEMM_SMALLM_TABLE)
#error "gemm_driver.h is a template: define GEMM_T, GEMM_SFX, GEMM_KERNEL_TABLE, GEMM_SMALLM_TABLE first"
#endif

#define GEMM_CAT_(a, b) a##_##b
#define GEMM_CAT(a, b) GEMM_CAT_(a, b)
#define GEMM_NAME(name) GEMM_CAT(name, GEMM_SFX)

/* A micro-kernel and the block sizes that suit it. */
typedef struct {
    int mr, nr;             /* tile */
    int64_t mc, kc, nc;     /* cache blocks: mc a multiple of mr, nc a multiple of nr */
    void (*run)(int64_t kc, const GEMM_T *a_panel, const GEMM_T *b_panel, GEMM_T *C,
                int64_t ldc, int load_c);
    /* run's arithmetic straight from A and B (K blocks of kb): a strip without packing
     * memory gives the same bits */
    void (*blocked)(int64_t kb, int64_t M, int64_t N, int64_t K, const GEMM_T *A,
                    int64_t a_rs, int64_t a_cs, const GEMM_T *B, int64_t b_rs, int64_t b_cs,
                    GEMM_T *C, int64_t ldc, int accumulate);
} GEMM_NAME(gemm_kernel);

/* The whole panels (`full` of them, w vectors each) of pack_panels below, for a w that is
 * a compile-time constant once inlined into a case of its switch (the loops then unroll
 * into moves and the address arithmetic leaves the inner loop; with w known only at run
 * time packing cost ~3 cycles per element, 15-25% of a packed MLP product on a Zen 3
 * core). vs == 1: copy w side-by-side elements per element step, an element step at a
 * time across all panels (each line src[e*es ..] read once from start to end). Otherwise
 * (es == 1: each vector contiguous) a transpose, panel by panel in blocks of 8 elements
 * (w lines in flight, each read 8 elements at a time). */
static inline __attribute__((always_inline)) void GEMM_NAME(pack_full)(
    int64_t full, int64_t kc, const GEMM_T *restrict src, int64_t vs, int64_t es, const int w,
    GEMM_T *restrict dst) {
    const int64_t step = kc * (int64_t)w;
    if (vs == 1) {
        for (int64_t e = 0; e < kc; e++) {
            const GEMM_T *s = src + e * es;
            GEMM_T *d = dst + e * w;
            for (int64_t p = 0; p < full; p++, s += w, d += step)
                for (int i = 0; i < w; i++) d[i] = s[i];
        }
        return;
    }
    for (int64_t p = 0; p < full; p++, src += w * vs, dst += step) {
        int64_t e0 = 0;
        if (es == 1) {
            for (; e0 + 8 <= kc; e0 += 8)
                for (int i = 0; i < w; i++) {
                    const GEMM_T *s = src + i * vs + e0;
                    GEMM_T *d = dst + e0 * w + i;
                    for (int t = 0; t < 8; t++) d[t * w] = s[t];
                }
        }
        for (; e0 < kc; e0++)
            for (int i = 0; i < w; i++) dst[e0 * w + i] = src[i * vs + e0 * es];
    }
}

/* Packs `count` vectors of kc elements, element e of vector v at src[v*vs + e*es], into
 * panels of w vectors: dst[panel p][e][i] = vector p*w + i's element e, vectors past
 * count zeroed. pack_a is this over op(A)'s rows (a_pack[p][k][i] = op(A)(p*mr + i, k)),
 * pack_b over op(B)'s columns (b_pack[p][k][j] = op(B)(k, p*nr + j)). With vs == 1
 * (trans_a for A, no trans_b for B: a panel's vectors side by side in memory) the whole
 * panels are filled an element step at a time: going panel by panel read w elements from
 * each of kc lines and then stepped to the next panel, fetching every line of the block
 * once per panel (20% of a 256 x 784 x 256 weight gradient's time on a Zen 3 core went to
 * packing that way). The widths of the kernel tables have their own unrolled copies. */
static void GEMM_NAME(pack_panels)(int64_t count, int64_t kc, const GEMM_T *restrict src,
                                   int64_t vs, int64_t es, int w, GEMM_T *restrict dst) {
    const int64_t full = count / w;
    switch (w) {
#define GEMM_PACK_CASE(W)                                                    \
    case W:                                                                  \
        GEMM_NAME(pack_full)(full, kc, src, vs, es, W, dst);                 \
        break;
        GEMM_PACK_CASE(4)
        GEMM_PACK_CASE(6)
        GEMM_PACK_CASE(8)
        GEMM_PACK_CASE(12)
        GEMM_PACK_CASE(16)
        GEMM_PACK_CASE(32)
#undef GEMM_PACK_CASE
    default:
        GEMM_NAME(pack_full)(full, kc, src, vs, es, w, dst);
        break;
    }
    int64_t v0 = full * w;
    src += v0 * vs;
    dst += full * kc * (int64_t)w;
    if (v0 < count) { /* the last, partial panel: vectors past count are zero */
        const int64_t m = count - v0;
        for (int64_t e = 0; e < kc; e++, dst += w) {
            int i = 0;
            for (; i < m; i++) dst[i] = src[i * vs + e * es];
            for (; i < w; i++) dst[i] = 0;
        }
    }
}

/* a_pack[panel p][k][i] = op(A)(p*mr + i, k) for an mc x kc block, rows past mc zeroed.
 * op(A)(i, k) = A[i*rs + k*cs]. */
static void GEMM_NAME(pack_a)(int64_t mc, int64_t kc, const GEMM_T *A, int64_t rs, int64_t cs,
                              int mr, GEMM_T *a_pack) {
    GEMM_NAME(pack_panels)(mc, kc, A, rs, cs, mr, a_pack);
}

/* b_pack[panel p][k][j] = op(B)(k, p*nr + j) for a kc x nc block, columns past nc zeroed.
 * op(B)(k, j) = B[k*rs + j*cs]. */
static void GEMM_NAME(pack_b)(int64_t kc, int64_t nc, const GEMM_T *B, int64_t rs, int64_t cs,
                              int nr, GEMM_T *b_pack) {
    GEMM_NAME(pack_panels)(nc, kc, B, cs, rs, nr, b_pack);
}

/* C block [mc x nc] (+)= a_pack . b_pack. Edge tiles are computed whole into a buffer by
 * the same micro-kernel, then the valid part is stored: every element sees one arithmetic. */
static void GEMM_NAME(macro_kernel)(const GEMM_NAME(gemm_kernel) *kern, int64_t mc, int64_t nc,
                                    int64_t kc, const GEMM_T *a_pack, const GEMM_T *b_pack,
                                    GEMM_T *C, int64_t ldc, int load_c) {
    const int mr = kern->mr, nr = kern->nr;
    GEMM_T edge[TG_GEMM_MAX_MR * TG_GEMM_MAX_NR];
    for (int64_t j0 = 0; j0 < nc; j0 += nr) {
        int64_t n = nc - j0 < nr ? nc - j0 : nr;
        const GEMM_T *b_panel = b_pack + j0 * kc;
        for (int64_t i0 = 0; i0 < mc; i0 += mr) {
            int64_t m = mc - i0 < mr ? mc - i0 : mr;
            const GEMM_T *a_panel = a_pack + i0 * kc;
            GEMM_T *c = C + i0 * ldc + j0;
            if (m == mr && n == nr) {
                kern->run(kc, a_panel, b_panel, c, ldc, load_c);
                continue;
            }
            kern->run(kc, a_panel, b_panel, edge, nr, 0);
            for (int64_t i = 0; i < m; i++)
                for (int64_t j = 0; j < n; j++)
                    c[i * ldc + j] = load_c ? c[i * ldc + j] + edge[i * nr + j] : edge[i * nr + j];
        }
    }
}

/* K is cut into ceil(K / kc) nearly equal blocks: a function of K and the kernel only, never
 * of the thread split, so every C element is summed in the same order. */
static int64_t GEMM_NAME(k_block)(const GEMM_NAME(gemm_kernel) *kern, int64_t K) {
    int64_t nblocks = (K + kern->kc - 1) / kern->kc;
    return (K + nblocks - 1) / nblocks;
}

/* Elements of packing workspace gemm_packed needs for an M x N x K problem: the A block
 * (rounded up to 64 bytes, so the B block that follows stays aligned) plus the B block. */
static size_t GEMM_NAME(pack_workspace)(const GEMM_NAME(gemm_kernel) *kern, int64_t M,
                                        int64_t N, int64_t K, size_t *a_len_out) {
    int64_t kb = GEMM_NAME(k_block)(kern, K);
    int64_t mc_max = M < kern->mc ? (M + kern->mr - 1) / kern->mr * kern->mr : kern->mc;
    int64_t nc_max = N < kern->nc ? (N + kern->nr - 1) / kern->nr * kern->nr : kern->nc;
    size_t a_len = ((size_t)(mc_max * kb) + 15) & ~(size_t)15;
    size_t b_len = ((size_t)(nc_max * kb) + 15) & ~(size_t)15;
    if (a_len_out) *a_len_out = a_len;
    return a_len + b_len;
}

/* Elements of gemm_packed's stack buffer (used when it is given no workspace). */
enum { GEMM_NAME(STACK_ELEMS) = 24576 / sizeof(GEMM_T) };

/* Packed, blocked C[M x N] (+)= op(A) . op(B) on one thread; M, N, K > 0.
 * op(A)(i,k) = A[i*a_rs + k*a_cs], op(B)(k,j) = B[k*b_rs + j*b_cs].
 * work: pack_workspace() elements, 64-byte aligned; or NULL to allocate here (on the stack
 * when small). Returns 0, or -1 (C untouched) when no workspace could be allocated. */
static int GEMM_NAME(gemm_packed)(const GEMM_NAME(gemm_kernel) *kern, int64_t M, int64_t N,
                                  int64_t K, const GEMM_T *A, int64_t a_rs, int64_t a_cs,
                                  const GEMM_T *B, int64_t b_rs, int64_t b_cs, GEMM_T *C,
                                  int64_t ldc, int accumulate, GEMM_T *work) {
    const int mr = kern->mr, nr = kern->nr;
    int64_t kb = GEMM_NAME(k_block)(kern, K);
    size_t a_len, work_len = GEMM_NAME(pack_workspace)(kern, M, N, K, &a_len);

    _Alignas(64) GEMM_T stack_buf[GEMM_NAME(STACK_ELEMS)];
    void *heap = NULL;
    if (!work && work_len <= GEMM_NAME(STACK_ELEMS)) {
        work = stack_buf;
    } else if (!work) {
        heap = tg_malloc(work_len * sizeof(GEMM_T) + 64);
        if (!heap) return -1;
        work = (GEMM_T *)(((uintptr_t)heap + 63) & ~(uintptr_t)63);
    }
    GEMM_T *a_pack = work, *b_pack = work + a_len;

    for (int64_t jc = 0; jc < N; jc += kern->nc) {
        int64_t nc = N - jc < kern->nc ? N - jc : kern->nc;
        for (int64_t pc = 0; pc < K; pc += kb) {
            int64_t kc = K - pc < kb ? K - pc : kb;
            int load_c = accumulate || pc > 0;
            GEMM_NAME(pack_b)(kc, nc, B + pc * b_rs + jc * b_cs, b_rs, b_cs, nr, b_pack);
            for (int64_t ic = 0; ic < M; ic += kern->mc) {
                int64_t mc = M - ic < kern->mc ? M - ic : kern->mc;
                GEMM_NAME(pack_a)(mc, kc, A + ic * a_rs + pc * a_cs, a_rs, a_cs, mr, a_pack);
                GEMM_NAME(macro_kernel)(kern, mc, nc, kc, a_pack, b_pack, C + ic * ldc + jc,
                                        ldc, load_c);
            }
        }
    }
    tg_free(heap);
    return 0;
}

/* Small problems: no packing, no blocking. C[M x N] (+)= op(A) . op(B); M, N, K > 0.
 * Each element: s = sum over k in increasing order of a(i,k)*b(k,j); then C = s or C + s.
 * Three loop orders, so that the independent sums sit in registers or vector lanes. */
static void GEMM_NAME(gemm_small)(int64_t M, int64_t N, int64_t K, const GEMM_T *A,
                                  int64_t a_rs, int64_t a_cs, const GEMM_T *B, int64_t b_rs,
                                  int64_t b_cs, GEMM_T *C, int64_t ldc, int accumulate) {
    enum { CHUNK = 64 };
    if (b_cs == 1 && N >= 8) { /* rows of op(B) contiguous: a row chunk of C at a time */
        GEMM_T s[CHUNK];
        for (int64_t i = 0; i < M; i++) {
            for (int64_t j0 = 0; j0 < N; j0 += CHUNK) {
                int64_t n = N - j0 < CHUNK ? N - j0 : CHUNK;
                for (int64_t j = 0; j < n; j++) s[j] = 0;
                for (int64_t k = 0; k < K; k++) {
                    GEMM_T a = A[i * a_rs + k * a_cs];
                    const GEMM_T *b = B + k * b_rs + j0;
                    for (int64_t j = 0; j < n; j++) s[j] += a * b[j];
                }
                GEMM_T *c = C + i * ldc + j0;
                if (accumulate)
                    for (int64_t j = 0; j < n; j++) c[j] += s[j];
                else
                    for (int64_t j = 0; j < n; j++) c[j] = s[j];
            }
        }
        return;
    }
    if (N < 8) { /* narrow op(B): one column at a time, four rows of C at once */
        for (int64_t j = 0; j < N; j++) {
            const GEMM_T *b = B + j * b_cs;
            int64_t i = 0;
            for (; i + 4 <= M; i += 4) {
                const GEMM_T *a0 = A + i * a_rs, *a1 = a0 + a_rs, *a2 = a1 + a_rs, *a3 = a2 + a_rs;
                GEMM_T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
                for (int64_t k = 0; k < K; k++) {
                    GEMM_T bk = b[k * b_rs];
                    s0 += a0[k * a_cs] * bk;
                    s1 += a1[k * a_cs] * bk;
                    s2 += a2[k * a_cs] * bk;
                    s3 += a3[k * a_cs] * bk;
                }
                GEMM_T *c = C + i * ldc + j;
                c[0] = accumulate ? c[0] + s0 : s0;
                c[ldc] = accumulate ? c[ldc] + s1 : s1;
                c[2 * ldc] = accumulate ? c[2 * ldc] + s2 : s2;
                c[3 * ldc] = accumulate ? c[3 * ldc] + s3 : s3;
            }
            for (; i < M; i++) {
                const GEMM_T *a = A + i * a_rs;
                GEMM_T s = 0;
                for (int64_t k = 0; k < K; k++) s += a[k * a_cs] * b[k * b_rs];
                C[i * ldc + j] = accumulate ? C[i * ldc + j] + s : s;
            }
        }
        return;
    }
    if (a_cs == 1 && b_rs == 1) {
        /* op(A) rows and op(B) columns both contiguous in k (x . W^T of a linear layer at
         * small batch): dot products kept in DOT_LANES partial sums, combined in a fixed
         * order. The lanes let the compiler vectorize without reassociating anything. */
        enum { DOT_LANES = 16 };
        for (int64_t i = 0; i < M; i++) {
            const GEMM_T *a = A + i * a_rs;
            GEMM_T *c = C + i * ldc;
            for (int64_t j = 0; j < N; j++) {
                const GEMM_T *b = B + j * b_cs;
                GEMM_T acc[DOT_LANES] = {0};
                int64_t k = 0;
                for (; k + DOT_LANES <= K; k += DOT_LANES)
                    for (int l = 0; l < DOT_LANES; l++) acc[l] += a[k + l] * b[k + l];
                GEMM_T s = 0;
                for (int l = 0; l < DOT_LANES; l++) s += acc[l];
                for (; k < K; k++) s += a[k] * b[k];
                c[j] = accumulate ? c[j] + s : s;
            }
        }
        return;
    }
    /* columns of op(B) contiguous (trans_b): one row of C at a time, four columns at once */
    for (int64_t i = 0; i < M; i++) {
        const GEMM_T *a = A + i * a_rs;
        GEMM_T *c = C + i * ldc;
        int64_t j = 0;
        for (; j + 4 <= N; j += 4) {
            const GEMM_T *b0 = B + j * b_cs, *b1 = b0 + b_cs, *b2 = b1 + b_cs, *b3 = b2 + b_cs;
            GEMM_T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (int64_t k = 0; k < K; k++) {
                GEMM_T ak = a[k * a_cs];
                s0 += ak * b0[k * b_rs];
                s1 += ak * b1[k * b_rs];
                s2 += ak * b2[k * b_rs];
                s3 += ak * b3[k * b_rs];
            }
            c[j] = accumulate ? c[j] + s0 : s0;
            c[j + 1] = accumulate ? c[j + 1] + s1 : s1;
            c[j + 2] = accumulate ? c[j + 2] + s2 : s2;
            c[j + 3] = accumulate ? c[j + 3] + s3 : s3;
        }
        for (; j < N; j++) {
            const GEMM_T *b = B + j * b_cs;
            GEMM_T s = 0;
            for (int64_t k = 0; k < K; k++) s += a[k * a_cs] * b[k * b_rs];
            c[j] = accumulate ? c[j] + s : s;
        }
    }
}

/* The plain triple loop: the reference the fast paths are tested against. */
void GEMM_NAME(tg_gemm_naive)(int64_t M, int64_t N, int64_t K, const GEMM_T *A, int64_t lda,
                              int trans_a, const GEMM_T *B, int64_t ldb, int trans_b, GEMM_T *C,
                              int64_t ldc, int accumulate) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            GEMM_T s = 0;
            for (int64_t k = 0; k < K; k++)
                s += (trans_a ? A[k * lda + i] : A[i * lda + k]) *
                     (trans_b ? B[j * ldb + k] : B[k * ldb + j]);
            C[i * ldc + j] = accumulate ? C[i * ldc + j] + s : s;
        }
}

/* ------------------------------------------------------------ entry points */

/* Micro-kernels by SIMD level (TG_SIMD_*); GEMM_KERNEL_TABLE comes from gemm.c. */
static const GEMM_NAME(gemm_kernel) GEMM_NAME(kernels)[] = GEMM_KERNEL_TABLE;

/* One strip of C for one thread. */
typedef struct {
    const GEMM_NAME(gemm_kernel) *kern;
    int64_t M, N, K;
    const GEMM_T *A;
    int64_t a_rs, a_cs;
    const GEMM_T *B;
    int64_t b_rs, b_cs;
    GEMM_T *C;
    int64_t ldc;
    int accumulate;
    GEMM_T *work; /* packing workspace, or NULL: gemm_packed allocates its own */
} GEMM_NAME(gemm_strip);

/* Runs one strip; without memory for packing it takes its kernel's arithmetic unpacked
 * (slower, same bits). */
static void *GEMM_NAME(gemm_strip_run)(void *arg) {
    const GEMM_NAME(gemm_strip) *t = arg;
    if (t->M <= 0 || t->N <= 0) return NULL;
    if (GEMM_NAME(gemm_packed)(t->kern, t->M, t->N, t->K, t->A, t->a_rs, t->a_cs, t->B, t->b_rs,
                               t->b_cs, t->C, t->ldc, t->accumulate, t->work) != 0)
        t->kern->blocked(GEMM_NAME(k_block)(t->kern, t->K), t->M, t->N, t->K, t->A, t->a_rs,
                         t->a_cs, t->B, t->b_rs, t->b_cs, t->C, t->ldc, t->accumulate);
    return NULL;
}

/* The kernel a non-tiny call at `level` runs. AVX-512 and AVX2 kernels do the same
 * arithmetic (FMA, same kc): for outputs no wider than the AVX2 tile, the narrower tile
 * wastes less. */
static const GEMM_NAME(gemm_kernel) *GEMM_NAME(pick_kernel)(int level, int64_t N) {
    level = clamp_level(level);
#if GEMM_HAVE_X86_KERNELS
    if (level == TG_SIMD_AVX512 && N <= GEMM_NAME(kernels)[TG_SIMD_AVX2].nr) level = TG_SIMD_AVX2;
#else
    (void)N;
#endif
    return &GEMM_NAME(kernels)[level_slot(level)];
}

/* The small-M path by level_slot(): gemm_smallm.h at AVX2 and AVX-512, gemm_generic.h at
 * the generic level; the same bits, but for the x86 baseline build (no FMA). */
typedef void (*GEMM_NAME(smallm_fn))(int64_t M, int64_t N, int64_t K, const GEMM_T *A,
                                     int64_t a_rs, int64_t a_cs, const GEMM_T *B, int64_t b_rs,
                                     int64_t b_cs, GEMM_T *C, int64_t ldc, int accumulate);
static const GEMM_NAME(smallm_fn) GEMM_NAME(smallm_fns)[] = GEMM_SMALLM_TABLE;

/* One strip of a small-M call for one thread. */
typedef struct {
    GEMM_NAME(smallm_fn) run;
    int64_t M, N, K;
    const GEMM_T *A;
    int64_t a_rs, a_cs;
    const GEMM_T *B;
    int64_t b_rs, b_cs;
    GEMM_T *C;
    int64_t ldc;
    int accumulate;
} GEMM_NAME(smallm_strip);

static void *GEMM_NAME(smallm_strip_run)(void *arg) {
    const GEMM_NAME(smallm_strip) *t = arg;
    if (t->M > 0 && t->N > 0)
        t->run(t->M, t->N, t->K, t->A, t->a_rs, t->a_cs, t->B, t->b_rs, t->b_cs, t->C, t->ldc,
               t->accumulate);
    return NULL;
}

/* The small-M path: no workspace, no packing; threads take strips of rows (4 at a time)
 * or of columns (64 at a time). Every C element's arithmetic is independent of where its
 * strip starts, so the bits do not depend on the thread count. */
static void GEMM_NAME(gemm_smallm_run)(int level, int64_t M, int64_t N, int64_t K,
                                       const GEMM_T *A, int64_t a_rs, int64_t a_cs,
                                       const GEMM_T *B, int64_t b_rs, int64_t b_cs, GEMM_T *C,
                                       int64_t ldc, int accumulate, int nthreads) {
    GEMM_NAME(smallm_fn) run = GEMM_NAME(smallm_fns)[level_slot(clamp_level(level))];
    strip_plan plan = plan_strips(M, N, K, 4, 64, nthreads);
    if (plan.nstrips <= 1) {
        run(M, N, K, A, a_rs, a_cs, B, b_rs, b_cs, C, ldc, accumulate);
        return;
    }
    GEMM_NAME(smallm_strip) strips[MAX_THREADS];
    for (int s = 0; s < plan.nstrips; s++) {
        int64_t start, len;
        strip_range(&plan, s, plan.split_rows ? M : N, &start, &len);
        GEMM_NAME(smallm_strip) t = {run, M, N, K, A, a_rs, a_cs, B, b_rs, b_cs, C, ldc,
                                     accumulate};
        if (plan.split_rows) {
            t.M = len;
            t.A = A + start * a_rs;
            t.C = C + start * ldc;
        } else {
            t.N = len;
            t.B = B + start * b_cs;
            t.C = C + start;
        }
        strips[s] = t;
    }
    run_strips(plan.nstrips, strips, sizeof strips[0], GEMM_NAME(smallm_strip_run));
}

/* Cuts a non-tiny call with kernel kern into strips (one per thread); returns their number.
 * Each strip's work is left NULL. */
static int GEMM_NAME(make_strips)(const GEMM_NAME(gemm_kernel) *kern, int64_t M, int64_t N,
                                  int64_t K, const GEMM_T *A, int64_t a_rs, int64_t a_cs,
                                  const GEMM_T *B, int64_t b_rs, int64_t b_cs, GEMM_T *C,
                                  int64_t ldc, int accumulate, int nthreads,
                                  GEMM_NAME(gemm_strip) strips[MAX_THREADS]) {
    strip_plan plan = plan_strips(M, N, K, kern->mr, kern->nr, nthreads);
    for (int s = 0; s < plan.nstrips; s++) {
        int64_t start, len;
        strip_range(&plan, s, plan.split_rows ? M : N, &start, &len);
        GEMM_NAME(gemm_strip) t = {.kern = kern, .M = M, .N = N, .K = K,
                                   .A = A, .a_rs = a_rs, .a_cs = a_cs,
                                   .B = B, .b_rs = b_rs, .b_cs = b_cs,
                                   .C = C, .ldc = ldc, .accumulate = accumulate, .work = NULL};
        if (plan.split_rows) {
            t.M = len;
            t.A = A ? A + start * a_rs : NULL;
            t.C = C ? C + start * ldc : NULL;
        } else {
            t.N = len;
            t.B = B ? B + start * b_cs : NULL;
            t.C = C ? C + start : NULL;
        }
        strips[s] = t;
    }
    return plan.nstrips;
}

/* Elements of caller-side workspace the strips need: 0 for one strip whose packing fits
 * gemm_packed's stack buffer, else the sum of the strips' pack_workspace(), each a multiple
 * of 64 bytes so that every strip's part stays 64-byte aligned. */
static size_t GEMM_NAME(strips_workspace)(const GEMM_NAME(gemm_strip) *strips, int nstrips) {
    if (nstrips == 1) {
        size_t len = GEMM_NAME(pack_workspace)(strips[0].kern, strips[0].M, strips[0].N,
                                               strips[0].K, NULL);
        return len <= GEMM_NAME(STACK_ELEMS) ? 0 : len;
    }
    size_t total = 0;
    for (int s = 0; s < nstrips; s++)
        total += GEMM_NAME(pack_workspace)(strips[s].kern, strips[s].M, strips[s].N,
                                           strips[s].K, NULL);
    return total;
}

/* The gemm at `level` (clamped); work: at least GEMM_NAME(tg_gemm_workspace) bytes, any
 * alignment, or NULL to allocate what is needed here (with the fallbacks of gemm.c). */
static void GEMM_NAME(gemm_run)(int level, int64_t M, int64_t N, int64_t K, const GEMM_T *A,
                                int64_t lda, int trans_a, const GEMM_T *B, int64_t ldb,
                                int trans_b, GEMM_T *C, int64_t ldc, int accumulate,
                                int nthreads, void *work) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (!accumulate)
            for (int64_t i = 0; i < M; i++) memset(C + i * ldc, 0, (size_t)N * sizeof(GEMM_T));
        return;
    }
    /* op(A)(i,k) = A[i*a_rs + k*a_cs]; op(B)(k,j) = B[k*b_rs + j*b_cs] */
    int64_t a_rs = trans_a ? 1 : lda, a_cs = trans_a ? lda : 1;
    int64_t b_rs = trans_b ? 1 : ldb, b_cs = trans_b ? ldb : 1;
    int path = gemm_path(M, N, K, trans_a, trans_b);
    if (path == GEMM_PATH_SMALL) {
        GEMM_NAME(gemm_small)(M, N, K, A, a_rs, a_cs, B, b_rs, b_cs, C, ldc, accumulate);
        return;
    }
    if (path == GEMM_PATH_SMALLM) {
        GEMM_NAME(gemm_smallm_run)(level, M, N, K, A, a_rs, a_cs, B, b_rs, b_cs, C, ldc,
                                   accumulate, nthreads);
        return;
    }
    const GEMM_NAME(gemm_kernel) *kern = GEMM_NAME(pick_kernel)(level, N);
    GEMM_NAME(gemm_strip) strips[MAX_THREADS];
    int nstrips = GEMM_NAME(make_strips)(kern, M, N, K, A, a_rs, a_cs, B, b_rs, b_cs, C, ldc,
                                         accumulate, nthreads, strips);
    size_t need = GEMM_NAME(strips_workspace)(strips, nstrips);
    /* Without a caller's workspace, the one for all strips comes from this thread: memory a
     * short-lived thread allocates and frees goes back to the OS and is faulted in again on
     * every call. A single strip allocates its own in gemm_packed. */
    void *heap = NULL;
    if (need > 0 && !work && nstrips > 1) work = heap = tg_malloc(need * sizeof(GEMM_T) + 64);
    if (need > 0 && work) {
        GEMM_T *w = (GEMM_T *)(((uintptr_t)work + 63) & ~(uintptr_t)63);
        for (int s = 0; s < nstrips; s++) {
            strips[s].work = w;
            w += GEMM_NAME(pack_workspace)(kern, strips[s].M, strips[s].N, K, NULL);
        }
    }
    run_strips(nstrips, strips, sizeof strips[0], GEMM_NAME(gemm_strip_run));
    tg_free(heap);
}

void GEMM_NAME(tg_gemm_at_level)(int level, int64_t M, int64_t N, int64_t K, const GEMM_T *A,
                                 int64_t lda, int trans_a, const GEMM_T *B, int64_t ldb,
                                 int trans_b, GEMM_T *C, int64_t ldc, int accumulate,
                                 int nthreads) {
    GEMM_NAME(gemm_run)(level, M, N, K, A, lda, trans_a, B, ldb, trans_b, C, ldc, accumulate,
                        nthreads, NULL);
}

/* Bytes: the maximum over every kernel of the table (whatever level the dispatch picks at
 * the call, whatever TAPEGRAD_SIMD says then, whatever this CPU has) and over every thread
 * count 1..nthreads, plus 64 bytes of alignment slack; 0 when no kernel needs any. */
size_t GEMM_NAME(tg_gemm_workspace)(int64_t M, int64_t N, int64_t K, int trans_a, int trans_b,
                                    int nthreads) {
    /* the blocking depends on the shape only; the small-M path needs nothing */
    if (M <= 0 || N <= 0 || K <= 0 || gemm_path(M, N, K, trans_a, trans_b) != GEMM_PATH_PACKED)
        return 0;
    enum { NKERNELS = sizeof GEMM_NAME(kernels) / sizeof GEMM_NAME(kernels)[0] };
    int tmax = nthreads < 1 ? 1 : nthreads > MAX_THREADS ? MAX_THREADS : nthreads;
    size_t most = 0;
    GEMM_NAME(gemm_strip) strips[MAX_THREADS];
    for (int k = 0; k < (int)NKERNELS; k++) {
        for (int t = 1; t <= tmax; t++) {
            int n = GEMM_NAME(make_strips)(&GEMM_NAME(kernels)[k], M, N, K, NULL, 0, 0, NULL,
                                           0, 0, NULL, 0, 0, t, strips);
            size_t len = GEMM_NAME(strips_workspace)(strips, n);
            if (len > most) most = len;
        }
    }
    return most ? most * sizeof(GEMM_T) + 64 : 0;
}

void GEMM_NAME(tg_gemm_ws)(int64_t M, int64_t N, int64_t K, const GEMM_T *A, int64_t lda,
                           int trans_a, const GEMM_T *B, int64_t ldb, int trans_b, GEMM_T *C,
                           int64_t ldc, int accumulate, int nthreads, void *work) {
    /* the tiny path never looks at the level: skip getenv there */
    int level = gemm_path(M, N, K, trans_a, trans_b) == GEMM_PATH_SMALL
                    ? TG_SIMD_GENERIC
                    : tg_gemm_simd_level_now();
    GEMM_NAME(gemm_run)(level, M, N, K, A, lda, trans_a, B, ldb, trans_b, C, ldc, accumulate,
                        nthreads, work);
}

void GEMM_NAME(tg_gemm)(int64_t M, int64_t N, int64_t K, const GEMM_T *A, int64_t lda,
                        int trans_a, const GEMM_T *B, int64_t ldb, int trans_b, GEMM_T *C,
                        int64_t ldc, int accumulate, int nthreads) {
    GEMM_NAME(tg_gemm_ws)(M, N, K, A, lda, trans_a, B, ldb, trans_b, C, ldc, accumulate,
                          nthreads, NULL);
}

#undef GEMM_NAME
#undef GEMM_CAT
#undef GEMM_CAT_
