/* The gemm driver's packing (gemm_driver.h, pack_panels) at every width of the kernel
 * tables, on any CPU: the widths of the AVX-512 kernels (12 and 32) are packed here even
 * where those kernels cannot run. tests/test_gemm_c_programs.py builds this file, which includes
 * gemm.c itself to reach the static pack functions, with the two SIMD translation units.
 *
 * For both dtypes, both layouts (the vectors side by side: vs == 1; each vector
 * contiguous: es == 1), widths 3..32 (the tables' 4, 6, 8, 12, 16, 32 and two others that
 * take the run-time width), counts with and without a partial last panel and several kc,
 * every packed element is compared with the definition (vectors past count are zero).
 * Prints "ok" and exits 0, or names the first mismatch and exits 1. */
#include <stdio.h>
#include <stdlib.h>

#include "gemm.c"

void *tg_malloc(size_t size) { return malloc(size); }
void *tg_calloc(size_t count, size_t size) { return calloc(count, size); }
void tg_free(void *p) { free(p); }

int main(void) {
    static const int widths[] = {4, 6, 8, 12, 16, 32, 5, 3};
    for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++)
        for (int layout = 0; layout < 2; layout++)
            for (int64_t count = 1; count <= 71; count += 7)
                for (int64_t kc = 1; kc <= 41; kc += 10) {
                    const int w = widths[wi];
                    const int64_t ld = count + kc + 3; /* a padded leading dimension */
                    const int64_t vs = layout ? ld : 1, es = layout ? 1 : ld;
                    const int64_t panels = (count + w - 1) / w, n = panels * kc * w;
                    float *src = malloc(sizeof(float) * (size_t)(ld * ld));
                    double *srcd = malloc(sizeof(double) * (size_t)(ld * ld));
                    float *dst = malloc(sizeof(float) * (size_t)n);
                    double *dstd = malloc(sizeof(double) * (size_t)n);
                    if (!src || !srcd || !dst || !dstd) return 1;
                    for (int64_t i = 0; i < ld * ld; i++)
                        srcd[i] = src[i] = (float)(i * 7 % 1000) + 0.5f;
                    for (int64_t i = 0; i < n; i++) dstd[i] = dst[i] = -1.0f; /* poison */
                    pack_panels_f32(count, kc, src, vs, es, w, dst);
                    pack_panels_f64(count, kc, srcd, vs, es, w, dstd);
                    for (int64_t p = 0; p < panels; p++)
                        for (int64_t e = 0; e < kc; e++)
                            for (int i = 0; i < w; i++) {
                                const int64_t v = p * w + i, at = (p * kc + e) * w + i;
                                const float want = v < count ? src[v * vs + e * es] : 0.0f;
                                if (dst[at] != want || dstd[at] != (double)want) {
                                    printf("w=%d vs=%lld es=%lld count=%lld kc=%lld: panel "
                                           "%lld element %lld lane %d is %g / %g, not %g\n",
                                           w, (long long)vs, (long long)es, (long long)count,
                                           (long long)kc, (long long)p, (long long)e, i,
                                           (double)dst[at], dstd[at], (double)want);
                                    return 1;
                                }
                            }
                    free(src);
                    free(srcd);
                    free(dst);
                    free(dstd);
                }
    printf("ok\n");
    return 0;
}
