/*
 * tapegrad.h — the public C API of tapegrad, a small reverse-mode autograd core.
 *
 * Worked example (fit y = 2x with one weight, plain C, no Python; it is
 * examples/c/fit_line.c, compiled and run by tests/test_c_embedding.py):
 *
 *     int64_t shape1[1] = {1};
 *     tg_tensor *w = tg_zeros(TG_FLOAT64, 1, shape1);     // a leaf parameter
 *     tg_tensor_set_requires_grad(w, 1);
 *     double xs[1] = {3.0}, ys[1] = {6.0};
 *     tg_tensor *x = tg_from_data(TG_FLOAT64, 1, shape1, xs);
 *     tg_tensor *y = tg_from_data(TG_FLOAT64, 1, shape1, ys);
 *     tg_tensor *params[1] = {w};
 *     tg_optim *opt = tg_sgd_new(params, 1, 0.01, 0, 0, 0, 0);
 *     for (int step = 0; step < 100; step++) {
 *         tg_tensor *pred = tg_mul(w, x);                  // records a node
 *         tg_tensor *loss = pred ? tg_mse_loss(pred, y, TG_REDUCE_MEAN) : NULL;
 *         if (!loss || tg_backward(loss, NULL, 0) != TG_OK || tg_optim_step(opt) != TG_OK) {
 *             fprintf(stderr, "%s\n", tg_last_error());   // the core never prints
 *             return 1;
 *         }
 *         tg_optim_zero_grad(opt, 1);
 *         tg_tensor_release(loss);
 *         tg_tensor_release(pred);
 *     }
 *     // ((double *)tg_tensor_data(w))[0] is now close to 2
 *     tg_optim_free(opt); tg_tensor_release(x); tg_tensor_release(y); tg_tensor_release(w);
 *
 * Conventions
 *  - Every name starts with tg_. Sizes are int64_t, element counts included.
 *  - Functions that make a tensor return a NEW reference (the caller owns it and
 *    releases it with tg_tensor_release), or NULL on failure.
 *  - Other fallible functions return a tg_status (TG_OK == 0).
 *  - On failure, tg_last_status() and tg_last_error() give the code and a message
 *    naming the op, shapes and dtypes. Both are thread-local.
 *  - The core never aborts, exits or prints. There is no global mutable state except
 *    the thread-local error and grad-mode flags, so independent models may be trained
 *    in parallel threads. Reference counts are atomic, so tensors that need no gradient
 *    (a dataset, constants) may be shared by threads building graphs at once. A leaf's
 *    gradient has a lock in the tensor: threads may run backward into shared leaves
 *    (each backward's contribution lands whole) while others read, replace or zero
 *    their grads. The records of a graph belong to one backward at a time: a backward
 *    claims (atomically) every record it runs through and lets go when it returns, and
 *    a backward that reaches a record claimed by another thread's running backward (a
 *    shared h = w * 2 feeding both threads' losses) fails with TG_ERR_STATE "this graph
 *    is in use by another thread's backward", letting go of its own claims and adding
 *    nothing to any gradient; it may simply be retried. Writing a tensor's data while
 *    another thread reads it is the caller's race (as in PyTorch).
 *  - All tensors are C-contiguous, row-major. Results are deterministic: every
 *    reduction has a fixed order that does not depend on the thread count.
 *
 * Autograd model
 *  - A tensor made by an op while grad mode is on and at least one input requires grad
 *    gets a node (its tape record): the op, its inputs and what its backward needs.
 *  - tg_backward(root) collects the records reachable from root, orders them in reverse
 *    execution order with an explicit stack (no recursion, so 10^6-op chains are fine),
 *    runs each op's backward and ADDS (+=) into leaf gradients, like PyTorch.
 *  - Unless retain_graph is set, the visited records are released after backward; a
 *    second backward through them fails with TG_ERR_STATE.
 */
#ifndef TAPEGRAD_H
#define TAPEGRAD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Version of this header. TG_VERSION_NUMBER is MAJOR * 10000 + MINOR * 100 + PATCH;
 * tg_version_number() is the same number for the library actually loaded, so a program
 * can check at run time that it runs against a library at least as new as its header.
 * ABI: the shared library's soname is libtapegrad.so.MAJOR from 1.0 on; while MAJOR is 0,
 * any minor release may change the API, so the soname is libtapegrad.so.0.MINOR. */
#define TG_VERSION_MAJOR 0
#define TG_VERSION_MINOR 1
#define TG_VERSION_PATCH 0
#define TG_VERSION_NUMBER 100
#define TG_MAX_DIMS 8

/* ---------------------------------------------------------------- status */

typedef enum {
    TG_OK = 0,
    TG_ERR_SHAPE = 1,   /* shapes do not fit the op (Python: ValueError) */
    TG_ERR_DTYPE = 2,   /* dtype not supported or mismatched (Python: TypeError) */
    TG_ERR_NOMEM = 3,   /* allocation failed or size overflows (Python: MemoryError) */
    TG_ERR_ARG = 4,     /* bad argument value (Python: ValueError) */
    TG_ERR_STATE = 5,   /* autograd misuse, e.g. graph freed (Python: RuntimeError) */
    TG_ERR_INDEX = 6,   /* dim or class index out of range (Python: IndexError) */
    TG_ERR_VALUE = 7    /* NaN/Inf found by a check (Python: FloatingPointError) */
} tg_status;

/* The status and message of the last failure on this thread. */
tg_status tg_last_status(void);
const char *tg_last_error(void);
/* Reset the thread's error to TG_OK / "". */
void tg_clear_error(void);

/* ---------------------------------------------------------------- dtypes */

typedef enum {
    TG_FLOAT32 = 0,
    TG_FLOAT64 = 1,
    TG_INT64 = 2,
    TG_BOOL = 3, /* one byte, 0 or 1; made by comparisons */
    TG_DTYPE_COUNT = 4
} tg_dtype;

/* Bytes per element (4, 8, 8, 1); 0 for an invalid dtype. */
size_t tg_dtype_size(tg_dtype dtype);
/* "float32", "float64", "int64", "bool". */
const char *tg_dtype_name(tg_dtype dtype);

/* ---------------------------------------------------------------- tensors */

typedef struct tg_tensor tg_tensor;

/* New tensor of the given shape, filled with zeros / ones / a value. ndim 0..8;
 * shape may be NULL when ndim == 0 (a 0-d scalar). Negative sizes: TG_ERR_SHAPE.
 * A size whose byte count overflows or cannot be allocated: TG_ERR_NOMEM. For int64 a
 * value is truncated toward zero; NaN, an infinity or a value outside [-2^63, 2^63)
 * cannot be converted: TG_ERR_ARG (tg_arange too, for any element). */
tg_tensor *tg_zeros(tg_dtype dtype, int ndim, const int64_t *shape);
tg_tensor *tg_full(tg_dtype dtype, int ndim, const int64_t *shape, double value);
/* New tensor holding a copy of `data` (numel elements of `dtype`, row-major). */
tg_tensor *tg_from_data(tg_dtype dtype, int ndim, const int64_t *shape, const void *data);
/* [start, start+step, ...) with n elements. */
tg_tensor *tg_arange(tg_dtype dtype, double start, double step, int64_t n);

/* Reference counting. tg_tensor_release(NULL) is a no-op. Freeing a long graph is
 * iterative (no recursion). */
void tg_tensor_retain(tg_tensor *t);
void tg_tensor_release(tg_tensor *t);

tg_dtype tg_tensor_dtype(const tg_tensor *t);
int tg_tensor_ndim(const tg_tensor *t);
/* Pointer to ndim sizes, valid while t lives. */
const int64_t *tg_tensor_shape(const tg_tensor *t);
int64_t tg_tensor_numel(const tg_tensor *t);
/* Pointer to the first element (contiguous, row-major); writable; valid while t lives.
 * Writing through it bypasses autograd (like torch's .data). */
void *tg_tensor_data(tg_tensor *t);
/* Copy numel elements out into `out` (which must hold numel * dtype size bytes). */
tg_status tg_tensor_copy_to(const tg_tensor *t, void *out);
/* Overwrite t's elements with `data` (same dtype, numel elements). */
tg_status tg_tensor_copy_from(tg_tensor *t, const void *data);
/* Value of a one-element tensor as double. */
tg_status tg_tensor_item(const tg_tensor *t, double *out);

/* Autograd flags. Only floating leaves may require grad (TG_ERR_DTYPE otherwise);
 * a non-leaf cannot be changed (TG_ERR_STATE). */
int tg_tensor_requires_grad(const tg_tensor *t);
tg_status tg_tensor_set_requires_grad(tg_tensor *t, int requires_grad);
/* 1 if t has no node (a leaf); op outputs that recorded a node are not leaves. */
int tg_tensor_is_leaf(const tg_tensor *t);
/* Name of the op that made t ("mul", ...), or NULL for a leaf. */
const char *tg_tensor_op_name(const tg_tensor *t);
/* The accumulated gradient of a leaf: a NEW reference, or NULL when there is none
 * (tg_last_status() stays TG_OK). */
tg_tensor *tg_tensor_grad(const tg_tensor *t);
/* Replace the gradient (NULL clears it). The new gradient must match t's shape and
 * dtype. The tensor keeps its own reference. TG_ERR_STATE for t itself (as PyTorch), a
 * gradient made by an op (assign its detach()) or one whose own grad chain leads back
 * to t (a reference cycle). A gradient sharing t's storage is accepted, as in PyTorch. */
tg_status tg_tensor_set_grad(tg_tensor *t, tg_tensor *grad);
/* Fill the gradient with zeros (if it exists). */
void tg_tensor_zero_grad(tg_tensor *t);
/* New tensor sharing t's storage, with no node and requires_grad = 0. */
tg_tensor *tg_detach(tg_tensor *t);
/* New tensor with its own copy of the data, no node, requires_grad = 0. */
tg_tensor *tg_clone_data(const tg_tensor *t);
/* TG_ERR_VALUE if t holds a NaN or an infinity (name used in the message). */
tg_status tg_check_finite(const tg_tensor *t, const char *name);

/* Grad mode of the calling thread (on by default). Returns the previous mode. */
int tg_set_grad_enabled(int enabled);
int tg_is_grad_enabled(void);

/* ---------------------------------------------------------------- random numbers */

/* A seedable generator (xoshiro256**). Not shared between threads. */
typedef struct tg_rng tg_rng;
tg_rng *tg_rng_new(uint64_t seed);
void tg_rng_free(tg_rng *rng);
void tg_rng_seed(tg_rng *rng, uint64_t seed);
/* Uniform [low, high) and normal(mean, std) tensors. */
tg_tensor *tg_rand(tg_rng *rng, tg_dtype dtype, int ndim, const int64_t *shape, double low,
                   double high);
tg_tensor *tg_randn(tg_rng *rng, tg_dtype dtype, int ndim, const int64_t *shape, double mean,
                    double std);
/* A permutation of 0..n-1 into out (Fisher-Yates). */
tg_status tg_rng_permutation(tg_rng *rng, int64_t n, int64_t *out);

/* ---------------------------------------------------------------- ops
 * Each returns a new tensor or NULL. Both operands of a binary op must have the same
 * dtype (the caller promotes; TG_ERR_DTYPE otherwise). Floating dtypes only, except:
 * add, sub, mul and the sum also take int64 (wrapping on overflow, as PyTorch), sum takes
 * bool (counting the true elements, int64 result), and pow_scalar takes int64 with a
 * non-negative integer exponent. */

/* Elementwise with numpy broadcasting. */
tg_tensor *tg_add(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_sub(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_mul(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_div(tg_tensor *a, tg_tensor *b);
/* With a scalar s (the tensor keeps its dtype). */
tg_tensor *tg_add_scalar(tg_tensor *a, double s);  /* a + s */
tg_tensor *tg_mul_scalar(tg_tensor *a, double s);  /* a * s */
tg_tensor *tg_rsub_scalar(tg_tensor *a, double s); /* s - a */
tg_tensor *tg_div_scalar(tg_tensor *a, double s);  /* a / s */
tg_tensor *tg_rdiv_scalar(tg_tensor *a, double s); /* s / a */
tg_tensor *tg_pow_scalar(tg_tensor *a, double s);  /* a ** s */
tg_tensor *tg_rpow_scalar(tg_tensor *a, double s); /* s ** a */
/* a ** b with broadcasting; both gradients (d/db = a**b log a, 0 where a == 0, b >= 0). */
tg_tensor *tg_pow(tg_tensor *a, tg_tensor *b);
/* Unary. sigmoid is stable for any |x|; log(0) = -inf as in PyTorch. */
tg_tensor *tg_neg(tg_tensor *a);
tg_tensor *tg_exp(tg_tensor *a);
tg_tensor *tg_log(tg_tensor *a);
tg_tensor *tg_sigmoid(tg_tensor *a);
tg_tensor *tg_tanh(tg_tensor *a);
tg_tensor *tg_relu(tg_tensor *a); /* gradient at exactly 0 is 0, as in PyTorch */

/* torch.matmul for 1-D and 2-D operands: (n)@(n) -> (), (m,k)@(k,n) -> (m,n),
 * (k)@(k,n) -> (n), (m,k)@(k) -> (m). */
tg_tensor *tg_matmul(tg_tensor *a, tg_tensor *b);
/* y = x @ w^T + b, fused. x (n, in) or (in); w (out, in); b (out) or NULL. */
tg_tensor *tg_linear(tg_tensor *x, tg_tensor *w, tg_tensor *b);

/* Reductions. dim in [-ndim, ndim); all_dims != 0 reduces everything to a 0-d tensor
 * (keepdim then keeps ndim dims of size 1). */
tg_tensor *tg_sum(tg_tensor *a, int all_dims, int dim, int keepdim);
tg_tensor *tg_mean(tg_tensor *a, int all_dims, int dim, int keepdim);
/* Index (int64) of the largest / smallest element along dim (all_dims: of the flattened
 * tensor). Ties give the first index; NaN wins, as in PyTorch. Float and int64 inputs;
 * an empty reduction: TG_ERR_INDEX. Never recorded. */
tg_tensor *tg_argmax(tg_tensor *a, int all_dims, int dim, int keepdim);
tg_tensor *tg_argmin(tg_tensor *a, int all_dims, int dim, int keepdim);

/* Shape ops. reshape: same numel (no -1 here; the caller resolves it). It shares
 * storage with a. transpose swaps two dims (a copy). */
tg_tensor *tg_reshape(tg_tensor *a, int ndim, const int64_t *shape);
tg_tensor *tg_transpose(tg_tensor *a, int dim0, int dim1);

/* Softmax family along dim (stable: max subtracted). */
tg_tensor *tg_softmax(tg_tensor *a, int dim);
tg_tensor *tg_log_softmax(tg_tensor *a, int dim);

/* ---------------------------------------------------------------- views, in-place, dtypes
 *
 * Views share their base's storage (writes through one are seen by the other) and its
 * version counter. Every in-place write made through this API bumps that counter; a
 * record remembers the versions of the tensors its backward reads, and tg_backward fails
 * (TG_ERR_STATE, naming the op) when one of them was modified in place since, instead of
 * computing a wrong gradient. Writes through tg_tensor_data's pointer are not counted. */

/* The storage's version: how many in-place writes it has seen. */
int64_t tg_tensor_version(const tg_tensor *t);
/* a[index] along dim 0 (index in [-n, n), TG_ERR_INDEX otherwise): a view with one dim
 * fewer. a[start:start+length] along dim 0: a view. Both are recorded (differentiable). */
tg_tensor *tg_select(tg_tensor *a, int64_t index);
tg_tensor *tg_narrow(tg_tensor *a, int64_t start, int64_t length);
/* Write src, broadcast to dst's shape (TG_ERR_SHAPE otherwise) and converted to dst's
 * dtype, into dst's storage (src may overlap dst). In grad mode, refused (TG_ERR_STATE)
 * when dst requires grad (a leaf parameter: do it with grad mode off, as an optimizer
 * does) or src requires grad (tapegrad does not record in-place ops). */
tg_status tg_copy_(tg_tensor *dst, const tg_tensor *src);
/* A copy converted to dtype (a new reference even when the dtype is the same).
 * floating -> int64 truncates toward zero; NaN and values outside int64's range give
 * INT64_MIN (what PyTorch gives on x86), never undefined behaviour. -> bool: x != 0.
 * Between floating dtypes it is recorded (the gradient is converted back). */
tg_tensor *tg_to_dtype(tg_tensor *a, tg_dtype dtype);

typedef enum {
    TG_CMP_EQ = 0,
    TG_CMP_NE = 1,
    TG_CMP_LT = 2,
    TG_CMP_LE = 3,
    TG_CMP_GT = 4,
    TG_CMP_GE = 5
} tg_compare_op;
/* a OP b elementwise with broadcasting, a bool tensor; a and b must have the same dtype
 * (any dtype; the caller promotes). NaN compares unequal to everything. Never recorded. */
tg_tensor *tg_compare(tg_tensor *a, tg_tensor *b, tg_compare_op op);

/* ---------------------------------------------------------------- losses */

typedef enum { TG_REDUCE_NONE = 0, TG_REDUCE_MEAN = 1, TG_REDUCE_SUM = 2 } tg_reduction;

/* (pred - target)^2, same shapes (no broadcasting, TG_ERR_SHAPE otherwise). */
tg_tensor *tg_mse_loss(tg_tensor *pred, tg_tensor *target, tg_reduction reduction);
/* -(t log p + (1-t) log(1-p)), logs clamped at -100 as in PyTorch; p and t in [0,1]
 * (TG_ERR_ARG otherwise). A target that requires grad gets PyTorch's gradient
 * g (log(1-p) - log p), unclamped (infinite at p = 0 or 1). */
tg_tensor *tg_binary_cross_entropy(tg_tensor *p, tg_tensor *target, tg_reduction reduction);
/* BCE on logits, stable for any logit: max(x,0) - x t + log1p(exp(-|x|)). */
tg_tensor *tg_binary_cross_entropy_with_logits(tg_tensor *logits, tg_tensor *target,
                                               tg_reduction reduction);
/* Fused log-softmax + negative log likelihood. logits (n, c) or (c); labels int64
 * (n) or () with values in [0, c) (TG_ERR_INDEX otherwise). */
tg_tensor *tg_cross_entropy(tg_tensor *logits, tg_tensor *labels, tg_reduction reduction);

/* ---------------------------------------------------------------- backward */

/* Run backward from root. grad: the gradient of root (same shape and dtype), or NULL
 * for a one-element root (ones); it is copied first, so it may be a gradient this
 * backward adds into. A root with more than one element and no grad: TG_ERR_STATE. A
 * root that does not require grad: TG_ERR_STATE. A record in use by another thread's
 * running backward: TG_ERR_STATE (see Conventions). A failure after some records ran
 * (TG_ERR_NOMEM) leaves their contributions in the gradients; with retain_graph the
 * graph stays usable (zero the gradients and run backward again). */
tg_status tg_backward(tg_tensor *root, tg_tensor *grad, int retain_graph);

/* ---------------------------------------------------------------- optimizers */

typedef struct tg_optim tg_optim;
/* SGD with PyTorch's rule (momentum, dampening, weight decay, nesterov). The optimizer
 * keeps references to the parameters. Invalid hyper-parameters: TG_ERR_ARG. */
tg_optim *tg_sgd_new(tg_tensor **params, int64_t n, double lr, double momentum,
                     double dampening, double weight_decay, int nesterov);
/* Adam with PyTorch's rule (bias-corrected, L2 weight decay added to the gradient). */
tg_optim *tg_adam_new(tg_tensor **params, int64_t n, double lr, double beta1, double beta2,
                      double eps, double weight_decay);
void tg_optim_free(tg_optim *opt);
/* One update of every parameter that has a gradient (parameters without one are
 * skipped, as in PyTorch). */
tg_status tg_optim_step(tg_optim *opt);
/* Zero (set_to_none = 0) or drop (set_to_none = 1) every parameter's gradient. */
void tg_optim_zero_grad(tg_optim *opt, int set_to_none);
tg_status tg_optim_set_lr(tg_optim *opt, double lr);
double tg_optim_get_lr(const tg_optim *opt);
/* Number of steps taken. */
int64_t tg_optim_steps(const tg_optim *opt);
/* Per-parameter state buffer `which` (SGD: 0 = momentum; Adam: 0 = exp_avg,
 * 1 = exp_avg_sq) as a new reference, or NULL if it does not exist yet. */
tg_tensor *tg_optim_state(const tg_optim *opt, int64_t param_index, int which);
/* Per-parameter steps taken (Adam's bias-correction step t), or -1 for a bad index. */
int64_t tg_optim_param_steps(const tg_optim *opt, int64_t param_index);
/* Restore state buffer `which` of one parameter from src (same shape and dtype as the
 * parameter; copied) and its step count, e.g. when loading a checkpoint. */
tg_status tg_optim_load_state(tg_optim *opt, int64_t param_index, int which,
                              const tg_tensor *src, int64_t param_steps);

/* ---------------------------------------------------------------- programs (replay)
 *
 * Capture one step — a training step (zero_grad, forward, loss, backward, optimizer
 * step) or a forward pass — once, then run it for many steps in one call:
 *
 *     tg_program *prog = tg_program_new();
 *     tg_capture_begin(prog);              // this thread's ops are now also recorded
 *     tg_capture_input(prog, 0, xb);       // the batch tensors, before the step uses them
 *     tg_capture_input(prog, 1, yb);
 *     ... tg_optim_zero_grad, ops, loss, tg_backward(loss), tg_optim_step ...
 *     tg_capture_output(prog, loss);       // what each step reports
 *     tg_capture_end(prog);                // plan the buffers
 *     tg_program_run(prog, X, Y, order, NULL, losses);  // steps 2..n, all in C
 *
 * The captured step really runs once (eagerly, on the batch given). Every op is recorded,
 * also ops under no_grad and ops on tensors that need no gradient, so values computed from
 * the batch are recomputed each step. Tensors the step reads but did not compute (the
 * parameters, constants) are used where they are: a run sees their current values. What
 * a program can't replay fails the capture with TG_ERR_STATE naming it: in-place writes,
 * tg_detach of a tensor of the step, assigning a gradient, backward with an explicit
 * gradient. Ops without a gradient (comparisons, argmax / argmin, integer sums and powers,
 * conversions to or from int64 / bool) are recorded and replayed like every other op, so
 * a mask computed inside the step is recomputed each step. Control flow that depends on
 * values is frozen at the captured step.
 * Replayed steps run the same kernels, in the same order, on buffers zeroed and
 * accumulated as in eager mode: the results are bitwise those of the eager loop. Nothing
 * is allocated per step (buffers, gradients and one scratch area are planned at
 * tg_capture_end). Parameter gradients live in the program: after capture each
 * parameter's grad is a view of the program's buffer (or NULL when zero_grad dropped it).
 * A program keeps references to the tensors it uses and to nothing else: the optimizers
 * it captured must outlive it. One thread captures at a time per program; a program is
 * run by one thread at a time, and nothing else may use its model meanwhile. */
typedef struct tg_program tg_program;
tg_program *tg_program_new(void);
void tg_program_free(tg_program *prog);
/* Start recording this thread's ops into prog (TG_ERR_STATE if prog was captured, or this
 * thread is already capturing). */
tg_status tg_capture_begin(tg_program *prog);
/* Declare t as input slot 0 (X) or 1 (y) of the step: its first dim is the batch, and a
 * run fills it with the rows of its arrays. Before the step uses t. */
tg_status tg_capture_input(tg_program *prog, int slot, tg_tensor *t);
/* Declare t (computed by the step) as its output: copied out after each step. */
tg_status tg_capture_output(tg_program *prog, tg_tensor *t);
/* Stop recording and plan the program. The first error of the capture (an op that can't
 * be captured) is reported here too. */
tg_status tg_capture_end(tg_program *prog);
/* Run len(order) / batch steps. Step s fills each input slot with the rows
 * order[s * batch .. s * batch + batch) of x (slot 0) and y (slot 1), which must match
 * the captured inputs in dtype and every dim but the first. lr: NULL, or a float64 tensor
 * of one learning rate per step for every captured optimizer (restored after the run).
 * out: NULL, or a tensor of the output's dtype with steps * (output numel) elements: step
 * s's output is written at s * numel. Data-dependent checks (class labels in range, BCE
 * targets in [0, 1]) run each step: a failure stops the run there with the step in the
 * message (the steps before it are done). A parameter replaced since the capture, or an
 * optimizer's parameter list changed: TG_ERR_STATE. */
tg_status tg_program_run(tg_program *prog, const tg_tensor *x, const tg_tensor *y,
                         const tg_tensor *order, const tg_tensor *lr, tg_tensor *out);
/* Copy the output of the last step into dst (same dtype and numel). */
tg_status tg_program_output(const tg_program *prog, tg_tensor *dst);
/* The captured batch size (rows of input 0), and the number of instructions. */
int64_t tg_program_batch(const tg_program *prog);
int64_t tg_program_instruction_count(const tg_program *prog);

/* ---------------------------------------------------------------- tensor storage */

/* Tensor data is 64-byte aligned. Freed blocks of 64 KiB or more are kept in a cache of
 * the thread that frees them and handed out again for tensors of the same size class
 * (a training step asks for the same sizes every step), instead of going back to the C
 * library and returning as fresh pages. Per thread: at most 32 blocks and `bytes` in all
 * (default 256 MiB; 0 turns the cache off and empties it), the oldest dropped first; a
 * thread's cache is emptied when the thread exits. */
void tg_set_storage_cache_limit(size_t bytes);
size_t tg_get_storage_cache_limit(void);
/* Bytes this thread's cache holds now. */
size_t tg_storage_cache_bytes(void);
/* Frees every block in this thread's cache (e.g. before a leak checker's report). */
void tg_storage_cache_release(void);

/* ---------------------------------------------------------------- kernels & threads */

/* C[M,N] = (accumulate ? C : 0) + op(A)[M,K] * op(B)[K,N], row-major.
 * op(A) = A (A is M x K, row stride lda) or, if trans_a, A^T (A is K x M).
 * op(B) = B (K x N, ldb) or, if trans_b, B^T (B is N x K). Never fails; the result does
 * not depend on nthreads (each C element is summed over k in the same order). */
void tg_gemm_f32(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, int trans_a,
                 const float *B, int64_t ldb, int trans_b, float *C, int64_t ldc,
                 int accumulate, int nthreads);
void tg_gemm_f64(int64_t M, int64_t N, int64_t K, const double *A, int64_t lda, int trans_a,
                 const double *B, int64_t ldb, int trans_b, double *C, int64_t ldc,
                 int accumulate, int nthreads);
/* Threads used by the kernels of ops called from this thread (thread-local setting).
 * Default: the number of online CPUs, capped at 8. Small problems never spawn threads
 * (a matmul needs M*N*K >= 2^20 before a second thread is used). n < 1: TG_ERR_ARG.
 * n above max(online CPUs, 8) is capped there (tg_get_num_threads returns the cap). */
tg_status tg_set_num_threads(int n);
int tg_get_num_threads(void);

/* The ops the core records, for tests that must cover every op: their number, and the
 * name of op i (NULL when out of range). */
int tg_op_count(void);
const char *tg_op_name(int op);

/* The loaded library's version: "MAJOR.MINOR.PATCH", and MAJOR * 10000 + MINOR * 100 +
 * PATCH (compare with TG_VERSION_NUMBER from the header you compiled against). */
const char *tg_version(void);
int tg_version_number(void);

/* The instruction set the kernels dispatch to on this CPU: "avx512", "avx2" or
 * "generic". */
const char *tg_simd_level(void);

/* Test reference kernels: the same contract as tg_gemm_f32/f64 (without nthreads), computed
 * by the plain triple loop: each C element is s = sum over k = 0..K-1, in increasing k, of
 * op(A)(i,k)*op(B)(k,j), then C = s or C + s. Slow: no threads, no SIMD dispatch. For
 * tests that compare the fast paths (every SIMD level, see TAPEGRAD_SIMD) against a fixed
 * summation order. */
void tg_gemm_naive_f32(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                       int trans_a, const float *B, int64_t ldb, int trans_b, float *C,
                       int64_t ldc, int accumulate);
void tg_gemm_naive_f64(int64_t M, int64_t N, int64_t K, const double *A, int64_t lda,
                       int trans_a, const double *B, int64_t ldb, int trans_b, double *C,
                       int64_t ldc, int accumulate);

/* The gemm with a caller-given packing workspace, for callers that plan their memory once
 * (a replayed program): tg_gemm_workspace_f32/f64 returns the bytes of scratch a call of
 * that shape needs (0 for the tiny and small paths, which need none), an upper bound for
 * every SIMD level the dispatch may pick at the call (TAPEGRAD_SIMD may change between
 * the two calls) and every thread count from 1 to nthreads; it depends on the shape and
 * nthreads only (trans_a / trans_b are taken for future blockings), never fails and never
 * allocates. tg_gemm_ws_f32/f64 is tg_gemm_f32/f64 with that workspace: given `work` with
 * at least that many bytes (any alignment; the slack for aligning it to 64 bytes is in the
 * size; NULL or anything when the size is 0) it allocates nothing for packing and writes
 * nothing outside work[0, size); with work == NULL it allocates what it needs as
 * tg_gemm_f32/f64 does. Both give the same bits for every shape (same blocking, same
 * kernels). The calling thread's worker pool is created by its first gemm that uses more
 * than one thread (one allocation; if it fails the strips run on the calling thread, same
 * bits): every later call with a workspace allocates nothing at all. */
size_t tg_gemm_workspace_f32(int64_t M, int64_t N, int64_t K, int trans_a, int trans_b,
                             int nthreads);
size_t tg_gemm_workspace_f64(int64_t M, int64_t N, int64_t K, int trans_a, int trans_b,
                             int nthreads);
void tg_gemm_ws_f32(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, int trans_a,
                    const float *B, int64_t ldb, int trans_b, float *C, int64_t ldc,
                    int accumulate, int nthreads, void *work);
void tg_gemm_ws_f64(int64_t M, int64_t N, int64_t K, const double *A, int64_t lda,
                    int trans_a, const double *B, int64_t ldb, int trans_b, double *C,
                    int64_t ldc, int accumulate, int nthreads, void *work);

/* Elementwise math kernels (csrc/kernels/vmath.h: algorithms, measured ulp errors), the
 * ones the exp, log, tanh, sigmoid and relu ops run; exposed for tests and benchmarks.
 * fn is one of TG_VMATH_*. isa: "generic", "avx2", "avx512", or NULL for the level the ops
 * use now (this CPU's best, lowered by TAPEGRAD_SIMD), or "baseline": the generic code as
 * an x86 CPU without FMA runs it (float32: multiplies and adds where the others fuse; off
 * x86 the generic level itself), on any CPU; a level this CPU lacks, an unknown name or
 * fn, n < 0 or a NULL array with n > 0: TG_ERR_ARG. Every level gives the same bits (on x86
 * CPUs without FMA, the generic level's float32 bits are the baseline's). Arrays must not
 * overlap. */
#define TG_VMATH_EXP 0
#define TG_VMATH_LOG 1
#define TG_VMATH_TANH 2
#define TG_VMATH_SIGMOID 3
#define TG_VMATH_RELU 4 /* x < 0 ? 0 : x: relu(NaN) = NaN, relu(-0) = -0, as PyTorch */
#define TG_VMATH_COUNT 5
/* y[i] = fn(x[i]), i < n. */
tg_status tg_vmath_f32(int fn, const float *x, float *y, int64_t n, const char *isa);
tg_status tg_vmath_f64(int fn, const double *x, double *y, int64_t n, const char *isa);
/* Backward: gx[i] += g[i] * fn'(.), where a is the forward's output y for exp (g y), tanh
 * (g (1 - y y)) and sigmoid (g (1 - y) y), its input x for log (g / x) and relu
 * (x <= 0 ? 0 : g, so a NaN x passes g, as PyTorch). */
tg_status tg_vmath_grad_f32(int fn, const float *a, const float *g, float *gx, int64_t n,
                            const char *isa);
tg_status tg_vmath_grad_f64(int fn, const double *a, const double *g, double *gx, int64_t n,
                            const char *isa);

/* ---------------------------------------------------------------- allocation-failure tests
 *
 * Test-only switches, compiled into every build and off by default (then an allocation
 * costs one extra well-predicted branch and two thread-local increments). Every heap
 * allocation of the core goes through one counting allocator; the counters and the
 * switch are per thread and see only allocations made on the calling thread (the
 * kernels' worker threads are not counted, and what they allocate falls back when it
 * fails). A failed allocation is reported as TG_ERR_NOMEM (Python: MemoryError) and
 * leaves every object as it was before the call, except where a function documents
 * otherwise; where a failure cannot be reported (a gemm packing buffer, the kernels'
 * thread pool, the release stack) the core falls back to a slower correct path.
 *
 * tg_debug_fail_allocation(n): the n-th allocation from now on this thread fails (one
 * failure, then the switch is off again); n <= 0 turns the switch off.
 * tg_debug_allocations(): allocations attempted on this thread so far (count a
 * step's allocations, then sweep n = 1..count).
 * tg_debug_live_allocations(): blocks allocated minus blocks freed by this thread. It
 * proves "leaks nothing" when one thread makes and frees the objects (a block freed by
 * another thread is counted there). */
void tg_debug_fail_allocation(int64_t n);
int64_t tg_debug_allocations(void);
int64_t tg_debug_live_allocations(void);

#ifdef __cplusplus
}
#endif
#endif /* TAPEGRAD_H */
