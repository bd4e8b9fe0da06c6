/* safetensors.c — see safetensors.h. A checkpoint blob's parameter section, cut into
 * named tensors and written behind a safetensors header.
 *
 * The layout of the parameter buffer is the one vae_model_new builds (vae_model_shape
 * gives the same shape fields without allocating): every
 * layer in order (encoder hidden layers, the latent head, decoder hidden layers, the
 * output layer), each as W (out, in) row-major then b (out). The head has 2L outputs,
 * [mu | logvar]; latent group g owns units [group_off[g], group_off[g+1]) of each half,
 * so its rows of W and entries of b are contiguous and a group's head is a plain row
 * slice. tests/unit/test_safetensors.c checks this layout against the offsets
 * vae_model_new computes. The blob's checks and the model fingerprint are ckpt.c's own
 * (vae_ckpt_params, vae_ckpt_fits), so the two cannot drift apart.
 *
 * The data width D is not in the spec (it comes from the dataset); it is solved from
 * the parameter count, which is linear in D. */
#include "safetensors.h"

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer.h"
#include "train.h"

#define MAX_TENSORS (2 * VAE_MAX_LAYERS + 4 * VAE_MAX_GROUPS + 2 * VAE_MAX_LAYERS + 2)

typedef struct tensor {
    char name[40];
    long shape[2];
    int ndim;
    long src;           /* first float in the parameter section */
} tensor;

static void add(tensor *t, int *nt, long src, long rows, long cols, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void add(tensor *t, int *nt, long src, long rows, long cols, const char *fmt, ...)
{
    tensor *x = &t[(*nt)++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->name, sizeof x->name, fmt, ap);
    va_end(ap);
    x->src = src;
    x->shape[0] = rows;
    x->shape[1] = cols;
    x->ndim = cols ? 2 : 1;
}

/* The tensors in file order (see safetensors.h for the names). Each is a contiguous
 * run of the parameter section, so the data section is a permutation of runs. */
static int tensor_list(const vae_model *m, tensor *t)
{
    const int G = m->n_groups, nl = m->n_enc + m->n_dec;
    int nt = 0;
    for (int i = 0; i < nl; i++) {
        const vae_layer *l = vae_model_layer(m, i);
        if (i == m->n_enc - 1) {
            /* rows [0, L) of the head are the means, [L, 2L) the log-variances */
            for (int g = 0; g < G; g++) {
                const long goff = m->group_off[g], lg = m->group_off[g + 1] - goff;
                const char *sfx = G > 1 ? "." : "";
                char gi[16] = "";
                if (G > 1)
                    snprintf(gi, sizeof gi, "%d", g);
                add(t, &nt, l->w + goff * l->in, lg, l->in, "z_mean%s%s.weight", sfx, gi);
                add(t, &nt, l->b + goff, lg, 0, "z_mean%s%s.bias", sfx, gi);
                add(t, &nt, l->w + (m->L + goff) * l->in, lg, l->in, "z_logvar%s%s.weight", sfx,
                    gi);
                add(t, &nt, l->b + m->L + goff, lg, 0, "z_logvar%s%s.bias", sfx, gi);
            }
        } else if (i == nl - 1) {
            add(t, &nt, l->w, l->out, l->in, "output.weight");
            add(t, &nt, l->b, l->out, 0, "output.bias");
        } else {
            const char *part = i < m->n_enc ? "encoder" : "decoder";
            int idx = 2 * (i < m->n_enc ? i : i - m->n_enc);
            add(t, &nt, l->w, l->out, l->in, "%s.%d.weight", part, idx);
            add(t, &nt, l->b, l->out, 0, "%s.%d.bias", part, idx);
        }
    }
    return nt;
}

/* json_object_set_new that remembers a failure (it steals v even when it fails). */
static void put(json_t *o, const char *key, json_t *v, int *bad)
{
    if (!v || json_object_set_new(o, key, v))
        *bad = 1;
}

static json_t *str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *str_printf(const char *fmt, ...)
{
    char buf[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return json_string(buf);
}

/* "__metadata__": the built-in keys, then extra. Returns 0 and OUT *out (new
 * reference), or VAED_EINVAL (a bad extra pair) or VAED_ENOMEM with err set. */
static int metadata(json_t **out, const vae_spec *s, const vae_ckpt_info *ci, long D,
                    const char *const *extra, vaed_err *err)
{
    int bad = 0, rc = VAED_ENOMEM;
    *out = NULL;
    json_t *sj = vae_spec_to_json(s), *md = json_object();
    char *stext = sj ? json_dumps(sj, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_t *groups = json_array();
    char *gtext = NULL;
    if (!sj || !md || !stext || !groups) {
        vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory writing the metadata");
        goto fail;
    }
    for (int g = 0; g < s->model.n_groups; g++)
        if (json_array_append_new(groups, json_integer(s->model.groups[g])))
            bad = 1;
    gtext = json_dumps(groups, JSON_COMPACT);
    /* Enum names from the spec's own JSON, so there is one table of them (spec.c). */
    json_t *model = json_object_get(sj, "model");
    const char *lik = json_string_value(json_object_get(model, "likelihood"));
    const char *act = json_string_value(json_object_get(model, "activation"));
    put(md, "format", json_string("pt"), &bad);
    put(md, "spec", json_string(stext), &bad);
    put(md, "step", str_printf("%ld", ci->step), &bad);
    put(md, "beta", str_printf("%.17g", ci->beta), &bad);
    put(md, "likelihood", json_string(lik ? lik : "?"), &bad);
    put(md, "activation", json_string(act ? act : "?"), &bad);
    put(md, "latent_groups", gtext ? json_string(gtext) : NULL, &bad);
    put(md, "data_width", str_printf("%ld", D), &bad);
    put(md, "output",
        json_string(s->model.likelihood == VAE_LIK_GAUSSIAN ? "mean" : "logits"), &bad);
    if (bad) {
        vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory writing the metadata");
        goto fail;
    }
    for (int i = 0; extra && extra[i]; i += 2) {
        if (!extra[i + 1] || json_object_get(md, extra[i])) {
            rc = vaed_err_set(err, VAED_EINVAL, "extra", "extra: metadata key \"%s\" %s",
                              extra[i], extra[i + 1] ? "is already set" : "has no value");
            goto fail;
        }
        put(md, extra[i], json_string(extra[i + 1]), &bad);
        if (bad) {
            rc = vaed_err_set(err, VAED_EINVAL, "extra",
                              "extra: metadata \"%s\" is not UTF-8 text (or out of memory)",
                              extra[i]);
            goto fail;
        }
    }
    json_decref(sj);
    json_decref(groups);
    free(stext);
    free(gtext);
    *out = md;
    return 0;
fail:
    json_decref(sj);
    json_decref(md);
    json_decref(groups);
    free(stext);
    free(gtext);
    return rc;
}

int vae_safetensors_from_ckpt(const vae_spec *spec, const void *blob, size_t len,
                              const char *const *extra, void **out, size_t *out_len,
                              vaed_err *err)
{
    *out = NULL;
    *out_len = 0;
    const float *params;
    long n;
    vae_ckpt_info ci;
    int rc, bad = 0;
    if ((rc = vae_ckpt_params(blob, len, &params, &n, err)))
        return rc;
    if (vae_ckpt_peek(blob, len, &ci)) /* it makes the same checks: cannot happen */
        return vaed_err_set(err, VAED_EINVAL, NULL, "checkpoint: not a valid vaed checkpoint");
    const long D = vae_infer_width(spec, n);
    vae_model m;
    if (D > 0 && D <= INT_MAX)
        vae_model_shape(&m, spec, (int)D, 0);
    if (D <= 0 || D > INT_MAX || m.n_params != n)
        return vaed_err_set(err, VAED_EINVAL, "spec",
                            "spec: the checkpoint's %ld parameters fit no data width of this "
                            "spec's model", n);
    if (!vae_ckpt_fits(blob, len, &m))
        return vaed_err_set(err, VAED_EINVAL, "spec",
                            "spec: the checkpoint is of another model (same parameter count, "
                            "different activation, latent groups, samples, likelihood or KL)");

    tensor t[MAX_TENSORS];
    const int nt = tensor_list(&m, t);
    char *htext = NULL;
    uint8_t *buf = NULL;
    json_t *md = NULL, *hdr = NULL;
    if ((rc = metadata(&md, spec, &ci, D, extra, err)))
        goto fail;
    if (!(hdr = json_object())) {
        json_decref(md);
        goto nomem;
    }
    put(hdr, "__metadata__", md, &bad); /* md is stolen */
    long off = 0;
    for (int i = 0; i < nt; i++) {
        long count = t[i].shape[0] * (t[i].ndim == 2 ? t[i].shape[1] : 1);
        json_t *shape = t[i].ndim == 2 ? json_pack("[I,I]", (json_int_t)t[i].shape[0],
                                                   (json_int_t)t[i].shape[1])
                                       : json_pack("[I]", (json_int_t)t[i].shape[0]);
        json_t *offs = json_pack("[I,I]", (json_int_t)(4 * off), (json_int_t)(4 * (off + count)));
        put(hdr, t[i].name, json_pack("{s:s, s:o, s:o}", "dtype", "F32", "shape", shape,
                                      "data_offsets", offs), &bad);
        off += count;
    }
    if (bad || off != n || !(htext = json_dumps(hdr, JSON_COMPACT | JSON_PRESERVE_ORDER)))
        goto nomem;
    /* Pad the header with spaces so the data section starts 8-byte aligned. */
    const size_t hlen = strlen(htext), hpad = (hlen + 7) & ~(size_t)7;
    const size_t total = 8 + hpad + 4 * (size_t)n;
    if (!(buf = malloc(total)))
        goto nomem;
    const uint64_t hp = hpad;
    memcpy(buf, &hp, 8); /* little-endian: vae_ckpt_params refuses other hosts */
    memcpy(buf + 8, htext, hlen);
    memset(buf + 8 + hlen, ' ', hpad - hlen);
    uint8_t *d = buf + 8 + hpad;
    for (int i = 0; i < nt; i++) {
        size_t bytes = 4 * (size_t)t[i].shape[0] * (size_t)(t[i].ndim == 2 ? t[i].shape[1] : 1);
        memcpy(d, (const uint8_t *)params + 4 * (size_t)t[i].src, bytes);
        d += bytes;
    }
    json_decref(hdr);
    free(htext);
    *out = buf;
    *out_len = total;
    return 0;
nomem:
    rc = vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory writing the safetensors file");
fail:
    json_decref(hdr);
    free(htext);
    free(buf);
    return rc;
}
