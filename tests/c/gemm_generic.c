/* The generic level's baseline kernels (gemm_generic.h as gemm.c builds it: on x86-64 a
 * multiply and an add, the copy that x86 CPUs without FMA run), on any CPU: the Python
 * tests force the generic level, which on a CPU with FMA runs the FMA build instead, so
 * this program reaches the baseline copy directly. tests/test_gemm_generic.py builds this
 * file, which includes gemm.c itself to reach the static kernels, with the SIMD
 * translation units.
 *
 * For both dtypes, shapes across the paths' edge cases (edge tiles, several K blocks,
 * two M blocks, masked dot tails), every transpose pair and accumulate 0 / 1, padded
 * leading dimensions: the packed path with the baseline micro-kernel, its unpacked
 * arithmetic (the fallback without packing memory) and, where the operands suit it, the
 * small-M path, each within the error bound of the exact product (computed in long
 * double: |C - exact| <= (K + 2) eps (|C0| + sum |a||b|)); and the packed path and its
 * unpacked arithmetic bit for bit the same. Prints "ok" and exits 0, or names the first
 * failure and exits 1. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.c"

void *tg_malloc(size_t size) { return malloc(size); }
void *tg_calloc(size_t count, size_t size) { return calloc(count, size); }
void tg_free(void *p) { free(p); }

static uint64_t rng_state = 0x9E3779B97F4A7C15u;
static double uniform(void) { /* [-1, 1) */
    rng_state = rng_state * 6364136223846793005u + 1442695040888963407u;
    return (double)(rng_state >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

static const int64_t shapes[][3] = {
    {1, 1, 1},    {3, 5, 7},     {13, 37, 29},  {40, 16, 30},   {6, 17, 50},
    {25, 33, 300}, {19, 45, 777}, {150, 40, 30}, {4, 70, 20},    {7, 13, 47},
    {3, 4, 1211}, {64, 10, 128}, {2, 9, 64},    {33, 129, 16},
};

#define DEFINE_CHECK(T, SFX, EPS)                                                            \
    static int check_##SFX(void) {                                                           \
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)                     \
            for (int ta = 0; ta < 2; ta++)                                                   \
                for (int tb = 0; tb < 2; tb++)                                               \
                    for (int acc = 0; acc < 2; acc++) {                                      \
                        const int64_t M = shapes[si][0], N = shapes[si][1], K = shapes[si][2]; \
                        const int64_t pad = (int64_t)(si % 3);                               \
                        const int64_t ar = ta ? K : M, ac = ta ? M : K;                      \
                        const int64_t br = tb ? N : K, bc = tb ? K : N;                      \
                        const int64_t lda = ac + pad, ldb = bc + pad, ldc = N + pad;         \
                        T *A = malloc(sizeof(T) * (size_t)(ar * lda));                       \
                        T *B = malloc(sizeof(T) * (size_t)(br * ldb));                       \
                        T *C0 = malloc(sizeof(T) * (size_t)(M * ldc));                       \
                        T *got[3];                                                           \
                        for (int w = 0; w < 3; w++) got[w] = malloc(sizeof(T) * (size_t)(M * ldc)); \
                        if (!A || !B || !C0 || !got[0] || !got[1] || !got[2]) {              \
                            printf("out of memory\n");                                       \
                            return 1;                                                        \
                        }                                                                    \
                        for (int64_t i = 0; i < ar * lda; i++) A[i] = (T)uniform();          \
                        for (int64_t i = 0; i < br * ldb; i++) B[i] = (T)uniform();          \
                        for (int64_t i = 0; i < M * ldc; i++) C0[i] = (T)uniform();          \
                        const int64_t a_rs = ta ? 1 : lda, a_cs = ta ? lda : 1;              \
                        const int64_t b_rs = tb ? 1 : ldb, b_cs = tb ? ldb : 1;              \
                        const gemm_kernel_##SFX *kern = &kernels_##SFX[TG_SIMD_GENERIC];     \
                        const int smallm_ok = b_cs == 1 || (b_rs == 1 && a_cs == 1);         \
                        for (int w = 0; w < 3; w++) memcpy(got[w], C0, sizeof(T) * (size_t)(M * ldc)); \
                        if (gemm_packed_##SFX(kern, M, N, K, A, a_rs, a_cs, B, b_rs, b_cs, got[0], \
                                              ldc, acc, NULL) != 0) {                        \
                            printf("gemm_packed_" #SFX " failed\n");                         \
                            return 1;                                                        \
                        }                                                                    \
                        gg_blocked_##SFX(k_block_##SFX(kern, K), M, N, K, A, a_rs, a_cs, B,  \
                                         b_rs, b_cs, got[1], ldc, acc);                      \
                        if (smallm_ok)                                                       \
                            gg_smallm_##SFX(M, N, K, A, a_rs, a_cs, B, b_rs, b_cs, got[2],   \
                                            ldc, acc);                                       \
                        const char *what[3] = {"packed", "unpacked", "small-M"};             \
                        for (int64_t i = 0; i < M; i++)                                      \
                            for (int64_t j = 0; j < N; j++) {                                \
                                long double s = acc ? C0[i * ldc + j] : 0, mag = acc ? fabsl(s) : 0; \
                                for (int64_t k = 0; k < K; k++) {                            \
                                    long double p = (long double)A[i * a_rs + k * a_cs] *    \
                                                    B[k * b_rs + j * b_cs];                  \
                                    s += p;                                                  \
                                    mag += fabsl(p);                                         \
                                }                                                            \
                                const long double bound = (long double)(K + 2) * (EPS) * mag; \
                                for (int w = 0; w < (smallm_ok ? 3 : 2); w++) {              \
                                    long double e = fabsl((long double)got[w][i * ldc + j] - s); \
                                    if (!(e <= bound)) {                                     \
                                        printf(#SFX " %s %lldx%lldx%lld trans_a=%d trans_b=%d " \
                                               "acc=%d: C[%lld][%lld] off by %Lg > %Lg\n",   \
                                               what[w], (long long)M, (long long)N,          \
                                               (long long)K, ta, tb, acc, (long long)i,      \
                                               (long long)j, e, bound);                      \
                                        return 1;                                            \
                                    }                                                        \
                                }                                                            \
                                if (memcmp(&got[0][i * ldc + j], &got[1][i * ldc + j],       \
                                           sizeof(T)) != 0) {                                \
                                    printf(#SFX " %lldx%lldx%lld trans_a=%d trans_b=%d "     \
                                           "acc=%d: C[%lld][%lld] packed and unpacked bits " \
                                           "differ\n",                                       \
                                           (long long)M, (long long)N, (long long)K, ta, tb, \
                                           acc, (long long)i, (long long)j);                 \
                                    return 1;                                                \
                                }                                                            \
                            }                                                                \
                        free(A);                                                             \
                        free(B);                                                             \
                        free(C0);                                                            \
                        for (int w = 0; w < 3; w++) free(got[w]);                            \
                    }                                                                        \
        return 0;                                                                            \
    }

DEFINE_CHECK(float, f32, 0x1p-23L)
DEFINE_CHECK(double, f64, 0x1p-52L)

int main(void) {
    if (check_f32() || check_f64()) return 1;
    printf("ok\n");
    return 0;
}
