/* kernels/gemm_smallm.h — the unpacked small-M gemm, written once per ISA and dtype.
 *
 * Included by gemm_avx2.c and gemm_avx512.c (after their target pragmas), once per dtype,
 * with these defined (not a header for anyone else; it undefines all but the tile ones
 * SM_MR_B .. SM_DOT_K_CHUNK_BYTES at its end, which the two dtypes share):
 *   SM_T, SM_NAME           element type; the entry point's name
 *   SM_V, SM_W              vector type; elements per vector
 *   SM_LOAD(p), SM_STORE(p, v), SM_ADD(a, b), SM_FMA(a, b, c) (= a*b + c, one rounding),
 *   SM_SET1(x), SM_ZERO()
 *   SM_M, SM_MASK(n)        mask type; mask of the first n lanes (0 <= n <= SM_W)
 *   SM_MLOAD(p, m), SM_MSTORE(p, m, v)   masked load (zeros in the other lanes, no
 *                           access there) and store
 *   SM_PIN(v)               keeps vector v in a register (an empty asm): the dot path
 *                           loads each operand once, not as a memory operand of every FMA
 *   SM_DU                   vectors per 64-byte group of k-lanes (the dot path)
 *   SM_REDUCE4(q, out)      out[j] = the sum of the SM_DU vectors q[j * SM_DU ..] in the
 *                           fixed tree below, for j < 4
 *   SM_MR_B, SM_NV_B        tile of the broadcast path: rows x vectors
 *   SM_MR_D, SM_NR_D        tile of the dot path: rows of op(A) x columns of op(B)
 *   SM_DOT_ONE_PASS         the most accumulators (SM_DU per element) a dot tile keeps
 *                           for one pass over K; a larger tile passes once per vector
 *   SM_DOT_ROWS_BYTES       rows of op(A) the dot path takes at a time, in bytes
 *   SM_DOT_L1_BYTES,        a two-pass dot tile whose rows and columns take more than
 *   SM_DOT_K_CHUNK_BYTES    SM_DOT_L1_BYTES goes over K in chunks of SM_DOT_K_CHUNK_BYTES
 *                           per row and column (a multiple of 64)
 *
 * C[M x N] (+)= op(A) . op(B) with op(A)(i,k) = A[i*a_rs + k*a_cs],
 * op(B)(k,j) = B[k*b_rs + j*b_cs]; M, N, K > 0. Nothing is packed and nothing allocated:
 * B is read in place, which is what a small batch against a large weight wants (packing
 * would copy the whole weight for a few rows of work).
 *
 * Summation order, per C element (the same at every vector width, so AVX2 and AVX-512
 * give the same bits; tile sizes, row and column positions and the thread split do not
 * enter it):
 *
 *   broadcast path (b_cs == 1: rows of op(B) contiguous; the linear layer's dX = G.W and
 *   dW = G^T.X): s = 0; for k = 0..K-1 in increasing order: s = fma(a(i,k), b(k,j), s);
 *   then C = s, or C = C + s with accumulate. Vector lanes span j.
 *
 *   dot path (b_rs == 1 and a_cs == 1: rows of op(A) and columns of op(B) contiguous in
 *   k; the linear layer's forward X.W^T): L = 64 bytes / sizeof(T) partial sums (16 for
 *   float, 8 for double); partial sum l = 0, then for k = l, l + L, l + 2L, ... < K in
 *   increasing order: p_l = fma(a(i,k), b(k,j), p_l). Then the L partial sums are added
 *   pairwise in a fixed tree: p_l += p_{l+L/2} for l < L/2, then p_l += p_{l+L/4} for
 *   l < L/4, ..., down to p_0, which is s; then C = s or C + s. Vector lanes span k (an
 *   AVX2 vector holds half of the L sums, an AVX-512 vector all of them).
 */
#if !defined(SM_T) || !defined(SM_NAME) || !defined(SM_REDUCE4) || !defined(SM_PIN) || \
    !defined(SM_DOT_ONE_PASS)
#error "gemm_smallm.h is a template: define SM_T, SM_NAME, SM_REDUCE4, ... first"
#endif
#if SM_DOT_K_CHUNK_BYTES % 64 != 0
#error "a dot tile's K chunk is a whole number of 64-byte groups of k-lanes"
#endif
#if SM_NR_D > 4
#error "SM_REDUCE4 reduces the sums of at most 4 columns of a dot tile"
#endif

#define SM_CAT_(a, b) a##_##b
#define SM_CAT(a, b) SM_CAT_(a, b)
#define SM_LOCAL(name) SM_CAT(name, SM_NAME)
#define SM_INLINE static inline __attribute__((always_inline))

/* ------------------------------------------------------------ broadcast path */

/* The tiles keep their accumulators in named variables (not arrays, which the compiler
 * may leave in memory): SM_EACH_IV(OP) applies OP(i, v) to every row i < 8 and vector
 * v < 4, guarded by constants that the inlining folds (i < mr, v < nv). */
#define SM_EACH_V(OP, i) OP(i, 0) OP(i, 1) OP(i, 2) OP(i, 3)
#define SM_EACH_IV(OP)                                                                      \
    SM_EACH_V(OP, 0) SM_EACH_V(OP, 1) SM_EACH_V(OP, 2) SM_EACH_V(OP, 3) SM_EACH_V(OP, 4) \
    SM_EACH_V(OP, 5) SM_EACH_V(OP, 6) SM_EACH_V(OP, 7)
#define SM_EACH_I(OP) OP(0) OP(1) OP(2) OP(3) OP(4) OP(5) OP(6) OP(7)

/* Rows [0, mr) x vectors [0, nv) of C at c (mr <= 8, nv <= 4); the last vector holds
 * `last` valid lanes (masked loads and stores when masked != 0, else it is full). */
SM_INLINE void SM_LOCAL(bcast_tile)(const int mr, const int nv, const int masked, int64_t K,
                                    const SM_T *a, int64_t a_rs, int64_t a_cs, const SM_T *b,
                                    int64_t b_rs, SM_T *c, int64_t ldc, int accumulate,
                                    SM_M last) {
#define SM_DECL(i, v) SM_V acc##i##_##v = SM_ZERO();
    SM_EACH_IV(SM_DECL)
#undef SM_DECL
    for (int64_t k = 0; k < K; k++) {
        const SM_T *bk = b + k * b_rs;
#define SM_LOADB(v)                                                                       \
    SM_V b##v = SM_ZERO();                                                                \
    if (v < nv) b##v = (masked && v == nv - 1) ? SM_MLOAD(bk + v * SM_W, last)            \
                                                : SM_LOAD(bk + v * SM_W);
        SM_LOADB(0) SM_LOADB(1) SM_LOADB(2) SM_LOADB(3)
#undef SM_LOADB
#define SM_ROW(i)                                                                   \
    if (i < mr) {                                                                   \
        SM_V ai = SM_SET1(a[i * a_rs + k * a_cs]);                                  \
        SM_PIN(ai);                                                                 \
        if (0 < nv) acc##i##_0 = SM_FMA(ai, b0, acc##i##_0);                        \
        if (1 < nv) acc##i##_1 = SM_FMA(ai, b1, acc##i##_1);                        \
        if (2 < nv) acc##i##_2 = SM_FMA(ai, b2, acc##i##_2);                        \
        if (3 < nv) acc##i##_3 = SM_FMA(ai, b3, acc##i##_3);                        \
    }
        SM_EACH_I(SM_ROW)
#undef SM_ROW
    }
#define SM_STORE1(i, v)                                                                     \
    if (i < mr && v < nv) {                                                                 \
        SM_T *cv = c + i * ldc + v * SM_W;                                                  \
        if (masked && v == nv - 1) {                                                        \
            SM_V r = accumulate ? SM_ADD(SM_MLOAD(cv, last), acc##i##_##v) : acc##i##_##v;  \
            SM_MSTORE(cv, last, r);                                                         \
        } else {                                                                            \
            SM_V r = accumulate ? SM_ADD(SM_LOAD(cv), acc##i##_##v) : acc##i##_##v;         \
            SM_STORE(cv, r);                                                                \
        }                                                                                   \
    }
    SM_EACH_IV(SM_STORE1)
#undef SM_STORE1
}

/* One column block (nv vectors, masked or not) for every row: row tiles of SM_MR_B, the
 * rows left over with a smaller tile of the same arithmetic. */
SM_INLINE void SM_LOCAL(bcast_cols)(const int nv, const int masked, int64_t M, int64_t K,
                                    const SM_T *A, int64_t a_rs, int64_t a_cs, const SM_T *b,
                                    int64_t b_rs, SM_T *c, int64_t ldc, int accumulate,
                                    SM_M last) {
    int64_t i = 0;
    for (; i + SM_MR_B <= M; i += SM_MR_B)
        SM_LOCAL(bcast_tile)(SM_MR_B, nv, masked, K, A + i * a_rs, a_rs, a_cs, b, b_rs,
                             c + i * ldc, ldc, accumulate, last);
    switch (M - i) {
#define SM_ROWS_CASE(r)                                                                    \
    case r:                                                                                \
        SM_LOCAL(bcast_tile)(r, nv, masked, K, A + i * a_rs, a_rs, a_cs, b, b_rs, c + i * ldc, \
                             ldc, accumulate, last);                                       \
        break;
        SM_ROWS_CASE(1)
        SM_ROWS_CASE(2)
        SM_ROWS_CASE(3)
#if SM_MR_B > 4
        SM_ROWS_CASE(4)
        SM_ROWS_CASE(5)
#endif
#if SM_MR_B > 6
        SM_ROWS_CASE(6)
        SM_ROWS_CASE(7)
#endif
#undef SM_ROWS_CASE
    default:
        break;
    }
}

static void SM_LOCAL(bcast)(int64_t M, int64_t N, int64_t K, const SM_T *A, int64_t a_rs,
                            int64_t a_cs, const SM_T *B, int64_t b_rs, SM_T *C, int64_t ldc,
                            int accumulate) {
    enum { NB = SM_NV_B * SM_W };
    const SM_M full = SM_MASK(SM_W);
    int64_t j = 0;
    for (; j + NB <= N; j += NB)
        SM_LOCAL(bcast_cols)(SM_NV_B, 0, M, K, A, a_rs, a_cs, B + j, b_rs, C + j, ldc,
                             accumulate, full);
    int64_t rest = N - j;
    if (rest == 0) return;
    int nv = (int)((rest + SM_W - 1) / SM_W);
    SM_M last = SM_MASK((int)(rest - (int64_t)(nv - 1) * SM_W));
    switch (nv) {
    case 1:
        SM_LOCAL(bcast_cols)(1, 1, M, K, A, a_rs, a_cs, B + j, b_rs, C + j, ldc, accumulate, last);
        break;
#if SM_NV_B > 1
    case 2:
        SM_LOCAL(bcast_cols)(2, 1, M, K, A, a_rs, a_cs, B + j, b_rs, C + j, ldc, accumulate, last);
        break;
#endif
#if SM_NV_B > 2
    case 3:
        SM_LOCAL(bcast_cols)(3, 1, M, K, A, a_rs, a_cs, B + j, b_rs, C + j, ldc, accumulate, last);
        break;
#endif
#if SM_NV_B > 3
    case 4:
        SM_LOCAL(bcast_cols)(4, 1, M, K, A, a_rs, a_cs, B + j, b_rs, C + j, ldc, accumulate, last);
        break;
#endif
    default:
        break;
    }
}

/* ------------------------------------------------------------ dot path */

enum { SM_LOCAL(L) = 64 / (int)sizeof(SM_T) }; /* k-lanes: SM_DU vectors of SM_W */

/* Named accumulators again: acc<i>_<j>_<u> for rows i < 4 of op(A), columns j < 6 of
 * op(B), vector u < 2 of the L k-lanes; guards i < mr, j < nr, u0 <= u < u1 fold away. */
#define SM_EACH_U(OP, i, j) OP(i, j, 0) OP(i, j, 1)
#define SM_EACH_JU(OP, i)                                                                   \
    SM_EACH_U(OP, i, 0) SM_EACH_U(OP, i, 1) SM_EACH_U(OP, i, 2) SM_EACH_U(OP, i, 3)        \
    SM_EACH_U(OP, i, 4) SM_EACH_U(OP, i, 5)
#define SM_EACH_IJU(OP) SM_EACH_JU(OP, 0) SM_EACH_JU(OP, 1) SM_EACH_JU(OP, 2) SM_EACH_JU(OP, 3)

/* One step of 16 (float) or 8 (double) k for the k-lane vector u: the mr vectors of op(A)
 * loaded once into registers, then each vector of op(B) loaded once and used by mr FMAs
 * (registers in flight: the accumulators, mr, and one). LD(p, u) loads a vector. */
#define SM_DOT_LDA(LD, i, u)                                                                \
    SM_V a##i##_##u = SM_ZERO();                                                            \
    if (i < mr) { a##i##_##u = LD(a + i * a_rs + k + u * SM_W, u); SM_PIN(a##i##_##u); }
#define SM_DOT_FMA(i, j, u)                                                                 \
    if (i < mr) acc##i##_##j##_##u = SM_FMA(a##i##_##u, bv, acc##i##_##j##_##u);
#define SM_DOT_COL(LD, j, u)                                                                \
    if (j < nr) {                                                                           \
        SM_V bv = LD(b + j * b_cs + k + u * SM_W, u);                                       \
        SM_PIN(bv);                                                                         \
        SM_DOT_FMA(0, j, u) SM_DOT_FMA(1, j, u) SM_DOT_FMA(2, j, u) SM_DOT_FMA(3, j, u)     \
    }
#define SM_DOT_STEP(LD, u)                                                                  \
    if (u0 <= u && u < u1) {                                                                \
        SM_DOT_LDA(LD, 0, u) SM_DOT_LDA(LD, 1, u) SM_DOT_LDA(LD, 2, u) SM_DOT_LDA(LD, 3, u) \
        SM_DOT_COL(LD, 0, u) SM_DOT_COL(LD, 1, u) SM_DOT_COL(LD, 2, u)                      \
        SM_DOT_COL(LD, 3, u) SM_DOT_COL(LD, 4, u) SM_DOT_COL(LD, 5, u)                      \
    }
#define SM_DOT_FULL(p, u) SM_LOAD(p)
#define SM_DOT_MASKED(p, u) SM_MLOAD(p, m##u)

/* The partial sums of rows [0, mr) of op(A) (a: row stride a_rs, contiguous in k) against
 * columns [0, nr) of op(B) (b: column stride b_cs, contiguous in k) over k .. K-1 (k a
 * multiple of L), for the k-lane vectors u0 <= u < u1 of the SM_DU: vector
 * (i * nr + j) * SM_DU + u of parts, which with `resume` holds the sums over 0 .. k-1 to
 * go on from (a float stored and loaded back is the same float); mr <= 4, nr <= 6. Lane l
 * of the L gets exactly the terms and the order of gemm_smallm.h's summation order,
 * whichever vectors and k ranges the calls compute. */
SM_INLINE void SM_LOCAL(dot_part)(const int mr, const int nr, const int u0, const int u1,
                                  int64_t k, int64_t K, const int resume, const SM_T *a,
                                  int64_t a_rs, const SM_T *b, int64_t b_cs, SM_T *parts) {
    enum { L = SM_LOCAL(L) };
#define SM_DECL(i, j, u)                                                                   \
    SM_V acc##i##_##j##_##u = SM_ZERO();                                                   \
    if (resume && i < mr && j < nr && u0 <= u && u < u1)                                  \
        acc##i##_##j##_##u = SM_LOAD(parts + ((i * nr + j) * SM_DU + u) * SM_W);
    SM_EACH_IJU(SM_DECL)
#undef SM_DECL
    for (; k + L <= K; k += L) {
        SM_DOT_STEP(SM_DOT_FULL, 0)
        SM_DOT_STEP(SM_DOT_FULL, 1)
    }
    if (k < K) { /* the last K mod L terms, masked: the lanes past K add 0 * 0 */
        int rest = (int)(K - k);
        SM_M m0 = SM_MASK(rest < SM_W ? rest : SM_W);
        SM_M m1 = SM_MASK(rest <= SM_W ? 0 : rest - SM_W < SM_W ? rest - SM_W : SM_W);
        (void)m0;
        (void)m1;
        SM_DOT_STEP(SM_DOT_MASKED, 0)
        SM_DOT_STEP(SM_DOT_MASKED, 1)
    }
#define SM_OUT(i, j, u)                                                                    \
    if (i < mr && j < nr && u0 <= u && u < u1)                                            \
        SM_STORE(parts + ((i * nr + j) * SM_DU + u) * SM_W, acc##i##_##j##_##u);
    SM_EACH_IJU(SM_OUT)
#undef SM_OUT
}
#undef SM_DOT_LDA
#undef SM_DOT_FMA
#undef SM_DOT_COL
#undef SM_DOT_STEP
#undef SM_DOT_FULL
#undef SM_DOT_MASKED

/* Rows [0, mr) of op(A) against columns [0, nr) of op(B), into C. A tile whose
 * accumulators for all SM_DU vectors fit SM_DOT_ONE_PASS registers runs all of K once;
 * a larger one (AVX2's 3 x 4) runs K once per vector u, with half the accumulators: the
 * same FMAs on each lane, in the same order, so the same bits (its operands, a few rows
 * and columns of K, are still in L1 for the second run). */
SM_INLINE void SM_LOCAL(dot_tile)(const int mr, const int nr, int64_t K, const SM_T *a,
                                  int64_t a_rs, const SM_T *b, int64_t b_cs, SM_T *c,
                                  int64_t ldc, int accumulate) {
    SM_T parts[4 * 6 * SM_DU * SM_W];
    if (SM_DU * mr * nr <= SM_DOT_ONE_PASS) {
        SM_LOCAL(dot_part)(mr, nr, 0, SM_DU, 0, K, 0, a, a_rs, b, b_cs, parts);
    } else {
        /* Two passes, one per k-lane vector. When the tile's rows and columns outgrow L1
         * (more than SM_DOT_L1_BYTES), K goes in chunks of SM_DOT_K_CHUNK_BYTES per row
         * and column, both passes over each chunk in turn, so that the chunk's lines are
         * still in L1 for the second pass (float64 K = 784 on a Zen 3 core: 1.3-1.4x,
         * float32 K = 2048 1.45x; float32 K = 784, whose rows and columns fit, lost 5-8%
         * to the chunking and stays whole). Each pass's sums go to memory after it: kept in
         * registers across the other pass (the compiler's choice otherwise), they push
         * its accumulators onto the stack. */
        enum { KC = SM_DOT_K_CHUNK_BYTES / (int)sizeof(SM_T) };
        const int64_t bytes = (int64_t)(mr + nr) * K * (int64_t)sizeof(SM_T);
        const int64_t kc = bytes > SM_DOT_L1_BYTES && K > KC ? KC : K;
        SM_LOCAL(dot_part)(mr, nr, 0, 1, 0, kc, 0, a, a_rs, b, b_cs, parts);
        __asm__ volatile("" : : "r"(parts) : "memory");
        if (SM_DU > 1) SM_LOCAL(dot_part)(mr, nr, 1, 2, 0, kc, 0, a, a_rs, b, b_cs, parts);
        for (int64_t k = kc; k < K; k += kc) {
            __asm__ volatile("" : : "r"(parts) : "memory");
            const int64_t end = K - k > kc ? k + kc : K;
            SM_LOCAL(dot_part)(mr, nr, 0, 1, k, end, 1, a, a_rs, b, b_cs, parts);
            __asm__ volatile("" : : "r"(parts) : "memory");
            if (SM_DU > 1) SM_LOCAL(dot_part)(mr, nr, 1, 2, k, end, 1, a, a_rs, b, b_cs, parts);
        }
    }
    /* each row's (up to 4) sums reduced together: the same adds per element */
    for (int i = 0; i < mr; i++) {
        SM_V q[4 * SM_DU];
        for (int j = 0; j < 4; j++)
            for (int u = 0; u < SM_DU; u++)
                q[j * SM_DU + u] =
                    j < nr ? SM_LOAD(parts + ((i * nr + j) * SM_DU + u) * SM_W) : SM_ZERO();
        SM_T out[4];
        SM_REDUCE4(q, out);
        SM_T *ci = c + i * ldc;
        for (int j = 0; j < nr; j++) ci[j] = accumulate ? ci[j] + out[j] : out[j];
    }
}
/* One block of nr columns of op(B) against every row. */
SM_INLINE void SM_LOCAL(dot_cols)(const int nr, int64_t M, int64_t K, const SM_T *A,
                                  int64_t a_rs, const SM_T *b, int64_t b_cs, SM_T *c,
                                  int64_t ldc, int accumulate) {
    int64_t i = 0;
    for (; i + SM_MR_D <= M; i += SM_MR_D)
        SM_LOCAL(dot_tile)(SM_MR_D, nr, K, A + i * a_rs, a_rs, b, b_cs, c + i * ldc, ldc,
                           accumulate);
    switch (M - i) {
#define SM_ROWS_CASE(r)                                                                     \
    case r:                                                                                 \
        SM_LOCAL(dot_tile)(r, nr, K, A + i * a_rs, a_rs, b, b_cs, c + i * ldc, ldc, accumulate); \
        break;
        SM_ROWS_CASE(1)
#if SM_MR_D > 2
        SM_ROWS_CASE(2)
#endif
#if SM_MR_D > 3
        SM_ROWS_CASE(3)
#endif
#undef SM_ROWS_CASE
    default:
        break;
    }
}

/* Column blocks of SM_NR_D against the rows [0, M). */
static void SM_LOCAL(dot_rows)(int64_t M, int64_t N, int64_t K, const SM_T *A, int64_t a_rs,
                               const SM_T *B, int64_t b_cs, SM_T *C, int64_t ldc,
                               int accumulate) {
    int64_t j = 0;
    for (; j + SM_NR_D <= N; j += SM_NR_D)
        SM_LOCAL(dot_cols)(SM_NR_D, M, K, A, a_rs, B + j * b_cs, b_cs, C + j, ldc, accumulate);
    switch (N - j) {
#define SM_COLS_CASE(r)                                                                 \
    case r:                                                                             \
        SM_LOCAL(dot_cols)(r, M, K, A, a_rs, B + j * b_cs, b_cs, C + j, ldc, accumulate); \
        break;
        SM_COLS_CASE(1)
#if SM_NR_D > 2
        SM_COLS_CASE(2)
#endif
#if SM_NR_D > 3
        SM_COLS_CASE(3)
#endif
#if SM_NR_D > 4
        SM_COLS_CASE(4)
#endif
#if SM_NR_D > 5
        SM_COLS_CASE(5)
#endif
#undef SM_COLS_CASE
    default:
        break;
    }
}

/* Rows in blocks of about SM_DOT_ROWS_BYTES of op(A) (a whole number of row tiles), each
 * against all of op(B): the block stays in L2 while op(B) streams past it once per block,
 * instead of all of op(A) streaming past every column block. Where a block starts changes
 * no bit. */
static void SM_LOCAL(dot)(int64_t M, int64_t N, int64_t K, const SM_T *A, int64_t a_rs,
                          const SM_T *B, int64_t b_cs, SM_T *C, int64_t ldc, int accumulate) {
    int64_t rows = SM_DOT_ROWS_BYTES / ((int64_t)sizeof(SM_T) * K) / SM_MR_D * SM_MR_D;
    if (rows < SM_MR_D) rows = SM_MR_D;
    for (int64_t i = 0; i < M; i += rows)
        SM_LOCAL(dot_rows)(M - i < rows ? M - i : rows, N, K, A + i * a_rs, a_rs, B, b_cs,
                           C + i * ldc, ldc, accumulate);
}

/* ------------------------------------------------------------ entry point */

void SM_NAME(int64_t M, int64_t N, int64_t K, const SM_T *A, int64_t a_rs, int64_t a_cs,
             const SM_T *B, int64_t b_rs, int64_t b_cs, SM_T *C, int64_t ldc, int accumulate) {
    if (b_cs == 1)
        SM_LOCAL(bcast)(M, N, K, A, a_rs, a_cs, B, b_rs, C, ldc, accumulate);
    else /* b_rs == 1 && a_cs == 1 (tg_gemm_smallm_ok) */
        SM_LOCAL(dot)(M, N, K, A, a_rs, B, b_cs, C, ldc, accumulate);
}

/* the per-dtype parameters: the includer defines them again for its next dtype (the
 * tile parameters SM_MR_B .. SM_DOT_K_CHUNK_BYTES stay theirs to undefine) */
#undef SM_T
#undef SM_NAME
#undef SM_V
#undef SM_W
#undef SM_LOAD
#undef SM_STORE
#undef SM_ADD
#undef SM_FMA
#undef SM_SET1
#undef SM_ZERO
#undef SM_M
#undef SM_MASK
#undef SM_MLOAD
#undef SM_MSTORE
#undef SM_DU
#undef SM_PIN
#undef SM_REDUCE4
#undef SM_EACH_V
#undef SM_EACH_IV
#undef SM_EACH_I
#undef SM_EACH_U
#undef SM_EACH_JU
#undef SM_EACH_IJU
#undef SM_INLINE
#undef SM_LOCAL
#undef SM_CAT
#undef SM_CAT_
