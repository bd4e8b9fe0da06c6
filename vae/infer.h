/* infer.h — a trained model put to use without its training data: rebuild the model
 * of a spec, load the parameters of a checkpoint blob into it, and run the encoder
 * and decoder on a few rows (the dashboard's reconstruction and sample grids).
 *
 * Nothing here touches the trainer: the blob is only read, the training data is never
 * loaded (vae_infer_read_rows reads the handful of rows asked for and stops). */
#ifndef VAED_INFER_H
#define VAED_INFER_H

#include <stddef.h>

#include "data.h"
#include "err.h"
#include "model.h"
#include "spec.h"

/* The parameter section of a checkpoint blob (format: top of vae/ckpt.c), in place.
 * The blob is checked first, with the same checks every reader of a blob makes (byte
 * order of the host, length, magic, version, length field, checksum, section sizes).
 * OUT: *params points into blob (borrowed, as long as blob lives; f32, little-endian,
 * may be unaligned for float access only on exotic hosts: copy it with memcpy), *n the
 * parameter count. Returns 0, or VAED_EINVAL when blob is not a valid checkpoint, with
 * err (may be NULL) saying why: "checkpoint: 10 bytes is too short", "checkpoint: bad
 * magic ...", "checkpoint: format version ...", "checkpoint: truncated or padded ...",
 * "checkpoint: checksum mismatch ...", "checkpoint: section sizes do not add up", or
 * "checkpoints need a little-endian host"; *params and *n are then untouched.
 * Defined in ckpt.c. */
int vae_ckpt_params(const void *blob, size_t len, const float **params, long *n,
                    vaed_err *err);

/* 1 when blob, which vae_ckpt_params accepted, was written by a model of m's shape:
 * the same parameter count and the same model fingerprint (FNV-1a over the layer
 * shapes and activations, latent groups, samples, likelihood and KL estimator), so a
 * blob of another activation or latent split is told apart even when the counts
 * agree; else 0. Reads only m's shape — D, k, lik, klkind, n_groups, group_off,
 * n_enc, enc[] and n_dec, dec[] (in, out, act) and n_params — so a vae_model with just
 * those filled (no buffers) will do. Defined in ckpt.c: the one fingerprint there is. */
int vae_ckpt_fits(const void *blob, size_t len, const vae_model *m);

/* Build the model of spec for data of width D (not categorical: vocab 0) with room for
 * max_batch rows, and load the parameters of blob. Returns 0 and *out (free with
 * vae_model_free), or VAED_EINVAL (bad blob, or a blob of another shape: the message
 * gives both parameter counts), VAED_ENOMEM; *out is NULL on error. */
int vae_infer_model(vae_model **out, const vae_spec *spec, int D, int max_batch,
                    const void *blob, size_t len, vaed_err *err);

/* vae_infer_model for any likelihood: vocab > 0 for a categorical model (D = positions ·
 * vocab, as vae_model_new). vae_infer_model is this with vocab 0. */
int vae_infer_model_vocab(vae_model **out, const vae_spec *spec, int D, int vocab,
                          int max_batch, const void *blob, size_t len, vaed_err *err);

/* The data width D for which spec's model (not categorical: vocab 0) has n parameters,
 * read off the layer shapes (the count is c0 + D · slope); 0 when none fits. The
 * dataset's width is not in the spec, so a checkpoint's reader solves it from there. */
long vae_infer_width(const vae_spec *spec, long n);

/* Encode B data rows: x (B, D) → the posterior's means mu (B, L) and log-variances
 * lv (B, L). B <= max_batch. */
void vae_infer_encode(vae_model *m, const float *x, int B, float *mu, float *lv);

/* The likelihood's parameters for B latent rows: z (B, L) → out (B, D): bernoulli, the
 * probabilities sigmoid(logits); categorical, the probabilities softmax(logits) of
 * each position's vocab symbols; gaussian, the means (the variance is the model's
 * fixed sigma², spec model.sigma). B <= max_batch. */
void vae_infer_lik_params(vae_model *m, const float *z, int B, float *out);

/* Decode B latent rows: z (B, L) → out (B, D), the likelihood's mean: sigmoid of the
 * logits for bernoulli, the mean itself for gaussian. B <= max_batch. */
void vae_infer_decode(vae_model *m, const float *z, int B, float *out);

/* Reconstruct B data rows through the posterior mean: x (B, D) → z = mu(x) →
 * out (B, D) as vae_infer_decode. B <= max_batch. */
void vae_infer_reconstruct(vae_model *m, const float *x, int B, float *out);

/* The first n rows of the spec's held-out split when it is a file of its own
 * (fashion-mnist's t10k images, or dataset.test_path), else of the training file;
 * IDX files only (gzipped or not), reading just the header and those rows.
 * OUT: out (n, D) floats in [0, 1] for unsigned-byte data (allocated, caller frees),
 * *got rows read (fewer when the file is shorter), *D row width, *rows and *cols the
 * image shape (0 when the file is not 3-D), *test 1 when the rows are held-out ones.
 * Returns 0, VAED_EINVAL (not an IDX dataset, or a malformed header), VAED_EIO. */
int vae_infer_read_rows(const vae_data_spec *ds, int n, float **out, int *got, int *D,
                        int *rows, int *cols, int *test, vaed_err *err);

#endif
