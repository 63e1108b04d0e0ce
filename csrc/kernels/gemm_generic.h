/* kernels/gemm_generic.h — the generic level's gemm kernels in plain C, written once per
 * dtype and build, in the summation orders of the SIMD kernels, so that with a fused
 * multiply-add they give the AVX2 / AVX-512 bits.
 *
 * Included (not a header for anyone else) with these defined:
 *   GG_T           element type
 *   GG_NAME(name)  the name of this dtype and build's copy of `name`
 *   GG_FMA(a,b,c)  a*b + c: one rounding (fmaf / fma) wherever the hardware fuses, which
 *                  is what makes the bits those of the SIMD kernels; two roundings only in
 *                  the x86-64 baseline copy, which runs on x86 CPUs without FMA (older
 *                  than AVX2; a software fma there costs 25-120 ns, 50-250 times a
 *                  multiply and an add)
 *   GG_LINK        the functions' linkage (static, or empty for an extern copy)
 * by gemm.c (the baseline copies: on x86-64 two roundings, elsewhere fma) and by
 * gemm_generic_fma.c (x86-64 only, built for FMA: run when the CPU has it), once per dtype.
 * Contraction stays off (-std=c11 implies -ffp-contract=off in GCC; clang gets the pragma
 * in the including file): no a*b + c outside GG_FMA may fuse.
 *
 * The orders, per C element (those of the kernels they stand for):
 *   ukernel  the packed path's micro-kernel (gemm_avx2.c, gemm_avx512.c): over one K block,
 *            s = 0, then s = fma(a(i,k), b(k,j), s) for k in increasing order; C = s, or
 *            C + s when load_c. Tile TG_GEMM_GENERIC_MR x 32 bytes.
 *   blocked  the same arithmetic straight from A and B, every K block of kb in turn (the
 *            packed path's blocks: gemm_driver.h's k_block), for a strip whose packing
 *            buffer could not be allocated: the bits of the packed path, unpacked.
 *   smallm   the small-M path (gemm_smallm.h, whose header states both orders): broadcast
 *            (b_cs == 1) s = 0, s = fma(a(i,k), b(k,j), s) over all of K, C = s or C + s;
 *            dot (b_rs == 1, a_cs == 1) L = 64 bytes of partial sums, lane l taking
 *            k = l, l + L, ... and the lanes past K in the last group adding 0 * 0, then
 *            the fixed pairwise tree, then C = s or C + s. */
#if !defined(GG_T) || !defined(GG_NAME) || !defined(GG_FMA) || !defined(GG_LINK)
#error "gemm_generic.h is a template: define GG_T, GG_NAME, GG_FMA, GG_LINK first"
#endif

/* C[MR x NR] (row stride ldc) = (load_c ? C : 0) + a_panel[kc x MR]^T . b_panel[kc x NR] */
GG_LINK void GG_NAME(ukernel)(int64_t kc, const GG_T *a_panel, const GG_T *b_panel, GG_T *C,
                              int64_t ldc, int load_c) {
    enum { MR = TG_GEMM_GENERIC_MR, NR = 32 / (int)sizeof(GG_T) };
    GG_T acc[MR][NR];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) acc[i][j] = 0;
    for (int64_t k = 0; k < kc; k++) {
        for (int i = 0; i < MR; i++) {
            const GG_T a = a_panel[i];
            for (int j = 0; j < NR; j++) acc[i][j] = GG_FMA(a, b_panel[j], acc[i][j]);
        }
        a_panel += MR;
        b_panel += NR;
    }
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++)
            C[i * ldc + j] = load_c ? C[i * ldc + j] + acc[i][j] : acc[i][j];
}

/* Rows of C in tiles of 4 and columns in blocks of GG_NB: the sums of a tile in a local
 * array (the compiler vectorizes the j loops), op(B) read in place. One K range [k0, k1)
 * per call: C = s or C + s (add != 0). */
enum { GG_NAME(NB) = 64 };

static void GG_NAME(rows_bcast)(int64_t M, int64_t N, int64_t k0, int64_t k1, const GG_T *A,
                                int64_t a_rs, int64_t a_cs, const GG_T *B, int64_t b_rs,
                                int64_t b_cs, GG_T *C, int64_t ldc, int add) {
    enum { NB = GG_NAME(NB) };
    GG_T acc[4][NB];
    for (int64_t j0 = 0; j0 < N; j0 += NB) {
        const int nb = N - j0 < NB ? (int)(N - j0) : NB;
        for (int64_t i0 = 0; i0 < M; i0 += 4) {
            const int mr = M - i0 < 4 ? (int)(M - i0) : 4;
            for (int r = 0; r < mr; r++)
                for (int j = 0; j < nb; j++) acc[r][j] = 0;
            for (int64_t k = k0; k < k1; k++) {
                const GG_T *bk = B + k * b_rs + j0 * b_cs;
                for (int r = 0; r < mr; r++) {
                    const GG_T a = A[(i0 + r) * a_rs + k * a_cs];
                    if (b_cs == 1)
                        for (int j = 0; j < nb; j++) acc[r][j] = GG_FMA(a, bk[j], acc[r][j]);
                    else
                        for (int j = 0; j < nb; j++)
                            acc[r][j] = GG_FMA(a, bk[j * b_cs], acc[r][j]);
                }
            }
            for (int r = 0; r < mr; r++) {
                GG_T *c = C + (i0 + r) * ldc + j0;
                for (int j = 0; j < nb; j++) c[j] = add ? c[j] + acc[r][j] : acc[r][j];
            }
        }
    }
}

/* The packed path's sums without packing: K blocks of kb (the last one shorter), each
 * summed from zero and added to C (the first one stored, unless accumulate). */
GG_LINK void GG_NAME(blocked)(int64_t kb, int64_t M, int64_t N, int64_t K, const GG_T *A,
                              int64_t a_rs, int64_t a_cs, const GG_T *B, int64_t b_rs,
                              int64_t b_cs, GG_T *C, int64_t ldc, int accumulate) {
    for (int64_t pc = 0; pc < K; pc += kb)
        GG_NAME(rows_bcast)(M, N, pc, K - pc < kb ? K : pc + kb, A, a_rs, a_cs, B, b_rs, b_cs,
                            C, ldc, accumulate || pc > 0);
}

/* The dot path, one C element at a time: its L partial sums in a local array, which the
 * compiler keeps in vector registers (four rows at a time, with the sums in a 4 x L
 * array indexed by a run-time row count, ran 1.5-2.7x slower). */
static void GG_NAME(dot)(int64_t M, int64_t N, int64_t K, const GG_T *A, int64_t a_rs,
                         const GG_T *B, int64_t b_cs, GG_T *C, int64_t ldc, int accumulate) {
    enum { L = 64 / (int)sizeof(GG_T) };
    for (int64_t i = 0; i < M; i++) {
        const GG_T *a = A + i * a_rs;
        for (int64_t j = 0; j < N; j++) {
            const GG_T *b = B + j * b_cs;
            GG_T p[L];
            for (int l = 0; l < L; l++) p[l] = 0;
            int64_t k = 0;
            for (; k + L <= K; k += L)
                for (int l = 0; l < L; l++) p[l] = GG_FMA(a[k + l], b[k + l], p[l]);
            if (k < K) { /* the last K mod L terms; the lanes past K add 0 * 0 */
                const int rest = (int)(K - k);
                for (int l = 0; l < L; l++) {
                    const GG_T x = l < rest ? a[k + l] : 0, y = l < rest ? b[k + l] : 0;
                    p[l] = GG_FMA(x, y, p[l]);
                }
            }
            for (int h = L / 2; h >= 1; h /= 2)
                for (int l = 0; l < h; l++) p[l] = p[l] + p[l + h];
            C[i * ldc + j] = accumulate ? C[i * ldc + j] + p[0] : p[0];
        }
    }
}

/* The small-M path (gemm_smallm.h's contract: b_cs == 1, or b_rs == 1 and a_cs == 1). */
GG_LINK void GG_NAME(smallm)(int64_t M, int64_t N, int64_t K, const GG_T *A, int64_t a_rs,
                             int64_t a_cs, const GG_T *B, int64_t b_rs, int64_t b_cs, GG_T *C,
                             int64_t ldc, int accumulate) {
    if (b_cs == 1)
        GG_NAME(rows_bcast)(M, N, 0, K, A, a_rs, a_cs, B, b_rs, 1, C, ldc, accumulate);
    else
        GG_NAME(dot)(M, N, K, A, a_rs, B, b_cs, C, ldc, accumulate);
}

#undef GG_T
#undef GG_NAME
#undef GG_FMA
#undef GG_LINK
