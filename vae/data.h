/* data.h — training data in memory, and the readers that fill it.
 *
 * A dataset is n rows of dim features. Three storage kinds, chosen to keep memory
 * small: uint8 (IDX images, uint8 .npy) stays uint8 and is scaled by 1/255 when a
 * batch is built; float rows (float32/float64 .npy, CSV) are float32; text
 * sequences are kept as symbol ids (max_len per row, 0 = padding) and expanded to
 * one-hot only per batch, so dim = max_len * vocab for them.
 *
 * Every reader error names the file and what is wrong, and the line for CSV/text,
 * e.g. "data/x.csv: line 17: 'abc' is not a number". */
#ifndef VAED_DATA_H
#define VAED_DATA_H

#include <stdint.h>

#include "err.h"

enum vae_data_format { VAE_FMT_NONE = 0, VAE_FMT_IDX, VAE_FMT_NPY, VAE_FMT_CSV, VAE_FMT_TEXT };
enum vae_binarize { VAE_BIN_NONE = 0, VAE_BIN_STATIC, VAE_BIN_DYNAMIC };
enum vae_overlong { VAE_LONG_REJECT = 0, VAE_LONG_TRUNCATE, VAE_LONG_SKIP };

/* The "dataset" section of a job spec (parsed in spec.c). */
typedef struct vae_data_spec {
    char name[64];            /* built-in dataset ("fashion-mnist") or "" */
    char path[1024];          /* file for format, when name is "" */
    char test_path[1024];     /* optional separate test file, same format */
    enum vae_data_format format;
    long limit;               /* first N training rows; 0 = all */
    double validation_fraction; /* hold out the last fraction of training rows */
    int max_len;              /* text: positions per sequence; 0 = longest line */
    enum vae_overlong overlong; /* text: what a line longer than max_len does */
    int csv_header;           /* csv: skip the first line */
    enum vae_binarize binarize;
} vae_data_spec;

enum vae_data_kind { VAE_DATA_U8 = 0, VAE_DATA_F32, VAE_DATA_SEQ };

typedef struct vae_dataset {
    enum vae_data_kind kind;
    long n;                   /* rows */
    long dim;                 /* features per row as the model sees it */
    uint8_t *u8;              /* VAE_DATA_U8: n * dim */
    float *f32;               /* VAE_DATA_F32: n * dim */
    int32_t *seq;             /* VAE_DATA_SEQ: n * max_len symbol ids, 0 = padding */
    int max_len;              /* VAE_DATA_SEQ */
    int vocab;                /* VAE_DATA_SEQ: symbols including padding (id 0) */
    char **symbols;           /* VAE_DATA_SEQ: vocab UTF-8 strings; symbols[0] = "" */
    long rows, cols;          /* image shape when known (IDX 3-D), else 0 */
    char source[1024];        /* where it came from, for messages */
} vae_dataset;

/* Directory of the Debian dataset-fashion-mnist files; the environment variable
 * VAED_FASHION_MNIST_DIR overrides it (tests use it). */
#define VAE_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

/* Load the training and test splits that spec describes.
 * OUT: *train (never NULL on success), *test (NULL when the spec gives no test split:
 * no shipped test set, no test_path and validation_fraction 0). Caller frees both with
 * vae_dataset_free. On error both are NULL and err names the file/field. */
int vae_data_load(const vae_data_spec *spec, vae_dataset **train, vae_dataset **test,
                  vaed_err *err);

/* Single-file readers, used by vae_data_load and by tests/fuzzers. Each returns a new
 * dataset in *out or an error naming path. For text, vocab_from may be a dataset whose
 * vocabulary must be reused (the test split uses the training vocabulary; a symbol not
 * in it is an error naming the line); NULL builds the vocabulary from the file. */
int vae_read_idx(const char *path, vae_dataset **out, vaed_err *err);
int vae_read_npy(const char *path, vae_dataset **out, vaed_err *err);
int vae_read_csv(const char *path, int header, vae_dataset **out, vaed_err *err);
int vae_read_text(const char *path, int max_len, enum vae_overlong overlong,
                  const vae_dataset *vocab_from, vae_dataset **out, vaed_err *err);

/* Same readers over a memory buffer (fuzzers, uploads). name is used in messages. */
int vae_parse_idx(const void *buf, size_t len, const char *name, vae_dataset **out, vaed_err *err);
int vae_parse_npy(const void *buf, size_t len, const char *name, vae_dataset **out, vaed_err *err);
int vae_parse_csv(const char *buf, size_t len, int header, const char *name, vae_dataset **out,
                  vaed_err *err);
int vae_parse_text(const char *buf, size_t len, int max_len, enum vae_overlong overlong,
                   const vae_dataset *vocab_from, const char *name, vae_dataset **out,
                   vaed_err *err);

/* Write rows rows[0..b) of d into out (b, d->dim) as floats the model consumes:
 * uint8 scaled by 1/255, floats copied, sequences one-hot. No allocation. */
void vae_batch_fill(const vae_dataset *d, const long *rows, int b, float *out);

/* Keep the first n rows (n <= d->n); frees nothing, just shrinks. */
void vae_dataset_truncate(vae_dataset *d, long n);

/* Split off the last `count` rows of d into a new dataset *tail (sharing nothing),
 * leaving d with n - count rows. Text datasets keep the same vocabulary. */
int vae_dataset_split_tail(vae_dataset *d, long count, vae_dataset **tail, vaed_err *err);

/* Bytes the dataset holds in memory (for job memory estimates). */
size_t vae_dataset_bytes(const vae_dataset *d);

void vae_dataset_free(vae_dataset *d);

#endif
