/* xor_replay.c — tapegrad from C, replay style: the XOR net of xor.c (the same weights,
 * data, learning rate and per-sample SGD) trained for 1000 epochs, but only the first
 * step is run op by op. That step (zero_grad, forward, binary cross-entropy, backward,
 * SGD step) is captured into a program; the other 3999 steps run inside the core in one
 * tg_program_run call, and the predictions come from a captured forward-only program.
 * Replay runs the same kernels in the same order as eager mode, so this program prints
 * exactly (bitwise) the numbers of xor.c.
 *
 * Build against an installed tapegrad (docs/embedding.md, "Replay from C"):
 *   cc -std=c11 -O2 examples/c/xor_replay.c $(python -m tapegrad config --cflags --libs) -o xor_replay
 *   ./xor_replay [epochs]
 *   ./xor_replay --bench [runs] [epochs]
 * It prints what xor.c prints (the mean loss every 100 epochs, the four predictions, the
 * training speed) and then the speed of the replayed steps alone. --bench times xor.c's
 * eager loop and this replay in one process (median steps per second of several runs).
 * tests/test_c_embedding.py checks it against xor.c and the Python API, digit for digit.
 */
#define XOR_NO_MAIN
#include "xor.c" /* the net: XOR_X, XOR_Y, xor_net_init/free, xor_forward */

#include <string.h>

/* Every tg_status, by name: what a caller may get back from the core. */
static const char *status_name(tg_status st) {
    switch (st) {
    case TG_OK: return "TG_OK";
    case TG_ERR_SHAPE: return "TG_ERR_SHAPE";   /* shapes do not fit (e.g. run's X) */
    case TG_ERR_DTYPE: return "TG_ERR_DTYPE";   /* wrong dtype */
    case TG_ERR_NOMEM: return "TG_ERR_NOMEM";   /* out of memory: nothing was leaked */
    case TG_ERR_ARG: return "TG_ERR_ARG";       /* bad argument (order, lr, out) */
    case TG_ERR_STATE: return "TG_ERR_STATE";   /* can't be captured / model changed */
    case TG_ERR_INDEX: return "TG_ERR_INDEX";   /* row index or class label out of range */
    case TG_ERR_VALUE: return "TG_ERR_VALUE";   /* a data check failed in some step */
    }
    return "unknown status";
}

/* The first failure of a training run: the core's status and thread-local message, with
 * what we were doing. The core never prints: main does. */
typedef struct {
    tg_status status;
    char message[512];
} xor_error;

/* 1 if st is TG_OK; otherwise records the failure (the first one wins) and returns 0. */
static int check(xor_error *err, tg_status st, const char *what) {
    if (st == TG_OK) return 1;
    if (err->status == TG_OK) {
        err->status = st;
        snprintf(err->message, sizeof err->message, "%s: %s [%s]", what, tg_last_error(),
                 status_name(st));
    }
    return 0;
}

/* The same for a function that returns a new object, or NULL on failure. */
static int made(xor_error *err, const void *object, const char *what) {
    tg_status st = tg_last_status();
    return object ? 1 : check(err, st != TG_OK ? st : TG_ERR_NOMEM, what);
}

/* The row indices of the replayed steps: step s uses row (first + s) % 4 (one sample per
 * step, the data in training order, as xor.c's loop). */
static tg_tensor *row_order(int64_t steps, int64_t first) {
    tg_tensor *order = tg_zeros(TG_INT64, 1, &steps);
    if (!order) return NULL;
    int64_t *idx = tg_tensor_data(order);
    for (int64_t s = 0; s < steps; s++) idx[s] = (first + s) % 4;
    return order;
}

/* Capture one training step on the batch (xb, yb) — a (1, 2) sample and its (1,) target
 * — into prog. The step really runs once (it is step 0 of the training); *loss0 gets its
 * loss. This thread's ops are recorded from tg_capture_begin to tg_capture_end; on any
 * failure the capture is still ended (so the thread stops recording) and the first error
 * is kept. */
static int capture_train_step(tg_program *prog, const xor_net *net, tg_optim *opt,
                              tg_tensor *xb, tg_tensor *yb, double *loss0, xor_error *err) {
    if (!check(err, tg_capture_begin(prog), "tg_capture_begin")) return -1;
    const int64_t s2[1] = {2};
    tg_tensor *x = NULL, *y = NULL, *p = NULL, *loss = NULL;
    /* the batch tensors are declared before the step reads them */
    int ok = check(err, tg_capture_input(prog, 0, xb), "tg_capture_input(X)") &&
             check(err, tg_capture_input(prog, 1, yb), "tg_capture_input(y)");
    if (ok) tg_optim_zero_grad(opt, 1);
    /* the sample as xor.c sees it: x of shape (2), y a scalar (views: recorded too) */
    ok = ok && made(err, x = tg_reshape(xb, 1, s2), "reshape x") &&
         made(err, y = tg_reshape(yb, 0, NULL), "reshape y") &&
         made(err, p = xor_forward(net, x), "forward") &&
         made(err, loss = tg_binary_cross_entropy(p, y, TG_REDUCE_MEAN), "loss") &&
         check(err, tg_backward(loss, NULL, 0), "backward") &&
         check(err, tg_optim_step(opt), "optimizer step") &&
         check(err, tg_capture_output(prog, loss), "tg_capture_output");
    /* always end the capture; it also reports an op that could not be captured */
    ok = check(err, tg_capture_end(prog), "tg_capture_end") && ok;
    ok = ok && check(err, tg_tensor_item(loss, loss0), "loss of step 0");
    tg_tensor_release(loss);
    tg_tensor_release(p);
    tg_tensor_release(y);
    tg_tensor_release(x);
    return ok ? 0 : -1;
}

/* Capture the forward pass alone (grad mode off: no graph, no update) into prog. */
static int capture_predict(tg_program *prog, const xor_net *net, tg_tensor *xb, xor_error *err) {
    if (!check(err, tg_capture_begin(prog), "tg_capture_begin")) return -1;
    int previous = tg_set_grad_enabled(0);
    const int64_t s2[1] = {2};
    tg_tensor *x = NULL, *p = NULL;
    int ok = check(err, tg_capture_input(prog, 0, xb), "tg_capture_input(X)") &&
             made(err, x = tg_reshape(xb, 1, s2), "reshape x") &&
             made(err, p = xor_forward(net, x), "forward") &&
             check(err, tg_capture_output(prog, p), "tg_capture_output");
    ok = check(err, tg_capture_end(prog), "tg_capture_end") && ok;
    tg_set_grad_enabled(previous);
    tg_tensor_release(p);
    tg_tensor_release(x);
    return ok ? 0 : -1;
}

static double seconds_between(const struct timespec *t0, const struct timespec *t1) {
    return (double)(t1->tv_sec - t0->tv_sec) + 1e-9 * (double)(t1->tv_nsec - t0->tv_nsec);
}

/* Trains a fresh net for `epochs` epochs with learning rate lr, as xor.c's xor_train:
 * epoch_loss[e] gets the mean loss of epoch e (may be NULL); preds the final predictions
 * for XOR_X; *run_seconds the time of the tg_program_run call (the replayed steps). Owns
 * everything it makes and frees it on every path. 0 on success. */
static int xor_train_replay(int epochs, double lr, double *epoch_loss, float preds[4],
                            double *run_seconds, xor_error *err) {
    xor_net net;
    if (xor_net_init(&net) != 0) {
        made(err, NULL, "xor_net_init");
        return -1;
    }
    const int64_t steps = 4 * (int64_t)epochs, replayed = steps - 1;
    const int64_t s42[2] = {4, 2}, s4[1] = {4}, s12[2] = {1, 2}, s1[1] = {1};
    tg_tensor *params[4] = {net.w1, net.b1, net.w2, net.b2};
    tg_optim *opt = NULL;
    tg_program *train = NULL, *predict = NULL;
    tg_tensor *X = NULL, *Y = NULL, *xb = NULL, *yb = NULL, *order = NULL, *losses = NULL;
    tg_tensor *porder = NULL, *pout = NULL;
    double loss0 = 0;
    struct timespec t0, t1;
    int ok = made(err, opt = tg_sgd_new(params, 4, lr, 0, 0, 0, 0), "tg_sgd_new") &&
             /* the whole dataset: a run gathers each step's rows from it ... */
             made(err, X = tg_from_data(TG_FLOAT32, 2, s42, XOR_X), "X") &&
             made(err, Y = tg_from_data(TG_FLOAT32, 1, s4, XOR_Y), "Y") &&
             /* ... and the batch of the captured step: sample 0, with a batch dim of 1 */
             made(err, xb = tg_from_data(TG_FLOAT32, 2, s12, XOR_X[0]), "xb") &&
             made(err, yb = tg_from_data(TG_FLOAT32, 1, s1, &XOR_Y[0]), "yb") &&
             made(err, train = tg_program_new(), "tg_program_new");
    /* step 0: run eagerly, once, while it is captured */
    ok = ok && capture_train_step(train, &net, opt, xb, yb, &loss0, err) == 0;
    /* steps 1 .. steps-1 in one call; the loss of step s is written at losses[s - 1]. A
     * failing data check (e.g. a BCE target outside [0, 1]: TG_ERR_ARG) stops the run there,
     * the steps before it done, and the message names the step. */
    ok = ok && made(err, order = row_order(replayed, 1), "order") &&
         made(err, losses = tg_zeros(TG_FLOAT32, 1, &replayed), "losses");
    if (ok) {
        clock_gettime(CLOCK_MONOTONIC, &t0);
        ok = check(err, tg_program_run(train, X, Y, order, NULL, losses), "tg_program_run");
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (run_seconds) *run_seconds = seconds_between(&t0, &t1);
    }
    if (ok && epoch_loss) {
        const float *l = tg_tensor_data(losses);
        for (int e = 0; e < epochs; e++) {
            double total = 0;
            for (int64_t s = 4 * (int64_t)e; s < 4 * (int64_t)e + 4; s++)
                total += s == 0 ? loss0 : (double)l[s - 1];
            epoch_loss[e] = total / 4;
        }
    }
    /* predictions: a forward-only program, run over the four rows */
    ok = ok && made(err, predict = tg_program_new(), "tg_program_new") &&
         capture_predict(predict, &net, xb, err) == 0 &&
         made(err, porder = row_order(4, 0), "order") &&
         made(err, pout = tg_zeros(TG_FLOAT32, 1, s4), "predictions") &&
         check(err, tg_program_run(predict, X, NULL, porder, NULL, pout), "tg_program_run(predict)");
    if (ok) memcpy(preds, tg_tensor_data(pout), 4 * sizeof(float));
    /* the programs first: the optimizer they captured must outlive them */
    tg_program_free(predict);
    tg_program_free(train);
    tg_tensor_release(pout);
    tg_tensor_release(porder);
    tg_tensor_release(losses);
    tg_tensor_release(order);
    tg_tensor_release(yb);
    tg_tensor_release(xb);
    tg_tensor_release(Y);
    tg_tensor_release(X);
    tg_optim_free(opt);
    xor_net_free(&net);
    return ok ? 0 : -1;
}

#ifndef XOR_REPLAY_NO_MAIN
static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, compare_doubles);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* --bench: steps per second of xor.c's eager loop (xor_train) and of this replay, in the
 * same process, each the median of `runs` trainings of `epochs` epochs. */
static int bench(int runs, int epochs) {
    double *eager = malloc(sizeof(double) * (size_t)runs * 3), *replay = eager + runs,
           *replayed = eager + 2 * runs;
    if (!eager) return 1;
    float preds[4];
    xor_error err = {TG_OK, ""};
    const double steps = 4.0 * epochs;
    for (int r = 0; r < runs; r++) {
        struct timespec t0, t1, t2;
        double run_seconds = 0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (xor_train(epochs, 0.4, NULL, preds) != 0) {
            fprintf(stderr, "xor_replay: eager: %s\n", tg_last_error());
            free(eager);
            return 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (xor_train_replay(epochs, 0.4, NULL, preds, &run_seconds, &err) != 0) {
            fprintf(stderr, "xor_replay: %s\n", err.message);
            free(eager);
            return 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &t2);
        eager[r] = steps / seconds_between(&t0, &t1);
        replay[r] = steps / seconds_between(&t1, &t2);
        replayed[r] = (steps - 1) / (run_seconds > 0 ? run_seconds : 1e-9);
    }
    printf("XOR per-sample SGD, %d epochs (%.0f steps), median of %d runs:\n", epochs, steps, runs);
    printf("  eager (xor.c)                 %12.0f steps/s  %8.4f us/step\n", median(eager, runs),
           1e6 / median(eager, runs));
    printf("  replay, whole training        %12.0f steps/s  %8.4f us/step\n", median(replay, runs),
           1e6 / median(replay, runs));
    printf("  replay, tg_program_run alone  %12.0f steps/s  %8.4f us/step\n",
           median(replayed, runs), 1e6 / median(replayed, runs));
    free(eager);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--bench")) {
        int runs = argc > 2 ? atoi(argv[2]) : 7, epochs = argc > 3 ? atoi(argv[3]) : 25000;
        if (runs < 1 || epochs < 1) {
            fprintf(stderr, "usage: %s --bench [runs >= 1] [epochs >= 1]\n", argv[0]);
            return 2;
        }
        return bench(runs, epochs);
    }
    int epochs = argc > 1 ? atoi(argv[1]) : 1000;
    if (epochs < 1) {
        fprintf(stderr, "usage: %s [epochs >= 1] | --bench [runs] [epochs]\n", argv[0]);
        return 2;
    }
    if (tg_version_number() < TG_VERSION_NUMBER) {
        fprintf(stderr, "libtapegrad %s is older than this program's header\n", tg_version());
        return 1;
    }
    printf("tapegrad %s (simd %s)\n", tg_version(), tg_simd_level());
    double *losses = malloc(sizeof *losses * (size_t)epochs);
    float preds[4];
    if (!losses) {
        fprintf(stderr, "xor_replay: out of memory\n");
        return 1;
    }
    xor_error err = {TG_OK, ""};
    double run_seconds = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (xor_train_replay(epochs, 0.4, losses, preds, &run_seconds, &err) != 0) {
        fprintf(stderr, "xor_replay: %s\n", err.message);
        free(losses);
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    for (int e = 0; e < epochs; e++)
        if (e % 100 == 0 || e == epochs - 1) printf("epoch %4d  mean loss %.9g\n", e, losses[e]);
    for (int i = 0; i < 4; i++)
        printf("%g xor %g -> %.9g\n", XOR_X[i][0], XOR_X[i][1], preds[i]);
    double seconds = seconds_between(&t0, &t1);
    printf("speed: %d steps in %.3f s (%.0f steps/s)\n", 4 * epochs, seconds,
           4 * epochs / (seconds > 0 ? seconds : 1e-9));
    long replayed = 4L * epochs - 1;
    printf("replayed: %ld steps in %.6f s (%.0f steps/s)\n", replayed, run_seconds,
           replayed / (run_seconds > 0 ? run_seconds : 1e-9));
    free(losses);
    return 0;
}
#endif
