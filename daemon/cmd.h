/* cmd.h — the subcommands of the vaed binary, and small helpers they share. */
#ifndef VAED_CMD_H
#define VAED_CMD_H

#include <stddef.h>

#include "vae/err.h"

int cmd_train(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_bench_sgemm(int argc, char **argv);
int cmd_bench_fma(int argc, char **argv);

/* Read a whole file into a NUL-terminated malloc'd buffer. OUT: *len (without the
 * NUL). Returns NULL with err naming the file on failure. */
char *read_file(const char *path, size_t *len, vaed_err *err);

#endif
