/* xor_infer.c — inference in C from weights trained and saved by Python.
 *
 * In Python (examples/xor.py's model):
 *   model = nn.Sequential(nn.Linear(2, 2), nn.Sigmoid(), nn.Linear(2, 1), nn.Sigmoid())
 *   ... train ...
 *   tapegrad.save(model.state_dict(), "xor.npz")
 * Then:
 *   cc -std=c11 -O2 examples/c/xor_infer.c $(python -m tapegrad config --cflags --libs) -o xor_infer
 *   ./xor_infer xor.npz
 * prints the model's output for the four inputs, the numbers model(x) gives in Python.
 * The weights are read with the small .npz reader in npz.h.
 */
#include <stdio.h>

#include "npz.h"
#include "tapegrad.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s weights.npz\n", argv[0]);
        return 2;
    }
    const char *names[4] = {"0.weight", "0.bias", "2.weight", "2.bias"};
    tg_tensor *p[4] = {0};
    char err[512];
    int status = 1;
    for (int i = 0; i < 4; i++)
        if (!(p[i] = npz_load(argv[1], names[i], err, sizeof err))) {
            fprintf(stderr, "%s\n", err);
            goto done;
        }
    const float xs[8] = {0, 0, 0, 1, 1, 0, 1, 1};
    const int64_t shape[2] = {4, 2};
    tg_set_grad_enabled(0); /* inference: record nothing */
    tg_tensor *x = tg_from_data(TG_FLOAT32, 2, shape, xs);
    tg_tensor *a = x ? tg_linear(x, p[0], p[1]) : NULL; /* (4, 2) */
    tg_tensor *h = a ? tg_sigmoid(a) : NULL;
    tg_tensor *z = h ? tg_linear(h, p[2], p[3]) : NULL; /* (4, 1) */
    tg_tensor *y = z ? tg_sigmoid(z) : NULL;
    if (!y || tg_tensor_dtype(y) != TG_FLOAT32 || tg_tensor_numel(y) != 4) {
        fprintf(stderr, "xor_infer: %s\n", y ? "expected float32 weights of a 2-2-1 net" : tg_last_error());
    } else {
        const float *out = tg_tensor_data(y);
        for (int i = 0; i < 4; i++) printf("%g xor %g -> %.9g\n", xs[2 * i], xs[2 * i + 1], out[i]);
        status = 0;
    }
    tg_tensor_release(x);
    tg_tensor_release(a);
    tg_tensor_release(h);
    tg_tensor_release(z);
    tg_tensor_release(y);
done:
    for (int i = 0; i < 4; i++) tg_tensor_release(p[i]);
    return status;
}
