/* grad_race.c — two threads run backward into the same leaves while one of them drops,
 * zeroes and reads the leaves' gradients (what optimizer.zero_grad() and w.grad do from
 * Python threads: cffi releases the GIL on every call). Built with -fsanitize=thread by
 * tests/test_reliability.py; ThreadSanitizer must report nothing.
 *
 *   grad_race add   both threads only accumulate: the gradients must be exactly the sum
 *                   of both threads' contributions (no update lost)
 *   grad_race drop  thread 2 also drops / zeroes / reads the gradients: no race, and each
 *                   gradient must be uniform (every backward's contribution lands whole)
 *
 * Prints "ok" and exits 0 on success. */
#include "tapegrad.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define N 2048      /* elements of the elementwise leaf */
#define ROWS 4      /* linear: x (ROWS, IN) . W^T (IN -> OUT) + b */
#define IN 16
#define OUT 8
#define ITERS 1000

static tg_tensor *w;    /* (N): y = sum(w * c) */
static tg_tensor *lw;   /* (OUT, IN) */
static tg_tensor *lb;   /* (OUT) */
static tg_optim *opt;   /* over lw and lb: its zero_grad(set_to_none) */

typedef struct {
    double c;
    int dropper;
    int failed;
    char error[256];
} worker_arg;

static int fail(worker_arg *a, const char *what) {
    snprintf(a->error, sizeof a->error, "%s: %s", what, tg_last_error());
    a->failed = 1;
    return 1;
}

static int step(worker_arg *a, tg_tensor *x, tg_tensor *lx) {
    tg_tensor *y = tg_mul(w, x);
    tg_tensor *s = y ? tg_sum(y, 1, 0, 0) : NULL;
    tg_tensor *z = tg_linear(lx, lw, lb);
    tg_tensor *zs = z ? tg_sum(z, 1, 0, 0) : NULL;
    tg_tensor *loss = s && zs ? tg_add(s, zs) : NULL;
    int bad = !loss || tg_backward(loss, NULL, 0) != TG_OK;
    tg_tensor_release(loss);
    tg_tensor_release(zs);
    tg_tensor_release(z);
    tg_tensor_release(s);
    tg_tensor_release(y);
    return bad ? fail(a, "step") : 0;
}

static void *worker(void *p) {
    worker_arg *a = p;
    int64_t n = N, lshape[2] = {ROWS, IN};
    tg_tensor *x = tg_full(TG_FLOAT64, 1, &n, a->c);
    tg_tensor *lx = tg_full(TG_FLOAT64, 2, lshape, a->c);
    if (!x || !lx) {
        fail(a, "inputs");
        goto out;
    }
    for (int i = 0; i < ITERS && !a->failed; i++) {
        if (step(a, x, lx)) break;
        if (!a->dropper) continue;
        switch (i % 4) {
        case 0: tg_tensor_set_grad(w, NULL); break; /* w.grad = None */
        case 1: tg_tensor_zero_grad(w); break;
        case 2: tg_optim_zero_grad(opt, 1); break; /* optimizer.zero_grad() */
        default: {
            tg_tensor *g = tg_tensor_grad(w); /* g = w.grad; del g */
            tg_tensor_release(g);
        }
        }
    }
out:
    tg_tensor_release(lx);
    tg_tensor_release(x);
    return NULL;
}

/* Every element of t's gradient equals want (want < 0: all equal to each other). */
static int check_grad(tg_tensor *t, double want, const char *name) {
    tg_tensor *g = tg_tensor_grad(t);
    if (!g) return want <= 0 ? 0 : (printf("%s: no gradient\n", name), 1);
    const double *d = tg_tensor_data(g);
    int64_t n = tg_tensor_numel(g), bad = 0;
    double ref = want < 0 ? d[0] : want;
    for (int64_t i = 0; i < n; i++) bad += d[i] != ref;
    if (bad) printf("%s: %lld of %lld gradient elements differ from %g (first %g)\n", name,
                    (long long)bad, (long long)n, ref, d[0]);
    tg_tensor_release(g);
    return bad != 0;
}

int main(int argc, char **argv) {
    int drop = argc > 1 && strcmp(argv[1], "drop") == 0;
    int64_t n = N, wshape[2] = {OUT, IN}, bshape[1] = {OUT};
    w = tg_full(TG_FLOAT64, 1, &n, 1.0);
    lw = tg_full(TG_FLOAT64, 2, wshape, 0.5);
    lb = tg_zeros(TG_FLOAT64, 1, bshape);
    if (!w || !lw || !lb || tg_tensor_set_requires_grad(w, 1) ||
        tg_tensor_set_requires_grad(lw, 1) || tg_tensor_set_requires_grad(lb, 1)) {
        printf("setup: %s\n", tg_last_error());
        return 1;
    }
    tg_tensor *params[2] = {lw, lb};
    opt = tg_sgd_new(params, 2, 0.1, 0, 0, 0, 0);
    if (!opt) {
        printf("setup: %s\n", tg_last_error());
        return 1;
    }
    worker_arg args[2] = {{1.0, 0, 0, ""}, {2.0, drop, 0, ""}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        if (pthread_create(&th[i], NULL, worker, &args[i]) != 0) {
            printf("pthread_create failed\n");
            return 1;
        }
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    int bad = 0;
    for (int i = 0; i < 2; i++)
        if (args[i].failed) {
            printf("thread %d: %s\n", i + 1, args[i].error);
            bad = 1;
        }
    /* d/dw sum(w * c) = c; d/dW sum(x W^T + b) = ROWS * c; d/db = ROWS */
    double c = args[0].c + args[1].c;
    bad |= check_grad(w, drop ? -1 : ITERS * c, "w");
    bad |= check_grad(lw, drop ? -1 : ITERS * ROWS * c, "linear weight");
    bad |= check_grad(lb, drop ? -1 : ITERS * 2.0 * ROWS, "linear bias");
    tg_optim_free(opt);
    tg_tensor_release(lb);
    tg_tensor_release(lw);
    tg_tensor_release(w);
    if (bad) return 1;
    printf("ok\n");
    return 0;
}
