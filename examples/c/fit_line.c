/* fit_line.c — tapegrad embedded in a plain C program: fit y = 2x with one weight.
 * Build (from the repository root):
 *   cc -std=c11 -O2 -Icsrc/include -Icsrc examples/c/fit_line.c $(find csrc -name '*.c') -lm -lpthread -o fit_line
 */
#include <stdio.h>

#include "tapegrad.h"

int main(void) {
    int64_t shape1[1] = {1};
    tg_tensor *w = tg_zeros(TG_FLOAT64, 1, shape1); /* a leaf parameter */
    tg_tensor_set_requires_grad(w, 1);
    double xs[1] = {3.0}, ys[1] = {6.0};
    tg_tensor *x = tg_from_data(TG_FLOAT64, 1, shape1, xs);
    tg_tensor *y = tg_from_data(TG_FLOAT64, 1, shape1, ys);
    tg_tensor *params[1] = {w};
    tg_optim *opt = tg_sgd_new(params, 1, 0.01, 0, 0, 0, 0);
    double last_loss = 0;
    for (int step = 0; step < 100; step++) {
        tg_tensor *pred = tg_mul(w, x); /* records a node */
        tg_tensor *loss = pred ? tg_mse_loss(pred, y, TG_REDUCE_MEAN) : NULL;
        if (!loss || tg_backward(loss, NULL, 0) != TG_OK || tg_optim_step(opt) != TG_OK) {
            fprintf(stderr, "%s\n", tg_last_error()); /* the core never prints */
            return 1;
        }
        tg_tensor_item(loss, &last_loss);
        tg_optim_zero_grad(opt, 1);
        tg_tensor_release(loss);
        tg_tensor_release(pred);
    }
    printf("w = %.6f  loss = %.3e\n", ((double *)tg_tensor_data(w))[0], last_loss);

    /* Errors are statuses with a message, never a crash: */
    int64_t shape2[1] = {2};
    tg_tensor *z = tg_zeros(TG_FLOAT64, 1, shape2);
    tg_tensor *bad = tg_matmul(z, w);
    printf("error: %s\n", bad ? "none" : tg_last_error());

    tg_tensor_release(z);
    tg_optim_free(opt);
    tg_tensor_release(x);
    tg_tensor_release(y);
    tg_tensor_release(w);
    return 0;
}
