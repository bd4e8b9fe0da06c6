/* main.c — the vaed binary: `vaed train SPEC.json` (one job in the foreground), `vaed
 * eval` (a checkpoint's likelihood bound) and `vaed serve` (the daemon). The only place that decides the process's exit status. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/cmd.h"
#include "daemon/version.h"
#include "vae/kernels.h"
#include "vae/train.h"

static int usage(FILE *f)
{
    fprintf(f,
            "vaed %s — trains variational autoencoders on the CPU\n"
            "usage:\n"
            "  vaed train SPEC.json [--metrics FILE] [--save CKPT]\n"
            "                                          train one job in the foreground\n"
            "  vaed eval SPEC.json CKPT [--k K]        the importance-weighted bound of a\n"
            "                                          checkpoint (vaed eval --help)\n"
            "  vaed serve [flags]                      run the daemon (vaed serve --help)\n"
            "  vaed --version\n",
            VAED_VERSION);
    return f == stderr ? 2 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage(stderr);
    if (vae_gemm_env() < 0) { /* every command multiplies: a wrong choice is refused, not guessed */
        fprintf(stderr, "vaed: VAED_GEMM must be auto, openblas or libxsmm, not '%s'\n",
                getenv("VAED_GEMM"));
        return 2;
    }
    if (!strcmp(argv[1], "train"))
        return cmd_train(argc - 1, argv + 1);
    if (!strcmp(argv[1], "bench-sgemm"))
        return cmd_bench_sgemm(argc - 1, argv + 1);
    if (!strcmp(argv[1], "bench-fma"))
        return cmd_bench_fma(argc - 1, argv + 1);
    if (!strcmp(argv[1], "eval"))
        return cmd_eval(argc - 1, argv + 1);
    if (!strcmp(argv[1], "serve"))
        return cmd_serve(argc - 1, argv + 1);
    if (!strcmp(argv[1], "--version")) {
        char blas[256];
        vae_blas_init();
        vae_blas_info(blas, sizeof blas);
        printf("vaed %s\n%s\n", VAED_VERSION, blas); /* scripts/host-info reads the core */
        return 0;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help"))
        return usage(stdout);
    fprintf(stderr, "vaed: unknown command '%s'\n", argv[1]);
    return usage(stderr);
}
