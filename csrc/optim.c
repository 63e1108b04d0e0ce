/* optim.c — SGD and Adam with PyTorch's update rules (the single-tensor, non-foreach
 * path of torch.optim), one call updating every parameter. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum { OPTIM_SGD, OPTIM_ADAM } optim_kind;

struct tg_optim {
    optim_kind kind;
    int64_t n;
    tg_tensor **params;  /* retained */
    tg_tensor **state0;  /* SGD momentum buffer / Adam exp_avg, NULL until first use */
    tg_tensor **state1;  /* Adam exp_avg_sq */
    int64_t *param_steps; /* per parameter: steps taken (a parameter without grad skips) */
    uint8_t *fresh;       /* per parameter: state0 allocated ahead (replay) and not used yet */
    int64_t steps;
    double lr, momentum, dampening, weight_decay, beta1, beta2, eps;
    int nesterov;
};

static tg_optim *optim_alloc(const char *name, tg_tensor **params, int64_t n, optim_kind kind) {
    if (n <= 0 || !params) {
        tg_fail(TG_ERR_ARG, "%s: optimizer got an empty parameter list", name);
        return NULL;
    }
    for (int64_t i = 0; i < n; i++) {
        if (!params[i]) {
            tg_fail(TG_ERR_ARG, "%s: parameter %lld is NULL", name, (long long)i);
            return NULL;
        }
        if (tg_check_float(name, params[i])) return NULL;
        if (params[i]->node) {
            tg_fail(TG_ERR_ARG, "%s: can't optimize a non-leaf tensor (parameter %lld was made by "
                    "'%s')", name, (long long)i, tg_op_rows[params[i]->node->op]->name);
            return NULL;
        }
    }
    tg_optim *o = tg_calloc(1, sizeof *o);
    if (o) {
        o->params = tg_calloc((size_t)n, sizeof *o->params);
        o->state0 = tg_calloc((size_t)n, sizeof *o->state0);
        o->state1 = tg_calloc((size_t)n, sizeof *o->state1);
        o->param_steps = tg_calloc((size_t)n, sizeof *o->param_steps);
        o->fresh = tg_calloc((size_t)n, sizeof *o->fresh);
    }
    if (!o || !o->params || !o->state0 || !o->state1 || !o->param_steps || !o->fresh) {
        tg_optim_free(o); /* o->n is 0: frees the arrays made so far */
        tg_fail(TG_ERR_NOMEM, "%s: out of memory", name);
        return NULL;
    }
    o->kind = kind;
    o->n = n;
    for (int64_t i = 0; i < n; i++) {
        o->params[i] = params[i];
        tg_tensor_retain(params[i]);
    }
    return o;
}

tg_optim *tg_sgd_new(tg_tensor **params, int64_t n, double lr, double momentum, double dampening,
                     double weight_decay, int nesterov) {
    if (!(lr >= 0)) {
        tg_fail(TG_ERR_ARG, "SGD: invalid learning rate: %g (must be >= 0)", lr);
        return NULL;
    }
    if (!(momentum >= 0)) {
        tg_fail(TG_ERR_ARG, "SGD: invalid momentum value: %g (must be >= 0)", momentum);
        return NULL;
    }
    if (!(weight_decay >= 0)) {
        tg_fail(TG_ERR_ARG, "SGD: invalid weight_decay value: %g (must be >= 0)", weight_decay);
        return NULL;
    }
    if (!isfinite(dampening)) {
        tg_fail(TG_ERR_ARG, "SGD: invalid dampening value: %g", dampening);
        return NULL;
    }
    if (nesterov && (momentum <= 0 || dampening != 0)) {
        tg_fail(TG_ERR_ARG, "SGD: nesterov momentum requires a momentum and zero dampening");
        return NULL;
    }
    tg_optim *o = optim_alloc("SGD", params, n, OPTIM_SGD);
    if (!o) return NULL;
    o->lr = lr;
    o->momentum = momentum;
    o->dampening = dampening;
    o->weight_decay = weight_decay;
    o->nesterov = nesterov ? 1 : 0;
    return o;
}

tg_optim *tg_adam_new(tg_tensor **params, int64_t n, double lr, double beta1, double beta2,
                      double eps, double weight_decay) {
    if (!(lr >= 0)) {
        tg_fail(TG_ERR_ARG, "Adam: invalid learning rate: %g (must be >= 0)", lr);
        return NULL;
    }
    if (!(eps >= 0)) {
        tg_fail(TG_ERR_ARG, "Adam: invalid epsilon value: %g (must be >= 0)", eps);
        return NULL;
    }
    if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1)) {
        tg_fail(TG_ERR_ARG, "Adam: invalid betas (%g, %g): each must be in [0, 1)", beta1, beta2);
        return NULL;
    }
    if (!(weight_decay >= 0)) {
        tg_fail(TG_ERR_ARG, "Adam: invalid weight_decay value: %g (must be >= 0)", weight_decay);
        return NULL;
    }
    tg_optim *o = optim_alloc("Adam", params, n, OPTIM_ADAM);
    if (!o) return NULL;
    o->lr = lr;
    o->beta1 = beta1;
    o->beta2 = beta2;
    o->eps = eps;
    o->weight_decay = weight_decay;
    return o;
}

void tg_optim_free(tg_optim *o) {
    if (!o) return;
    for (int64_t i = 0; i < o->n; i++) {
        tg_tensor_release(o->params[i]);
        tg_tensor_release(o->state0[i]);
        tg_tensor_release(o->state1[i]);
    }
    tg_free(o->params);
    tg_free(o->state0);
    tg_free(o->state1);
    tg_free(o->param_steps);
    tg_free(o->fresh);
    tg_free(o);
}

/* p -= lr * d, where (PyTorch's order of operations):
 *   g = grad + wd * p
 *   buf = g (first step) or momentum * buf + (1 - dampening) * g
 *   d = g + momentum * buf (nesterov) or buf (momentum) or g */
#define SGD_UPDATE(T)                                                                      \
    do {                                                                                   \
        T *restrict p = c->param->data;                                                    \
        T *restrict b = c->buf ? (T *)c->buf->data : NULL;                                 \
        const T *restrict g = c->grad->data;                                               \
        const T lr = (T)o->lr, wd = (T)o->weight_decay, mom = (T)o->momentum;              \
        const T damp1 = (T)(1 - o->dampening);                                             \
        const int has_wd = o->weight_decay != 0, nesterov = o->nesterov;                   \
        /* Separate loops per case: each is branch-free, so the compiler vectorizes it. */ \
        if (!b && !has_wd) {                                                               \
            for (int64_t k = k0; k < k1; k++) p[k] = p[k] + (-lr) * g[k];                  \
        } else if (!b) {                                                                   \
            for (int64_t k = k0; k < k1; k++) p[k] = p[k] + (-lr) * (g[k] + wd * p[k]);    \
        } else {                                                                           \
            for (int64_t k = k0; k < k1; k++) {                                            \
                T gk = has_wd ? g[k] + wd * p[k] : g[k];                                   \
                T bk = c->first ? gk : b[k] * mom + damp1 * gk;                            \
                b[k] = bk;                                                                 \
                p[k] = p[k] + (-lr) * (nesterov ? gk + mom * bk : bk);                     \
            }                                                                              \
        }                                                                                  \
    } while (0)

/* Adam (PyTorch):
 *   g = grad + wd * p;  m = lerp(m, g, 1 - b1);  v = b2 * v + (1 - b2) * g * g
 *   p += -(lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps) */
#define ADAM_UPDATE(T)                                                                     \
    do {                                                                                   \
        T *restrict p = c->param->data;                                                    \
        T *restrict m = o->state0[c->i]->data;                                             \
        T *restrict v = o->state1[c->i]->data;                                             \
        const T *restrict g = c->grad->data;                                               \
        const int has_wd = o->weight_decay != 0;                                           \
        double t = (double)o->param_steps[c->i];                                           \
        double bc1 = 1 - pow(o->beta1, t), bc2 = 1 - pow(o->beta2, t);                     \
        /* pow(bc2, 0.5), not sqrt: PyTorch computes bias_correction2 ** 0.5 in Python */  \
        const T step_size = (T)(o->lr / bc1), bc2_sqrt = (T)pow(bc2, 0.5);                 \
        const T w = (T)(1 - o->beta1), b2 = (T)o->beta2, one_m_b2 = (T)(1 - o->beta2);     \
        const T eps = (T)o->eps, wd = (T)o->weight_decay;                                  \
        const int lerp_from_start = w < (T)0.5;                                            \
        for (int64_t k = k0; k < k1; k++) {                                                \
            T gk = has_wd ? g[k] + wd * p[k] : g[k];                                       \
            T diff = gk - m[k];                                                            \
            m[k] = lerp_from_start ? m[k] + w * diff : gk - diff * (1 - w);                \
            v[k] = v[k] * b2 + one_m_b2 * gk * gk;                                         \
            T root = (T)sqrt(v[k]); /* rounded to T first, as torch's sqrt() */            \
            T denom = root / bc2_sqrt + eps;                                               \
            p[k] = p[k] + (-step_size) * m[k] / denom;                                     \
        }                                                                                  \
    } while (0)

/* What a step allocates, made before any parameter changes (so a failed allocation
 * leaves every parameter and state as it was): missing state buffers, and copies of
 * gradients that share storage with the parameter or a state buffer. */
typedef struct {
    tg_tensor *state0, *state1; /* fresh state buffers for a parameter without state */
    tg_tensor *copy;            /* a copy of the gradient seen in the first pass */
    const tg_tensor *grad;      /* that gradient (a copy is used only if it is unchanged) */
} step_prep;

static int grad_aliases(const tg_optim *o, int64_t i, const tg_tensor *grad) {
    const tg_storage *gs = grad->storage;
    return gs == o->params[i]->storage || (o->state0[i] && gs == o->state0[i]->storage) ||
           (o->state1[i] && gs == o->state1[i]->storage);
}

/* Allocate what parameter i's update needs (its grad lock is held). */
static tg_status prepare_param(const tg_optim *o, int64_t i, step_prep *pp) {
    tg_tensor *param = o->params[i];
    if (o->kind == OPTIM_SGD) {
        if (o->momentum != 0 && !o->state0[i]) {
            pp->state0 = tg_tensor_new_like(param, 0);
            if (!pp->state0) return TG_ERR_NOMEM;
        }
    } else {
        if (!o->state0[i]) {
            pp->state0 = tg_tensor_new_like(param, 1);
            if (!pp->state0) return TG_ERR_NOMEM;
        }
        if (!o->state1[i]) {
            pp->state1 = tg_tensor_new_like(param, 1);
            if (!pp->state1) return TG_ERR_NOMEM;
        }
    }
    if (grad_aliases(o, i, param->grad)) {
        pp->copy = tg_clone_data(param->grad);
        if (!pp->copy) return TG_ERR_NOMEM;
    }
    pp->grad = param->grad;
    return TG_OK;
}

/* Update parameter i, which has a gradient (its grad lock is held); pp holds what
 * prepare_param allocated, and is emptied of what the optimizer takes over. */
/* One parameter's update, elements [k0, k1): the loops above, on a part of it. Each
 * element's update reads only that element, so the parameter can be cut anywhere and
 * the parts run on any threads: the same bits. */
typedef struct {
    const tg_optim *o;
    int64_t i; /* the parameter's index */
    tg_tensor *param, *buf;
    const tg_tensor *grad;
    int first;
} update_ctx;

static void sgd_part(void *ctx, int64_t k0, int64_t k1) {
    const update_ctx *c = ctx;
    const tg_optim *o = c->o;
    if (c->param->dtype == TG_FLOAT32) SGD_UPDATE(float);
    else SGD_UPDATE(double);
}

static void adam_part(void *ctx, int64_t k0, int64_t k1) {
    const update_ctx *c = ctx;
    const tg_optim *o = c->o;
    if (c->param->dtype == TG_FLOAT32) ADAM_UPDATE(float);
    else ADAM_UPDATE(double);
}

/* Runs part over the parameter's elements: split over the threads when it is large. */
static void run_update(void (*part)(void *, int64_t, int64_t), update_ctx *c) {
    const int64_t n = c->param->numel;
    tg_parallel_for(n, TG_PARALLEL_CHUNK, tg_parallel_threads(n), part, c);
}

static tg_status update_param(tg_optim *o, int64_t i, step_prep *pp) {
    tg_tensor *param = o->params[i];
    /* The kernels take restrict pointers: a gradient that shares storage with the
     * parameter (w.grad = w.detach(), which PyTorch accepts) or with a state buffer is
     * read from a copy. */
    const tg_tensor *grad = param->grad;
    tg_tensor *copy = NULL;
    if (grad_aliases(o, i, grad)) {
        if (pp->copy && pp->grad == grad) {
            grad = pp->copy;
        } else { /* the gradient was replaced since the first pass (another thread) */
            copy = tg_clone_data(grad);
            if (!copy) return TG_ERR_NOMEM;
            grad = copy;
        }
    }
    tg_status st = TG_OK;
    if (o->kind == OPTIM_SGD) {
        tg_tensor *buf = NULL;
        int first = 0;
        if (o->momentum != 0) {
            if (!o->state0[i]) {
                o->state0[i] = pp->state0 ? pp->state0 : tg_tensor_new_like(param, 0);
                pp->state0 = NULL;
                if (!o->state0[i]) {
                    st = TG_ERR_NOMEM;
                    goto done;
                }
                first = 1;
            }
            buf = o->state0[i];
            if (o->fresh[i]) first = 1;
            o->fresh[i] = 0;
        }
        update_ctx c = {o, i, param, buf, grad, first};
        run_update(sgd_part, &c);
    } else {
        if (!o->state0[i]) {
            o->state0[i] = pp->state0 ? pp->state0 : tg_tensor_new_like(param, 1);
            pp->state0 = NULL;
        }
        if (!o->state1[i]) {
            o->state1[i] = pp->state1 ? pp->state1 : tg_tensor_new_like(param, 1);
            pp->state1 = NULL;
        }
        if (!o->state0[i] || !o->state1[i]) {
            st = TG_ERR_NOMEM;
            goto done;
        }
        o->param_steps[i]++;
        update_ctx c = {o, i, param, NULL, grad, 0};
        run_update(adam_part, &c);
    }
done:
    tg_tensor_release(copy);
    return st;
}

static void release_prep(step_prep *prep, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        tg_tensor_release(prep[i].state0);
        tg_tensor_release(prep[i].state1);
        tg_tensor_release(prep[i].copy);
    }
    tg_free(prep);
}

tg_status tg_optim_step(tg_optim *o) {
    if (!o) return tg_fail(TG_ERR_ARG, "optimizer step: optimizer is NULL");
    tg_capture_optim(o, 0, 0);
    /* First pass: does any parameter with a gradient need an allocation? (Only the first
     * step, and aliased gradients: a steady-state step allocates nothing.) */
    int need = 0;
    for (int64_t i = 0; i < o->n && !need; i++) {
        tg_tensor *param = o->params[i];
        tg_grad_lock(param);
        if (param->grad)
            need = (o->kind == OPTIM_SGD ? o->momentum != 0 && !o->state0[i]
                                         : !o->state0[i] || !o->state1[i]) ||
                   grad_aliases(o, i, param->grad);
        tg_grad_unlock(param);
    }
    step_prep *prep = NULL;
    if (need) {
        prep = tg_calloc((size_t)o->n, sizeof *prep);
        if (!prep) return tg_fail(TG_ERR_NOMEM, "optimizer step: out of memory");
        for (int64_t i = 0; i < o->n; i++) {
            tg_tensor *param = o->params[i];
            tg_grad_lock(param);
            tg_status st = param->grad ? prepare_param(o, i, &prep[i]) : TG_OK;
            tg_grad_unlock(param);
            if (st != TG_OK) {
                release_prep(prep, o->n);
                return st;
            }
        }
    }
    for (int64_t i = 0; i < o->n; i++) {
        tg_tensor *param = o->params[i];
        /* The gradient is read under its lock: another thread's backward may be adding
         * into it, or its zero_grad(set_to_none) freeing it. */
        tg_grad_lock(param);
        tg_status st = TG_OK;
        if (param->grad) {
            step_prep empty = {0};
            st = update_param(o, i, prep ? &prep[i] : &empty);
            if (st == TG_OK) tg_bump_version(param); /* an in-place update, as PyTorch counts it */
        }
        tg_grad_unlock(param);
        if (st != TG_OK) {
            if (prep) release_prep(prep, o->n);
            return st;
        }
    }
    if (prep) release_prep(prep, o->n);
    o->steps++;
    return TG_OK;
}

void tg_optim_zero_grad(tg_optim *o, int set_to_none) {
    if (!o) return;
    tg_capture_optim(o, 1, set_to_none);
    for (int64_t i = 0; i < o->n; i++) {
        if (set_to_none) tg_set_grad_internal(o->params[i], NULL);
        else tg_tensor_zero_grad(o->params[i]);
    }
}

tg_status tg_optim_set_lr(tg_optim *o, double lr) {
    if (!(lr >= 0)) return tg_fail(TG_ERR_ARG, "optimizer: invalid learning rate: %g", lr);
    o->lr = lr;
    return TG_OK;
}

double tg_optim_get_lr(const tg_optim *o) { return o->lr; }
int64_t tg_optim_steps(const tg_optim *o) { return o->steps; }

tg_tensor *tg_optim_state(const tg_optim *o, int64_t i, int which) {
    if (i < 0 || i >= o->n) {
        tg_fail(TG_ERR_INDEX, "optimizer state: parameter index %lld out of range", (long long)i);
        return NULL;
    }
    tg_tensor *s = which == 0 ? o->state0[i] : which == 1 ? o->state1[i] : NULL;
    if (s) tg_tensor_retain(s);
    return s;
}

int64_t tg_optim_param_steps(const tg_optim *o, int64_t i) {
    return i >= 0 && i < o->n ? o->param_steps[i] : -1;
}

tg_status tg_optim_load_state(tg_optim *o, int64_t i, int which, const tg_tensor *src,
                              int64_t param_steps) {
    if (i < 0 || i >= o->n)
        return tg_fail(TG_ERR_INDEX, "optimizer load_state: parameter index %lld out of range "
                       "(%lld parameters)", (long long)i, (long long)o->n);
    int nstates = o->kind == OPTIM_ADAM ? 2 : 1;
    if (which < 0 || which >= nstates)
        return tg_fail(TG_ERR_INDEX, "optimizer load_state: state %d does not exist", which);
    if (param_steps < 0)
        return tg_fail(TG_ERR_ARG, "optimizer load_state: negative step count %lld",
                       (long long)param_steps);
    tg_tensor *param = o->params[i];
    if (!src || src->dtype != param->dtype || src->ndim != param->ndim ||
        memcmp(src->shape, param->shape, (size_t)param->ndim * sizeof(int64_t)) != 0) {
        char b1[TG_SHAPE_BUF], b2[TG_SHAPE_BUF];
        return tg_fail(TG_ERR_SHAPE, "optimizer load_state: state of shape %s (%s) does not match "
                       "parameter %lld of shape %s (%s)",
                       src ? tg_shape_str(src->ndim, src->shape, b1, sizeof b1) : "NULL",
                       src ? tg_dtype_name(src->dtype) : "-", (long long)i,
                       tg_shape_str(param->ndim, param->shape, b2, sizeof b2),
                       tg_dtype_name(param->dtype));
    }
    tg_tensor **slot = which == 0 ? &o->state0[i] : &o->state1[i];
    if (!*slot) {
        *slot = tg_tensor_new_like(param, 0);
        if (!*slot) return TG_ERR_NOMEM;
    }
    /* memmove: src may be this very buffer (or share its storage) */
    memmove((*slot)->data, src->data, (size_t)src->numel * tg_dtype_size(src->dtype));
    o->param_steps[i] = param_steps;
    if (param_steps > o->steps) o->steps = param_steps;
    return TG_OK;
}

/* ------------------------------------------------------------------ replay (program.c) */

int64_t tg_optim_param_count(const tg_optim *o) { return o ? o->n : 0; }
tg_tensor *tg_optim_param(const tg_optim *o, int64_t i) { return o->params[i]; }

/* Before a replayed run: every state buffer a step may need exists (a step then
 * allocates nothing). A momentum buffer made here is marked fresh: its first update
 * starts it from the gradient, as a buffer made at the first step does. */
tg_status tg_optim_prepare_replay(tg_optim *o) {
    for (int64_t i = 0; i < o->n; i++) {
        tg_tensor *param = o->params[i];
        if (o->kind == OPTIM_SGD) {
            if (o->momentum != 0 && !o->state0[i]) {
                o->state0[i] = tg_tensor_new_like(param, 1);
                if (!o->state0[i]) return TG_ERR_NOMEM;
                o->fresh[i] = 1;
            }
        } else {
            if (!o->state0[i] && !(o->state0[i] = tg_tensor_new_like(param, 1))) return TG_ERR_NOMEM;
            if (!o->state1[i] && !(o->state1[i] = tg_tensor_new_like(param, 1))) return TG_ERR_NOMEM;
        }
    }
    return TG_OK;
}

/* One step inside a replayed run: the parameters whose gradient the program holds
 * (their .grad is the program's buffer; the program owns them during the run, so no
 * locks), with the same update as tg_optim_step. */
tg_status tg_optim_step_replay(tg_optim *o, const int *map, const uint8_t *grad_none) {
    for (int64_t i = 0; i < o->n; i++) {
        tg_tensor *param = o->params[i];
        if (!param->grad || grad_none[map[i]]) continue;
        step_prep empty = {0};
        tg_status st = update_param(o, i, &empty);
        if (st) return st;
        tg_bump_version(param);
    }
    o->steps++;
    return TG_OK;
}
