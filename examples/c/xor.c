/* xor.c — tapegrad from C, eager style: the XOR net (2-2-1, sigmoid hidden and output,
 * binary cross-entropy, SGD lr 0.4, one update per sample) trained for 1000 epochs.
 * Each step builds the graph by calling ops, runs backward and updates the weights.
 *
 * Build against an installed tapegrad (docs/embedding.md):
 *   cc -std=c11 -O2 examples/c/xor.c $(python -m tapegrad config --cflags --libs) -o xor
 *   cc -std=c11 -O2 examples/c/xor.c $(pkg-config --cflags --libs tapegrad) -o xor
 *   ./xor [epochs]
 * It prints the mean loss every 100 epochs, the four predictions and the training speed.
 * The same program through the Python API gives the same numbers
 * (tests/test_c_library.py checks it, digit for digit).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "tapegrad.h"

/* The data in training order, and the targets. */
static const float XOR_X[4][2] = {{1, 1}, {0, 1}, {1, 0}, {0, 0}};
static const float XOR_Y[4] = {0, 1, 1, 0};

typedef struct {
    tg_tensor *w1, *b1, *w2, *b2; /* (2, 2), (2), (2), () */
} xor_net;

static void xor_net_free(xor_net *net) {
    tg_tensor_release(net->w1);
    tg_tensor_release(net->b1);
    tg_tensor_release(net->w2);
    tg_tensor_release(net->b2);
}

/* The fixed starting weights; each a leaf that requires grad. 0 on success. */
static int xor_net_init(xor_net *net) {
    const float w1[4] = {0.1f, -0.1f, -0.1f, 0.1f}, b1[2] = {0.1f, -0.1f};
    const float w2[2] = {0.1f, -0.1f}, b2 = 0.1f;
    const int64_t s22[2] = {2, 2}, s2[1] = {2};
    net->w1 = tg_from_data(TG_FLOAT32, 2, s22, w1);
    net->b1 = tg_from_data(TG_FLOAT32, 1, s2, b1);
    net->w2 = tg_from_data(TG_FLOAT32, 1, s2, w2);
    net->b2 = tg_from_data(TG_FLOAT32, 0, NULL, &b2);
    tg_tensor *all[4] = {net->w1, net->b1, net->w2, net->b2};
    for (int i = 0; i < 4; i++)
        if (!all[i] || tg_tensor_set_requires_grad(all[i], 1) != TG_OK) {
            xor_net_free(net);
            return -1;
        }
    return 0;
}

/* p = sigmoid(sigmoid(x @ w1^T + b1) . w2 + b2) for one sample x of shape (2): a new
 * reference, or NULL (the error is in tg_last_error()). The intermediate tensors can be
 * released at once: the graph keeps what backward needs. */
static tg_tensor *xor_forward(const xor_net *net, tg_tensor *x) {
    tg_tensor *a = tg_linear(x, net->w1, net->b1);
    tg_tensor *h = a ? tg_sigmoid(a) : NULL;
    tg_tensor *z = h ? tg_matmul(h, net->w2) : NULL;
    tg_tensor *o = z ? tg_add(z, net->b2) : NULL;
    tg_tensor *p = o ? tg_sigmoid(o) : NULL;
    tg_tensor_release(a);
    tg_tensor_release(h);
    tg_tensor_release(z);
    tg_tensor_release(o);
    return p;
}

/* Trains a fresh net for `epochs` epochs with learning rate lr. epoch_loss[e] gets the
 * mean loss of epoch e (may be NULL); preds the final predictions for XOR_X. Owns every
 * tensor it makes (safe to run in several threads at once). 0 on success. */
static int xor_train(int epochs, double lr, double *epoch_loss, float preds[4]) {
    xor_net net;
    if (xor_net_init(&net) != 0) return -1;
    tg_tensor *xs[4] = {0}, *ys[4] = {0};
    const int64_t s2[1] = {2};
    tg_tensor *params[4] = {net.w1, net.b1, net.w2, net.b2};
    tg_optim *opt = tg_sgd_new(params, 4, lr, 0, 0, 0, 0);
    int ok = opt != NULL;
    for (int i = 0; i < 4 && ok; i++) {
        xs[i] = tg_from_data(TG_FLOAT32, 1, s2, XOR_X[i]);
        ys[i] = tg_from_data(TG_FLOAT32, 0, NULL, &XOR_Y[i]);
        ok = xs[i] && ys[i];
    }
    for (int e = 0; e < epochs && ok; e++) {
        double total = 0;
        for (int i = 0; i < 4 && ok; i++) {
            tg_tensor *p = xor_forward(&net, xs[i]);
            tg_tensor *loss = p ? tg_binary_cross_entropy(p, ys[i], TG_REDUCE_MEAN) : NULL;
            double value = 0;
            tg_optim_zero_grad(opt, 1);
            ok = loss && tg_backward(loss, NULL, 0) == TG_OK && tg_optim_step(opt) == TG_OK &&
                 tg_tensor_item(loss, &value) == TG_OK;
            total += value;
            tg_tensor_release(loss);
            tg_tensor_release(p);
        }
        if (ok && epoch_loss) epoch_loss[e] = total / 4;
    }
    /* predictions, without recording a graph */
    int previous = tg_set_grad_enabled(0);
    for (int i = 0; i < 4 && ok; i++) {
        tg_tensor *p = xor_forward(&net, xs[i]);
        double v = 0;
        ok = p && tg_tensor_item(p, &v) == TG_OK;
        preds[i] = (float)v;
        tg_tensor_release(p);
    }
    tg_set_grad_enabled(previous);
    for (int i = 0; i < 4; i++) {
        tg_tensor_release(xs[i]);
        tg_tensor_release(ys[i]);
    }
    tg_optim_free(opt);
    xor_net_free(&net);
    return ok ? 0 : -1;
}

#ifndef XOR_NO_MAIN
int main(int argc, char **argv) {
    int epochs = argc > 1 ? atoi(argv[1]) : 1000;
    if (epochs < 1) {
        fprintf(stderr, "usage: %s [epochs >= 1]\n", argv[0]);
        return 2;
    }
    if (tg_version_number() < TG_VERSION_NUMBER) {
        fprintf(stderr, "libtapegrad %s is older than this program's header\n", tg_version());
        return 1;
    }
    printf("tapegrad %s (simd %s)\n", tg_version(), tg_simd_level());
    double *losses = malloc(sizeof *losses * (size_t)epochs);
    float preds[4];
    if (!losses) return 1;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (xor_train(epochs, 0.4, losses, preds) != 0) {
        fprintf(stderr, "xor: %s\n", tg_last_error()); /* the core never prints */
        free(losses);
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    for (int e = 0; e < epochs; e++)
        if (e % 100 == 0 || e == epochs - 1) printf("epoch %4d  mean loss %.9g\n", e, losses[e]);
    for (int i = 0; i < 4; i++)
        printf("%g xor %g -> %.9g\n", XOR_X[i][0], XOR_X[i][1], preds[i]);
    double seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("speed: %d steps in %.3f s (%.0f steps/s)\n", 4 * epochs, seconds,
           4 * epochs / (seconds > 0 ? seconds : 1e-9));
    free(losses);
    return 0;
}
#endif
