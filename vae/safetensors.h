/* safetensors.h — a checkpoint's weights as a safetensors file, for PyTorch and NumPy.
 *
 * safetensors (github.com/huggingface/safetensors): u64 little-endian header length N,
 * N bytes of JSON header padded with spaces to a multiple of 8, then the tensors' raw
 * little-endian bytes back to back. The header maps each tensor name to
 * {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]} (offsets into the data
 * section) and "__metadata__" to an object of string values.
 *
 * Tensor names, in file order, follow PyTorch modules a user would write for the same
 * model — nn.Sequential(Linear, act, Linear, act, ...) for the two MLPs, so the Linear
 * layers sit at the even indices 0, 2, 4, ... and the activations (no parameters) at
 * the odd ones; a plain nn.Linear for each latent head and for the output layer:
 *
 *   encoder.{2i}.weight  [h_i, in_i]   encoder.{2i}.bias  [h_i]   i-th encoder hidden layer
 *   z_mean.weight        [L, h]        z_mean.bias        [L]     posterior mean head
 *   z_logvar.weight      [L, h]        z_logvar.bias      [L]     posterior log-variance head
 *   decoder.{2i}.weight  [d_i, in_i]   decoder.{2i}.bias  [d_i]   i-th decoder hidden layer
 *   output.weight        [D, d]        output.bias        [D]     decoder output layer
 *
 * h is the last encoder hidden size (D when there is none), d the last decoder hidden
 * size (L when there is none), D the data width (positions · vocab for categorical).
 * With several latent groups the heads are one nn.Linear per group, as an
 * nn.ModuleList: z_mean.{g}.weight [L_g, h], z_mean.{g}.bias, z_logvar.{g}.weight,
 * z_logvar.{g}.bias for g = 0, 1, ...; the decoder's first layer takes the groups'
 * samples concatenated in group order. Every weight is [out_features, in_features],
 * row-major, as nn.Linear holds it (vaed stores them that way: no transposes).
 *
 * "__metadata__" (all strings): format "pt"; spec (the job spec, compact JSON with
 * every default, sorted keys); step; beta (of the last step, %.17g); likelihood;
 * activation; latent_groups (JSON list, e.g. "[16,16]"); data_width (D); output
 * ("logits" for bernoulli and categorical, "mean" for gaussian); plus the caller's
 * extra pairs (the daemon adds vaed_version and job_id). */
#ifndef VAED_SAFETENSORS_H
#define VAED_SAFETENSORS_H

#include <stddef.h>

#include "err.h"
#include "spec.h"

/* Convert the checkpoint blob (format: top of vae/ckpt.c) of a model built from spec
 * into a safetensors file holding only the parameters (not Adam's moments).
 *
 * spec and blob are borrowed and only read. extra is NULL or a NULL-terminated list of
 * key, value, key, value, ... strings added to "__metadata__" after the built-in keys;
 * a key that repeats a built-in or earlier one is refused (VAED_EINVAL, field "extra").
 *
 * The blob is checked by vae_ckpt_params (magic, version, length, checksum; its
 * message is passed on) and must be of spec's model: its parameter count must fit the
 * spec's layer sizes for some data width D, and vae_ckpt_fits must accept it (so a
 * blob of another activation or latent split is refused, not mislabelled). Parameter values are copied bit for bit, NaN included.
 *
 * Returns 0 and OUT *out (malloc'd, caller frees) with OUT *out_len bytes; or
 * VAED_EINVAL (err says why: "checkpoint: ..." for the blob, "spec: ..." for a
 * mismatch), VAED_ENOMEM. On error *out is NULL and *out_len 0. */
int vae_safetensors_from_ckpt(const vae_spec *spec, const void *blob, size_t len,
                              const char *const *extra, void **out, size_t *out_len,
                              vaed_err *err);

#endif
