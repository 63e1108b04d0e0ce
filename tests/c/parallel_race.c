/* tg_parallel_for under ThreadSanitizer (tests/test_parallel.py builds it with the core).
 *
 * Two application threads, each with its own pool, alternate parallel loops of several
 * sizes with threaded gemms (the other kind of pool job), SGD steps split over threads
 * and one-thread loops; every result is checked against a serial computation. Prints
 * "ok" and exits 0, or names the first mismatch and exits 1. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct {
    const double *x;
    double *y;
} sq_ctx;

static void square_part(void *ctx, int64_t b, int64_t e) {
    sq_ctx *c = ctx;
    for (int64_t i = b; i < e; i++) c->y[i] = c->x[i] * c->x[i] + 1.0;
}

static int run(int seed) {
    enum { N = 200003, G = 96 };
    double *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    double *A = malloc(G * G * sizeof *A), *B = malloc(G * G * sizeof *B);
    double *C1 = malloc(G * G * sizeof *C1), *C2 = malloc(G * G * sizeof *C2);
    if (!x || !y || !A || !B || !C1 || !C2) return 1;
    for (int i = 0; i < N; i++) x[i] = (double)((i * 7919 + seed) % 1000) / 100.0;
    for (int i = 0; i < G * G; i++) A[i] = (double)(i % 13) - 6, B[i] = (double)(i % 7) - 3;
    tg_gemm_f64(G, G, G, A, G, 0, B, G, 0, C1, G, 0, 1);
    int bad = 0;
    for (int it = 0; it < 300 && !bad; it++) {
        int64_t n = it % 3 == 0 ? N : it % 3 == 1 ? 70001 : 5;
        int nt = 1 + it % 3;
        memset(y, 0, N * sizeof *y);
        sq_ctx c = {x, y};
        tg_parallel_for(n, 4096 + it, nt, square_part, &c);
        for (int64_t i = 0; i < n && !bad; i++)
            if (y[i] != x[i] * x[i] + 1.0) {
                printf("parallel_for: it %d element %lld wrong\n", it, (long long)i);
                bad = 1;
            }
        if (it % 5 == 0) {
            tg_gemm_f64(G, G, G, A, G, 0, B, G, 0, C2, G, 0, nt);
            if (memcmp(C1, C2, G * G * sizeof *C1) != 0) {
                printf("gemm: it %d differs from the serial product\n", it);
                bad = 1;
            }
        }
    }
    /* an SGD step on a large parameter: split over 2 threads, then compared with 1 */
    int64_t shape[1] = {N};
    tg_tensor *w1 = tg_tensor_new(TG_FLOAT64, 1, shape, 0);
    tg_tensor *w2 = tg_tensor_new(TG_FLOAT64, 1, shape, 0);
    tg_tensor *g = tg_tensor_new(TG_FLOAT64, 1, shape, 0);
    if (!w1 || !w2 || !g) return 1;
    memcpy(tg_tensor_data(w1), x, N * sizeof *x);
    memcpy(tg_tensor_data(w2), x, N * sizeof *x);
    memcpy(tg_tensor_data(g), y, N * sizeof *y);
    tg_tensor *ws[2] = {w1, w2};
    for (int k = 0; k < 2 && !bad; k++) {
        tg_tensor_set_requires_grad(ws[k], 1);
        if (tg_tensor_set_grad(ws[k], g) != TG_OK) return 1;
        tg_optim *o = tg_sgd_new(&ws[k], 1, 0.01, 0.9, 0, 1e-4, 1);
        if (!o) return 1;
        tg_set_num_threads(k ? 1 : 2);
        for (int s = 0; s < 3; s++)
            if (tg_optim_step(o) != TG_OK) return 1;
        tg_optim_free(o);
    }
    if (!bad && memcmp(tg_tensor_data(w1), tg_tensor_data(w2), N * sizeof(double)) != 0) {
        printf("sgd: 2 threads differ from 1\n");
        bad = 1;
    }
    tg_tensor_release(w1);
    tg_tensor_release(w2);
    tg_tensor_release(g);
    free(x), free(y), free(A), free(B), free(C1), free(C2);
    return bad;
}

static void *thread_main(void *arg) { return (void *)(intptr_t)run((int)(intptr_t)arg); }

int main(void) {
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        if (pthread_create(&t[i], NULL, thread_main, (void *)(intptr_t)(i + 1)) != 0) return 2;
    int bad = 0;
    for (int i = 0; i < 2; i++) {
        void *r;
        pthread_join(t[i], &r);
        bad |= (int)(intptr_t)r;
    }
    if (bad) return 1;
    printf("ok\n");
    return 0;
}
