/* fuzz_ckpt.c — libFuzzer target for checkpoint blobs (vae_trainer_load, vae_ckpt_peek,
 * and the safetensors converter vae_safetensors_from_ckpt).
 *
 * One small trainer is built once, from a tiny CSV dataset parsed in memory, and two
 * reference blobs are saved from it (at step 0 and mid-epoch after a few steps). Every
 * input is then used three ways:
 *
 *  1. as a blob, loaded as is. It must be refused with a message, leaving the trainer
 *     untouched (its saved state is byte-identical before and after), or load; a blob
 *     that loads must save back to exactly the same bytes (a blob that loads is one we
 *     would write), and vae_ckpt_peek must agree with the trainer.
 *  2. as edits to a reference blob: triples (offset hi, offset lo, xor) flip bytes, a
 *     first byte with its low bit set also truncates. A blob changed anywhere must be
 *     refused: the CRC-32 catches any burst of up to 32 bits and truncation is caught by
 *     the length field.
 *  3. as a forged blob: the input with its length field and CRC-32 made right, so the
 *     checks after the checksum are exercised. It may load (the checksum cannot tell a
 *     forgery), but loading and then training a step and evaluating must not crash or
 *     misbehave under ASan/UBSan, and what loaded must be self-consistent (finite
 *     learning rate > 0, step within the run, flags 0 or 1, finite state, and finite
 *     parameters unless the run had diverged).
 *
 * The blobs of 1 and 3 also go through vae_safetensors_from_ckpt with the trainer's
 * spec: it must refuse with a message and no output, or give a well-formed file (header
 * length a multiple of 8 within the file, a JSON object header, a data section that is
 * exactly the blob's parameters in some order); and a blob the trainer loads, being of
 * this spec's model, must convert.
 *
 * Seeds: run with FUZZ_CKPT_SEEDS=<dir> to write the reference blobs there
 * (tests/fuzz/corpus/ckpt/ holds them). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "vae/infer.h"
#include "vae/safetensors.h"
#include "vae/train.h"
#include "vae/train_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static const char spec_text[] =
    "{\"dataset\": {\"path\": \"fuzz.csv\", \"format\": \"csv\"},"
    " \"model\": {\"encoder\": [3], \"latent\": [1, 1], \"decoder\": [3]},"
    " \"schedule\": {\"kind\": \"controller\", \"target_kl\": 0.5},"
    " \"train\": {\"epochs\": 3, \"batch_size\": 4, \"seed\": 7, \"threads\": 1}}";
static const char csv_text[] = "0,0.5,1,0.25\n1,0,0.5,0.75\n0.1,0.2,0.3,0.4\n1,1,0,0\n"
                               "0.9,0.8,0.7,0.6\n0,0,0,1\n0.5,0.5,0.5,0.5\n0.3,0,1,0\n"
                               "0.6,0.4,0.2,0\n1,0.1,0.9,0.2\n";

static vae_trainer *T;
static vae_spec ckpt_spec; /* the trainer's, for the converter */
static uint8_t *ref[2];
static size_t ref_len[2];

static void die(const char *fmt, const char *detail)
{
    fprintf(stderr, "fuzz_ckpt: %s%s%s\n", fmt, detail ? ": " : "", detail ? detail : "");
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    vae_spec spec;
    vae_dataset *d = NULL;
    vaed_err e;
    vae_metrics m;
    if (vae_spec_parse_text(&spec, spec_text, sizeof spec_text - 1, &e))
        die("spec", e.msg);
    ckpt_spec = spec;
    if (vae_parse_csv(csv_text, sizeof csv_text - 1, 0, "fuzz.csv", &d, &e))
        die("csv", e.msg);
    if (vae_trainer_new_with_data(&T, &spec, d, NULL, &e))
        die("trainer", e.msg);
    void *b;
    if (vae_trainer_save(T, &b, &ref_len[0], &e))
        die("save", e.msg);
    ref[0] = b;
    for (int i = 0; i < 4; i++)
        if (vae_trainer_step(T, &m, &e))
            die("step", e.msg);
    if (vae_trainer_save(T, &b, &ref_len[1], &e))
        die("save", e.msg);
    ref[1] = b;
    const char *dir = getenv("FUZZ_CKPT_SEEDS");
    for (int i = 0; dir && i < 2; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/blob-step%d.bin", dir, i ? 4 : 0);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(ref[i], 1, ref_len[i], f) != ref_len[i] || fclose(f))
            die("cannot write a seed", path);
    }
    return 0;
}

static uint8_t *state(size_t *len)
{
    void *b;
    vaed_err e;
    if (vae_trainer_save(T, &b, len, &e))
        die("save", e.msg);
    return b;
}

/* Load blob; on refusal check the message and that the trainer did not change.
 * Returns the load's code. */
static int load_checked(const uint8_t *blob, size_t len)
{
    size_t l0, l1;
    uint8_t *s0 = state(&l0);
    vaed_err e;
    vaed_err_clear(&e);
    int rc = vae_trainer_load(T, blob, len, &e);
    if (rc) {
        if (!e.msg[0])
            die("refused without a message", NULL);
        uint8_t *s1 = state(&l1);
        if (l0 != l1 || memcmp(s0, s1, l0))
            die("a refused blob changed the trainer", e.msg);
        free(s1);
    }
    free(s0);
    return rc;
}

/* After a load that succeeded: the state must make sense, and training on must behave. */
static void check_loaded(void)
{
    const vae_trainer *t = T;
    if (t->step < 0 || t->step > t->total)
        die("loaded step outside the run", NULL);
    if (!(isfinite(t->lr) && t->lr > 0))
        die("loaded a learning rate that is not finite and > 0", NULL);
    if (!isfinite(t->beta_last) || !isfinite(t->kl_last) || !isfinite(t->sst.integral) ||
        !isfinite(t->sst.beta))
        die("loaded non-finite beta, KL or controller state", NULL);
    if ((t->diverged != 0 && t->diverged != 1) || (t->sst.started != 0 && t->sst.started != 1))
        die("loaded a flag that is neither 0 nor 1", NULL);
    if (t->acc_n < 0 || !isfinite(t->acc_loss) || !isfinite(t->acc_xent) ||
        !isfinite(t->acc_kl) || !isfinite(t->acc_beta))
        die("loaded bad epoch sums", NULL);
    if (!(t->rng.s[0] | t->rng.s[1] | t->rng.s[2] | t->rng.s[3]))
        die("loaded an all-zero generator state (it would give zeros for ever)", NULL);
    const vae_model *m = t->model;
    for (long i = 0; !t->diverged && i < m->n_params; i++)
        if (!isfinite(m->params[i]) || !isfinite(m->m[i]) || !(m->v[i] >= 0) || isinf(m->v[i]))
            die("loaded non-finite parameters or moments (or a negative second moment)", NULL);
    vae_metrics mt;
    vaed_err e;
    if (!vae_trainer_finished(T)) {
        int rc = vae_trainer_step(T, &mt, &e);
        if (rc && rc != VAED_EDIVERGED)
            die("a step after load failed", e.msg);
        if (rc == 0 && vae_trainer_epoch_done(T)) {
            vae_epoch_metrics em;
            vae_trainer_evaluate(T, &em, &e);
        }
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x, y;
    memcpy(&x, a, 4);
    memcpy(&y, b, 4);
    return x < y ? -1 : x > y;
}

/* The converter on blob (loaded: the trainer accepted it). See the top of the file. */
static void convert_checked(const uint8_t *blob, size_t len, int loaded)
{
    void *out = (void *)1;
    size_t olen = 1;
    vaed_err e;
    vaed_err_clear(&e);
    int rc = vae_safetensors_from_ckpt(&ckpt_spec, blob, len, NULL, &out, &olen, &e);
    if (rc) {
        if (!e.msg[0])
            die("the converter refused without a message", NULL);
        if (out || olen)
            die("the converter left output behind on error", e.msg);
        if (loaded)
            die("the converter refused a blob the trainer loads", e.msg);
        return;
    }
    const float *params;
    long n;
    if (vae_ckpt_params(blob, len, &params, &n, &e))
        die("the converter accepted a blob vae_ckpt_params refuses", e.msg);
    const uint8_t *f = out;
    uint64_t N = 0;
    if (olen >= 8)
        memcpy(&N, f, 8);
    if (olen < 8 || N % 8 || N > olen - 8 || olen - 8 - N != 4 * (uint64_t)n)
        die("converter output: header length or data section size is wrong", NULL);
    json_t *hdr = json_loadb((const char *)f + 8, N, 0, NULL);
    if (!json_is_object(hdr))
        die("converter output: the header is not a JSON object", NULL);
    json_decref(hdr);
    /* The data section is the parameters cut into tensors and reordered: the same
     * multiset of 32-bit patterns. */
    uint8_t *a = malloc(4 * (size_t)n + 1), *b = malloc(4 * (size_t)n + 1);
    memcpy(a, f + 8 + N, 4 * (size_t)n);
    memcpy(b, params, 4 * (size_t)n);
    qsort(a, (size_t)n, 4, cmp_u32);
    qsort(b, (size_t)n, 4, cmp_u32);
    if (memcmp(a, b, 4 * (size_t)n))
        die("converter output: the data section is not the blob's parameters", NULL);
    free(a);
    free(b);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vae_ckpt_info info;
    /* 1: as is */
    int loaded = load_checked(data, size) == 0;
    convert_checked(data, size, loaded);
    if (loaded) {
        size_t l;
        uint8_t *s = state(&l);
        if (l != size || memcmp(s, data, size))
            die("a blob that loaded does not save back to the same bytes", NULL);
        free(s);
        if (vae_ckpt_peek(data, size, &info) || info.step != vae_trainer_step_index(T) ||
            vae_ckpt_step(data, size) != info.step)
            die("vae_ckpt_peek / vae_ckpt_step disagree with a blob that loads", NULL);
        check_loaded();
    }

    /* 2: edits to a reference blob */
    if (size >= 1) {
        int which = (data[0] >> 1) & 1;
        uint8_t *b = malloc(ref_len[which]);
        memcpy(b, ref[which], ref_len[which]);
        size_t len = ref_len[which];
        if ((data[0] & 1) && size >= 3)
            len = ((size_t)data[1] << 8 | data[2]) % len;
        for (size_t i = 1; i + 2 < size; i += 3)
            b[((size_t)data[i] << 8 | data[i + 1]) % ref_len[which]] ^= data[i + 2];
        if ((len != ref_len[which] || memcmp(b, ref[which], len)) && load_checked(b, len) == 0)
            die("a changed or truncated reference blob loaded", NULL);
        free(b);
    }

    /* 3: forged, with a length and CRC that match */
    if (size >= 204) {
        uint8_t *b = malloc(size);
        memcpy(b, data, size);
        uint64_t len = size;
        memcpy(b + 16, &len, 8);
        uint32_t crc = (uint32_t)crc32(0L, b, (uInt)(size - 4));
        memcpy(b + size - 4, &crc, 4);
        loaded = load_checked(b, size) == 0;
        convert_checked(b, size, loaded);
        if (loaded) {
            if (vae_ckpt_peek(b, size, &info))
                die("vae_ckpt_peek refuses a blob that loads", NULL);
            check_loaded();
        }
        free(b);
    }
    return 0;
}
