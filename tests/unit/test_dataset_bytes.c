/* test_dataset_bytes.c — an upload's bytes kept in the database (store/datasets.h,
 * schema v10) and each node's copy of them (api/datasets.h: api_datasets_local_path,
 * api_datasets_prune), on SQLite and, when VAED_TEST_PG names a server, on PostgreSQL
 * (tests/e2e/store_pg.sh runs it so):
 *  - an upload of a little over 2.5 parts is kept as 3 rows, with the SHA-256 that
 *    sha256sum (coreutils, the independent oracle) gives for the file;
 *  - store_dataset_fetch writes the same bytes; by path the upload is found, another
 *    path is not;
 *  - a second node (another upload directory) gets its copy from the database, equal to
 *    the file byte for byte; a path that is no upload's is itself; the copy is reused
 *    once made (a part changed afterwards is not read again);
 *  - a part changed in the database: a node without a copy refuses it (VAED_EIO, the
 *    digest named), and no partial copy is left under the final name;
 *  - a deleted dataset's parts are gone with it, and a node's next start (prune) deletes
 *    its copy, keeping the copies of datasets that still exist. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/datasets.h"
#include "store/datasets.h"
#include "store/sql.h"
#include "tests/unit/t.h"
#include "tests/unit/test_sql_util.h"

static const char *K = "sqlite"; /* which database, in the messages */

/* The file's bytes (malloc) and length; NULL when it cannot be read. */
static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(len > 0 ? (size_t)len : 1);
    *n = b ? fread(b, 1, (size_t)len, f) : 0;
    fclose(f);
    return b;
}

static int same_file(const char *a, const char *b)
{
    size_t na = 0, nb = 0;
    unsigned char *x = slurp(a, &na), *y = slurp(b, &nb);
    int same = x && y && na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

/* sha256sum's digest of path in hex (65 bytes); "" when it fails. */
static void oracle_sha(const char *path, char *hex)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
    hex[0] = '\0';
    FILE *p = popen(cmd, "r");
    if (p) {
        if (fscanf(p, "%64s", hex) != 1)
            hex[0] = '\0';
        pclose(p);
    }
}

static void scenario(const char *target, const char *dir)
{
    char up1[512], up2[512], spool[600], cmd[800];
    snprintf(up1, sizeof up1, "%s/%s-up1", dir, K);
    snprintf(up2, sizeof up2, "%s/%s-up2", dir, K);
    vaed_err err = {0};
    api_datasets *n1 = NULL, *n2 = NULL;
    CHECK(api_datasets_new(&n1, NULL, up1, &err) == 0, "%s: node 1: %s", K, err.msg);
    CHECK(api_datasets_new(&n2, NULL, up2, &err) == 0, "%s: node 2: %s", K, err.msg);
    store *st = NULL;
    store_opts o;
    store_opts_default(&o);
    o.fsync_checkpoints = 0;
    CHECK(store_open(&st, target, &o, &err) == 0, "%s: open: %s", K, err.msg);
    if (!st || !n1 || !n2)
        return;

    /* the upload, as the HTTP layer spools it: 2.5 parts of a pattern */
    snprintf(spool, sizeof spool, "%s/.spool-test", up1);
    size_t len = STORE_DS_PART * 5 / 2 + 7;
    FILE *f = fopen(spool, "wb");
    for (size_t i = 0; f && i < len; i++)
        fputc((int)((i * 2654435761u) >> 13) & 0xff, f);
    if (f)
        fclose(f);
    char want_sha[80];
    oracle_sha(spool, want_sha);
    CHECK(strlen(want_sha) == 64, "%s: sha256sum ran (%s)", K, want_sha);

    store_dataset_new nd = {.name = "bytes", .source = "upload",
                            .spec = "{\"path\":\"-\",\"format\":\"npy\"}", .info = "{}",
                            .size = (int64_t)len, .path_dir = up1, .path_ext = "npy",
                            .bytes_path = spool};
    int64_t id = 0;
    CHECK(store_dataset_insert(st, &nd, &id, &err) == 0 && id > 0, "%s: insert: %s", K, err.msg);
    char path1[600];
    snprintf(path1, sizeof path1, "%s/%lld.npy", up1, (long long)id);
    CHECK(rename(spool, path1) == 0, "%s: the upload in place", K);

    store_dataset d;
    CHECK(store_dataset_get(st, id, &d, &err) == 0, "%s: get: %s", K, err.msg);
    CHECK(!strcmp(d.sha256, want_sha), "%s: the row's SHA-256 is sha256sum's: %s vs %s", K,
          d.sha256, want_sha);
    store_dataset_clear(&d);

    sql_conn *raw = NULL;
    CHECK(sql_open(&raw, target, NULL, &err) == 0, "%s: raw connection: %s", K, err.msg);
    char q[200];
    snprintf(q, sizeof q, "SELECT count(*) FROM dataset_blobs WHERE dataset = %lld", (long long)id);
    CHECK(t_sql_int(raw, q) == 3, "%s: 2.5 parts kept as 3 rows (%lld)", K,
          (long long)t_sql_int(raw, q));

    /* by path, and fetched */
    CHECK(store_dataset_by_path(st, path1, &d, &err) == 0 && d.id == id, "%s: by path: %s", K,
          err.msg);
    char out[600];
    snprintf(out, sizeof out, "%s/fetched", dir);
    FILE *of = fopen(out, "wb");
    CHECK(of && store_dataset_fetch(st, &d, fileno(of), &err) == 0, "%s: fetch: %s", K, err.msg);
    if (of)
        fclose(of);
    CHECK(same_file(out, path1), "%s: the fetched bytes are the upload's", K);
    store_dataset_clear(&d);
    store_dataset e;
    CHECK(store_dataset_by_path(st, "/elsewhere/1.npy", &e, &err) == VAED_ENOTFOUND,
          "%s: no upload at another path", K);

    /* node 2: its copy made from the database */
    char local[600], want2[600];
    snprintf(want2, sizeof want2, "%s/%lld.npy", up2, (long long)id);
    CHECK(api_datasets_owns_path(n2, st, path1) && !api_datasets_owns_path(n2, NULL, path1),
          "%s: node 2 lets node 1's upload path through (by the registry)", K);
    CHECK(api_datasets_local_path(n2, st, path1, local, sizeof local, &err) == 0,
          "%s: node 2's copy: %s", K, err.msg);
    CHECK(!strcmp(local, want2), "%s: node 2 reads %s (wanted %s)", K, local, want2);
    CHECK(same_file(local, path1), "%s: node 2's copy equals the upload byte for byte", K);
    CHECK(api_datasets_local_path(n1, st, path1, local, sizeof local, &err) == 0 &&
              !strcmp(local, path1),
          "%s: node 1 reads its own file", K);
    CHECK(api_datasets_local_path(n2, st, "/data/x.npy", local, sizeof local, &err) == 0 &&
              !strcmp(local, "/data/x.npy"),
          "%s: a path that is no upload's is itself", K);

    /* a part changed in the database */
    snprintf(cmd, sizeof cmd, "UPDATE dataset_blobs SET data = %s WHERE dataset = %lld AND seq = 1",
             strncmp(K, "postgres", 8) ? "zeroblob(1048576)" : "decode(repeat('00', 1048576), 'hex')",
             (long long)id);
    CHECK(sql_exec(raw, cmd, &err) == 0, "%s: tamper: %s", K, err.msg);
    CHECK(api_datasets_local_path(n2, st, path1, local, sizeof local, &err) == 0 &&
              same_file(local, path1),
          "%s: node 2's copy, once made, is reused: %s", K, err.msg);
    CHECK(unlink(want2) == 0, "%s: node 2's copy removed", K);
    int rc = api_datasets_local_path(n2, st, path1, local, sizeof local, &err);
    CHECK(rc == VAED_EIO && strstr(err.msg, want_sha), "%s: changed bytes refused (rc %d): %s", K,
          rc, err.msg);
    CHECK(access(want2, F_OK) != 0, "%s: no copy left under its final name", K);
    snprintf(cmd, sizeof cmd, "ls -a '%s' | grep -c spool", up2);
    FILE *p = popen(cmd, "r");
    int spools = -1;
    if (p) {
        if (fscanf(p, "%d", &spools) != 1)
            spools = -1;
        pclose(p);
    }
    CHECK(spools == 0, "%s: no partial copy left (%d)", K, spools);

    /* deleted: parts gone, copies pruned at the next start, others kept */
    char stale[600], other[600];
    snprintf(stale, sizeof stale, "%s/%lld.npy", up2, (long long)id);
    snprintf(other, sizeof other, "%s/%lld.csv", up2, (long long)id + 1000);
    FILE *sf = fopen(stale, "w"), *of2 = fopen(other, "w");
    if (sf)
        fclose(sf);
    if (of2)
        fclose(of2);
    int64_t id2 = 0;
    store_dataset_new keep = {.name = "keep", .source = "upload",
                              .spec = "{\"path\":\"-\",\"format\":\"csv\"}", .info = "{}",
                              .size = 0, .path_dir = up1, .path_ext = "csv"};
    CHECK(store_dataset_insert(st, &keep, &id2, &err) == 0, "%s: a second upload: %s", K,
          err.msg);
    char kept[600];
    snprintf(kept, sizeof kept, "%s/%lld.csv", up2, (long long)id2);
    FILE *kf = fopen(kept, "w");
    if (kf)
        fclose(kf);
    CHECK(store_dataset_delete(st, id, NULL, NULL, &err) == 0, "%s: delete: %s", K, err.msg);
    CHECK(t_sql_int(raw, q) == 0, "%s: the parts went with the dataset", K);
    api_datasets_prune(n2, st);
    CHECK(access(stale, F_OK) != 0, "%s: prune deleted the deleted dataset's copy", K);
    CHECK(access(other, F_OK) != 0, "%s: prune deleted a copy of no dataset", K);
    CHECK(access(kept, F_OK) == 0, "%s: prune kept a dataset's copy", K);

    sql_close(raw);
    CHECK(store_close(st, &err) == 0, "%s: close: %s", K, err.msg);
    api_datasets_free(n1);
    api_datasets_free(n2);
}

int main(void)
{
    char dir[] = "/tmp/vaed-test-dsbytes.XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char db[600];
    snprintf(db, sizeof db, "%s/t.db", dir);
    scenario(db, dir);
    const char *url = getenv("VAED_TEST_PG");
    if (url && *url) {
        K = "postgres";
        vaed_err e = {0};
        char pdb[512];
        int rc = t_pg_fresh(url, "vaed_dsbytes", pdb, sizeof pdb, &e);
        CHECK(rc == 0, "postgres: a fresh database: %s", e.msg);
        if (rc == 0)
            scenario(pdb, dir);
    } else {
        printf("test_dataset_bytes: PostgreSQL half not run here (VAED_TEST_PG unset; "
               "tests/e2e/store_pg.sh runs it)\n");
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0, "rm");
    return t_done("test_dataset_bytes");
}
