/* xor_threads.c — two models trained at once in two threads give exactly the numbers of
 * training them one after the other (tapegrad has no global mutable state; each thread
 * owns its tensors, graphs and optimizer). Uses xor.c's training function.
 *
 *   cc -std=c11 -O2 examples/c/xor_threads.c $(python -m tapegrad config --cflags --libs) -o xor_threads
 *   ./xor_threads [epochs]
 */
#define XOR_NO_MAIN
#include "xor.c"

#include <pthread.h>
#include <string.h>

#define MAX_EPOCHS 5000

typedef struct {
    double lr;
    int epochs, status;
    double losses[MAX_EPOCHS];
    float preds[4];
} job;

static void *run_job(void *arg) {
    job *j = arg;
    j->status = xor_train(j->epochs, j->lr, j->losses, j->preds);
    return NULL;
}

int main(int argc, char **argv) {
    int epochs = argc > 1 ? atoi(argv[1]) : 1000;
    if (epochs < 1 || epochs > MAX_EPOCHS) return 2;
    static job serial[2], parallel[2];
    const double lrs[2] = {0.4, 0.25}; /* two different models */
    for (int i = 0; i < 2; i++) {
        serial[i].lr = parallel[i].lr = lrs[i];
        serial[i].epochs = parallel[i].epochs = epochs;
        run_job(&serial[i]);
        if (serial[i].status) {
            fprintf(stderr, "xor_threads: %s\n", tg_last_error());
            return 1;
        }
    }
    pthread_t threads[2];
    for (int i = 0; i < 2; i++)
        if (pthread_create(&threads[i], NULL, run_job, &parallel[i]) != 0) return 1;
    for (int i = 0; i < 2; i++) pthread_join(threads[i], NULL);
    int same = 1;
    for (int i = 0; i < 2; i++) {
        same &= parallel[i].status == 0;
        same &= !memcmp(serial[i].losses, parallel[i].losses, sizeof(double) * (size_t)epochs);
        same &= !memcmp(serial[i].preds, parallel[i].preds, sizeof serial[i].preds);
        printf("model %d (lr %g): final loss %.9g, predictions %.9g %.9g %.9g %.9g\n", i, lrs[i],
               parallel[i].losses[epochs - 1], parallel[i].preds[0], parallel[i].preds[1],
               parallel[i].preds[2], parallel[i].preds[3]);
    }
    printf("threaded == serial: %s\n", same ? "yes" : "NO");
    return same ? 0 : 1;
}
