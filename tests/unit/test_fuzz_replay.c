/* test_fuzz_replay.c — replays every committed fuzz input through the fuzz targets,
 * built with the ordinary compiler, so `make test` (and CI under ASan+UBSan) checks
 * the crashes the fuzzers once found (tests/fuzz/regress/<target>/) and the seed
 * corpora (tests/fuzz/corpus/<target>/) without clang or libFuzzer.
 *
 * Each target's entry point aborts with a message naming the broken invariant, so a
 * regression shows as this program dying right after the "replay <file>" line that
 * names the input. The targets are included here as source with their entry points
 * (and their clashing static helpers) renamed. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LLVMFuzzerTestOneInput one_spec
#include "tests/fuzz/fuzz_spec.c"
#undef LLVMFuzzerTestOneInput

#define LLVMFuzzerTestOneInput one_sched
#define die sched_die
#include "tests/fuzz/fuzz_sched.c"
#undef die
#undef LLVMFuzzerTestOneInput

#define LLVMFuzzerTestOneInput one_idx
#include "tests/fuzz/fuzz_idx.c"
#undef LLVMFuzzerTestOneInput

#define LLVMFuzzerTestOneInput one_npy
#include "tests/fuzz/fuzz_npy.c"
#undef LLVMFuzzerTestOneInput

#define LLVMFuzzerTestOneInput one_csv
#include "tests/fuzz/fuzz_csv.c"
#undef LLVMFuzzerTestOneInput

#define LLVMFuzzerTestOneInput one_text
#include "tests/fuzz/fuzz_text.c"
#undef LLVMFuzzerTestOneInput

#define LLVMFuzzerTestOneInput one_ckpt
#define LLVMFuzzerInitialize init_ckpt
#define die ckpt_die
#include "tests/fuzz/fuzz_ckpt.c"
#undef die
#undef LLVMFuzzerInitialize
#undef LLVMFuzzerTestOneInput

#define LLVMFuzzerTestOneInput one_http
#define LLVMFuzzerInitialize init_http
#define die http_die
#include "tests/fuzz/fuzz_http.c"
#undef die
#undef LLVMFuzzerInitialize
#undef LLVMFuzzerTestOneInput

#include "tests/unit/t.h"

typedef struct target {
    const char *name;
    int (*one)(const uint8_t *, size_t);
    int (*init)(int *, char ***);
} target;

static const target targets[] = {
    {"spec", one_spec, NULL},  {"sched", one_sched, NULL}, {"idx", one_idx, NULL},
    {"npy", one_npy, NULL},    {"csv", one_csv, NULL},     {"text", one_text, NULL},
    {"ckpt", one_ckpt, init_ckpt}, {"http", one_http, init_http},
};

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replay every regular file of dir through tg; returns how many ran (0 if no dir). */
static int replay_dir(const target *tg, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    char *names[4096];
    int n = 0;
    for (struct dirent *de; (de = readdir(d)) && n < 4096;)
        if (de->d_name[0] != '.')
            names[n++] = xstrdup(de->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, by_name);
    int ran = 0;
    for (int i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        free(names[i]);
        FILE *f = fopen(path, "rb");
        CHECK(f != NULL, "cannot open %s", path);
        if (!f)
            continue;
        fseek(f, 0, SEEK_END);
        long len = ftell(f);
        fseek(f, 0, SEEK_SET);
        uint8_t *buf = xmalloc(len > 0 ? (size_t)len : 1);
        size_t got = fread(buf, 1, (size_t)len, f);
        fclose(f);
        CHECK(got == (size_t)len, "short read of %s", path);
        printf("replay %s (%ld bytes)\n", path, len);
        fflush(stdout);
        tg->one(buf, got); /* aborts, naming the invariant, on a regression */
        free(buf);
        ran++;
        t_pass++;
    }
    return ran;
}

int main(void)
{
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        const target *tg = &targets[i];
        if (tg->init)
            tg->init(NULL, NULL);
        char dir[256];
        snprintf(dir, sizeof dir, "tests/fuzz/corpus/%s", tg->name);
        int seeds = replay_dir(tg, dir);
        snprintf(dir, sizeof dir, "tests/fuzz/regress/%s", tg->name);
        int regress = replay_dir(tg, dir);
        CHECK(seeds > 0, "no seed corpus for %s in tests/fuzz/corpus/%s (run from the repository "
              "root)", tg->name, tg->name);
        printf("%s: %d seeds, %d regression inputs\n", tg->name, seeds, regress);
    }
    if (S)
        api_server_stop(S);
    return t_done("test_fuzz_replay");
}
