/* ckpt.c — the complete training state of a job as one binary blob.
 *
 * Everything a run needs to continue exactly as if it had never stopped: parameters,
 * Adam's moments, the step, the noise generator, the schedule in force and its
 * controller state, the learning rate, and the running sums of the epoch in progress.
 * The order of the training rows is not stored: it is a pure function of (seed,
 * epoch), recomputed on load. Gradients are not stored: they are zeroed every step.
 *
 * Byte layout, all integers and floats little-endian (vaed refuses to run on a
 * big-endian host rather than write blobs it cannot read elsewhere):
 *
 *   offset size
 *      0    8  magic "VAEDCKPT"
 *      8    4  u32 format version = 1
 *     12    4  u32 header size H = 200 (offset of the schedule text)
 *     16    8  u64 blob length in bytes, checksum included
 *     24    8  u64 steps done
 *     32    8  u64 n = number of parameters
 *     40    8  u64 model fingerprint: FNV-1a over the layer shapes, latent groups,
 *              samples, likelihood and KL estimator (a blob of another model is refused)
 *     48    8  u64 training rows N
 *     56    4  u32 batch size
 *     60    4  u32 J = length of the schedule text
 *     64   32  u64[4] noise generator state (xoshiro256**)
 *     96    8  f64 beta of the last step
 *    104    8  f64 KL of the last step
 *    112    8  f64 learning rate in force
 *    120    8  f64 controller integral
 *    128    8  f64 controller beta
 *    136    4  u32 controller started (0/1)
 *    140    4  u32 diverged (0/1)
 *    144    8  f64 epoch sum of loss · rows
 *    152    8  f64 epoch sum of xent · rows
 *    160    8  f64 epoch sum of kl · rows
 *    168    8  f64 epoch sum of beta · rows
 *    176    8  u64 epoch rows summed
 *    184   16  reserved, zero
 *    200    J  the schedule in force, JSON (sched_to_json), no terminating NUL
 *  200+J   4n  f32[n] parameters
 *          4n  f32[n] Adam first moment
 *          4n  f32[n] Adam second moment
 *   len-4   4  u32 CRC-32 (zlib's) of every byte before it
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "infer.h"
#include "train_impl.h"

#define CKPT_MAGIC "VAEDCKPT"
#define CKPT_VERSION 1u
#define CKPT_HEADER 200u

static int little_endian(void)
{
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

static void put_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put_u64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static void put_f64(uint8_t *p, double v) { memcpy(p, &v, 8); }
static uint32_t get_u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get_u64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static double get_f64(const uint8_t *p) { double v; memcpy(&v, p, 8); return v; }

static uint64_t fnv(uint64_t h, int64_t v)
{
    for (int i = 0; i < 8; i++) {
        h ^= (uint64_t)(v >> (8 * i)) & 0xff;
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* The model fingerprint of the header: reads only m's shape (see vae_ckpt_fits). */
static uint64_t fingerprint(const vae_model *m)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    h = fnv(h, m->D);
    h = fnv(h, m->k);
    h = fnv(h, m->lik);
    h = fnv(h, m->klkind);
    h = fnv(h, m->n_groups);
    for (int g = 0; g <= m->n_groups; g++)
        h = fnv(h, m->group_off[g]);
    for (int i = 0; i < m->n_enc; i++)
        h = fnv(fnv(fnv(h, m->enc[i].in), m->enc[i].out), m->enc[i].act);
    for (int i = 0; i < m->n_dec; i++)
        h = fnv(fnv(fnv(h, m->dec[i].in), m->dec[i].out), m->dec[i].act);
    return h;
}

int vae_trainer_save(const vae_trainer *t, void **blob, size_t *len, vaed_err *err)
{
    *blob = NULL;
    *len = 0;
    if (!little_endian())
        return vaed_err_set(err, VAED_EINVAL, NULL, "checkpoints need a little-endian host");
    json_t *sj = sched_to_json(&t->sched);
    char *stext = sj ? json_dumps(sj, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(sj);
    /* jansson's dump drops an object key whose allocation fails and still returns
     * the text: a blob is only written with a schedule that reads back. */
    json_t *back = stext ? json_loads(stext, 0, NULL) : NULL;
    int readable = back != NULL;
    json_decref(back);
    if (!readable) {
        free(stext);
        return vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory writing the schedule");
    }
    const size_t J = strlen(stext), n = (size_t)t->model->n_params;
    const size_t total = CKPT_HEADER + J + 3 * 4 * n + 4;
    uint8_t *b = malloc(total);
    if (!b) {
        free(stext);
        return vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory for a %zu-byte checkpoint",
                            total);
    }
    memset(b, 0, CKPT_HEADER);
    memcpy(b, CKPT_MAGIC, 8);
    put_u32(b + 8, CKPT_VERSION);
    put_u32(b + 12, CKPT_HEADER);
    put_u64(b + 16, total);
    put_u64(b + 24, (uint64_t)t->step);
    put_u64(b + 32, n);
    put_u64(b + 40, fingerprint(t->model));
    put_u64(b + 48, (uint64_t)t->N);
    put_u32(b + 56, (uint32_t)t->model->max_batch);
    put_u32(b + 60, (uint32_t)J);
    for (int i = 0; i < 4; i++)
        put_u64(b + 64 + 8 * i, t->rng.s[i]);
    put_f64(b + 96, t->beta_last);
    put_f64(b + 104, t->kl_last);
    put_f64(b + 112, t->lr);
    put_f64(b + 120, t->sst.integral);
    put_f64(b + 128, t->sst.beta);
    put_u32(b + 136, (uint32_t)t->sst.started);
    put_u32(b + 140, (uint32_t)t->diverged);
    put_f64(b + 144, t->acc_loss);
    put_f64(b + 152, t->acc_xent);
    put_f64(b + 160, t->acc_kl);
    put_f64(b + 168, t->acc_beta);
    put_u64(b + 176, (uint64_t)t->acc_n);
    uint8_t *p = b + CKPT_HEADER;
    memcpy(p, stext, J);
    p += J;
    free(stext);
    memcpy(p, t->model->params, 4 * n);
    p += 4 * n;
    memcpy(p, t->model->m, 4 * n);
    p += 4 * n;
    memcpy(p, t->model->v, 4 * n);
    p += 4 * n;
    put_u32(p, (uint32_t)crc32(0L, b, (uInt)(total - 4)));
    *blob = b;
    *len = total;
    return 0;
}

/* Checks that need no trainer: byte order, size, magic, version, length, checksum and
 * section sizes. Every entry point that reads a blob passes through here first. */
static int check_blob(const uint8_t *b, size_t len, vaed_err *err)
{
    if (!little_endian())
        return vaed_err_set(err, VAED_EINVAL, NULL, "checkpoints need a little-endian host");
    if (len < CKPT_HEADER + 4)
        return vaed_err_set(err, VAED_EINVAL, NULL, "checkpoint: %zu bytes is too short", len);
    if (memcmp(b, CKPT_MAGIC, 8))
        return vaed_err_set(err, VAED_EINVAL, NULL, "checkpoint: bad magic (not a vaed checkpoint)");
    if (get_u32(b + 8) != CKPT_VERSION)
        return vaed_err_set(err, VAED_EINVAL, NULL, "checkpoint: format version %u, expected %u",
                            get_u32(b + 8), CKPT_VERSION);
    if (get_u32(b + 12) != CKPT_HEADER || get_u64(b + 16) != len)
        return vaed_err_set(err, VAED_EINVAL, NULL,
                            "checkpoint: truncated or padded (%zu bytes, header says %llu)", len,
                            (unsigned long long)get_u64(b + 16));
    uint32_t want = get_u32(b + len - 4), got = (uint32_t)crc32(0L, b, (uInt)(len - 4));
    if (want != got)
        return vaed_err_set(err, VAED_EINVAL, NULL,
                            "checkpoint: checksum mismatch (stored %08x, computed %08x)", want, got);
    uint64_t J = get_u32(b + 60), n = get_u64(b + 32);
    if (n > len || (uint64_t)CKPT_HEADER + J + 12 * n + 4 != len)
        return vaed_err_set(err, VAED_EINVAL, NULL, "checkpoint: section sizes do not add up");
    return 0;
}

long vae_ckpt_step(const void *blob, size_t len)
{
    if (check_blob(blob, len, NULL))
        return -1;
    return (long)get_u64((const uint8_t *)blob + 24);
}

int vae_ckpt_peek(const void *blob, size_t len, vae_ckpt_info *out)
{
    if (check_blob(blob, len, NULL))
        return VAED_EINVAL;
    const uint8_t *b = blob;
    out->step = (long)get_u64(b + 24);
    out->beta = get_f64(b + 96);
    out->lr = get_f64(b + 112);
    out->rows = (long)get_u64(b + 48);
    out->batch = (long)get_u32(b + 56);
    out->steps_per_epoch = out->batch > 0 ? (out->rows + out->batch - 1) / out->batch : 0;
    return 0;
}

/* Declared in infer.h: the parameter section, in place, for inference and export
 * without a trainer. */
int vae_ckpt_params(const void *blob, size_t len, const float **params, long *n,
                    vaed_err *err)
{
    int rc;
    if ((rc = check_blob(blob, len, err)))
        return rc;
    const uint8_t *b = blob;
    *n = (long)get_u64(b + 32);
    *params = (const float *)(const void *)(b + CKPT_HEADER + get_u32(b + 60));
    return 0;
}

/* Declared in infer.h. */
int vae_ckpt_fits(const void *blob, size_t len, const vae_model *m)
{
    const uint8_t *b = blob;
    return len >= CKPT_HEADER && get_u64(b + 32) == (uint64_t)m->n_params &&
           get_u64(b + 40) == fingerprint(m);
}

/* Checks on the values themselves. The CRC tells a damaged blob from a whole one, not
 * a forged or mis-written one from a real one; these hold for every blob
 * vae_trainer_save writes, so one that breaks them is refused instead of training on
 * garbage (found by tests/fuzz/fuzz_ckpt.c). A diverged run's parameters may hold the
 * non-finite values that stopped it, so they are checked only for a live run. */
static int check_state(const uint8_t *b, size_t len, size_t J, size_t n, uint64_t step,
                       int max_batch, vaed_err *err)
{
    (void)len;
    const double lr = get_f64(b + 112);
    const uint32_t started = get_u32(b + 136), diverged = get_u32(b + 140);
    const uint64_t acc_n = get_u64(b + 176);
    if (!(isfinite(lr) && lr > 0))
        return vaed_err_set(err, VAED_EINVAL, NULL,
                            "checkpoint: learning rate %g is not a finite number > 0", lr);
    if (started > 1 || diverged > 1)
        return vaed_err_set(err, VAED_EINVAL, NULL,
                            "checkpoint: flags (controller started %u, diverged %u) must be 0 or 1",
                            started, diverged);
    if (acc_n > step * (uint64_t)max_batch)
        return vaed_err_set(err, VAED_EINVAL, NULL,
                            "checkpoint: %llu rows summed in the epoch, more than %llu steps can "
                            "have trained", (unsigned long long)acc_n, (unsigned long long)step);
    static const unsigned fin[] = {96, 104, 120, 128, 144, 152, 160, 168};
    for (size_t i = 0; i < sizeof fin / sizeof fin[0]; i++)
        if (!isfinite(get_f64(b + fin[i])))
            return vaed_err_set(err, VAED_EINVAL, NULL,
                                "checkpoint: the value at byte %u is not finite", fin[i]);
    if (!(get_u64(b + 64) | get_u64(b + 72) | get_u64(b + 80) | get_u64(b + 88)))
        return vaed_err_set(err, VAED_EINVAL, NULL,
                            "checkpoint: the noise generator state is all zeros");
    if (diverged)
        return 0;
    const uint8_t *p = b + CKPT_HEADER + J;
    for (size_t i = 0; i < 3 * n; i++) {
        float f;
        memcpy(&f, p + 4 * i, 4);
        if (!isfinite(f) || (i >= 2 * n && f < 0))
            return vaed_err_set(err, VAED_EINVAL, NULL,
                                "checkpoint: %s %zu is %g", i < n ? "parameter"
                                : i < 2 * n ? "Adam first moment" : "Adam second moment",
                                i % n, (double)f);
    }
    return 0;
}

int vae_trainer_load(vae_trainer *t, const void *blob, size_t len, vaed_err *err)
{
    const uint8_t *b = blob;
    int rc;
    if ((rc = check_blob(b, len, err)))
        return rc;
    const vae_model *m = t->model;
    if (!vae_ckpt_fits(b, len, m))
        return vaed_err_set(err, VAED_EINVAL, NULL,
                            "checkpoint: it is of another model (%llu parameters, this one %ld)",
                            (unsigned long long)get_u64(b + 32), m->n_params);
    if (get_u64(b + 48) != (uint64_t)t->N || get_u32(b + 56) != (uint32_t)m->max_batch)
        return vaed_err_set(err, VAED_EINVAL, NULL,
                            "checkpoint: it was taken on %llu rows in batches of %u, this run has "
                            "%ld rows in batches of %d",
                            (unsigned long long)get_u64(b + 48), get_u32(b + 56), t->N,
                            m->max_batch);
    uint64_t step = get_u64(b + 24);
    if (step > (uint64_t)t->total)
        return vaed_err_set(err, VAED_EINVAL, NULL,
                            "checkpoint: step %llu is past the end of this run (%ld steps)",
                            (unsigned long long)step, t->total);
    const size_t J = get_u32(b + 60), n = (size_t)m->n_params;
    json_error_t je;
    json_t *sj = json_loadb((const char *)b + CKPT_HEADER, J, 0, &je);
    sched_spec s;
    vaed_err se;
    rc = sj ? sched_parse(&s, sj, "", 0, &se) : VAED_EINVAL;
    json_decref(sj);
    if (rc)
        return vaed_err_set(err, VAED_EINVAL, NULL, "checkpoint: bad schedule: %s",
                            sj ? se.msg : je.text);

    if ((rc = check_state(b, len, J, n, step, m->max_batch, err)))
        return rc;

    /* Everything is checked; now change the trainer. */
    t->step = (long)step;
    for (int i = 0; i < 4; i++)
        t->rng.s[i] = get_u64(b + 64 + 8 * i);
    t->beta_last = get_f64(b + 96);
    t->kl_last = get_f64(b + 104);
    t->lr = get_f64(b + 112);
    t->sst.integral = get_f64(b + 120);
    t->sst.beta = get_f64(b + 128);
    t->sst.started = (int)get_u32(b + 136);
    t->diverged = (int)get_u32(b + 140);
    t->acc_loss = get_f64(b + 144);
    t->acc_xent = get_f64(b + 152);
    t->acc_kl = get_f64(b + 160);
    t->acc_beta = get_f64(b + 168);
    t->acc_n = (long)get_u64(b + 176);
    t->sched = s;
    const uint8_t *p = b + CKPT_HEADER + J;
    memcpy(t->model->params, p, 4 * n);
    vae_model_sync_wt(t->model, NULL);
    memcpy(t->model->m, p + 4 * n, 4 * n);
    memcpy(t->model->v, p + 8 * n, 4 * n);
    t->perm_epoch = -1; /* the order is recomputed for the restored epoch */
    return 0;
}
