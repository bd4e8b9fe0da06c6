/* datasets_copies.c — where an upload's bytes are read on this node (datasets.h):
 * the uploading node's file, or a copy made from the bytes the database keeps (schema
 * v10, store/datasets.h), and the copies of deleted datasets pruned at a node's start.
 *
 * A copy is written to a spool file in the upload directory, checked against the
 * upload's size and SHA-256 by the store as it is written, synced and renamed to
 * <id>.<ext>: a file under that name is whole. Two jobs making the same copy at once
 * each write their own spool file; the later rename replaces the earlier with the same
 * bytes. A crash leaves at most a spool file, deleted at the next start. */
#include "api/datasets.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/paths.h"
#include "store/datasets.h"

static const char *const upload_exts[] = {"npy", "csv", "txt", "idx", NULL};

const char *api_datasets_upload_name(const char *path)
{
    const char *slash = path ? strrchr(path, '/') : NULL;
    const char *p = slash ? slash + 1 : path, *q = p;
    if (!p)
        return NULL;
    while (*q >= '0' && *q <= '9')
        q++;
    if (q == p || *q != '.')
        return NULL;
    for (int i = 0; upload_exts[i]; i++)
        if (!strcmp(q + 1, upload_exts[i]))
            return p;
    return NULL;
}

/* Whether path is "<upload dir>/<upload name>" of this node, resolving (when it exists)
 * inside the upload directory. */
static int in_upload_dir(const api_datasets *ds, const char *path)
{
    size_t n = strlen(api_datasets_upload_dir(ds));
    if (!n || !path || strncmp(path, api_datasets_upload_dir(ds), n) || path[n] != '/' ||
        api_datasets_upload_name(path) != path + n + 1)
        return 0;
    /* The directory is ours (0700), but a file swapped for a symlink must still not
     * lead out of it. */
    char real[PATH_MAX];
    if (realpath(path, real))
        return path_under(real, api_datasets_upload_dir(ds));
    return 1; /* missing: the load will say so */
}

int api_datasets_owns_path(const api_datasets *ds, store *st, const char *path)
{
    if (in_upload_dir(ds, path))
        return 1;
    if (!st || !api_datasets_upload_name(path))
        return 0;
    store_dataset d;
    vaed_err err;
    int ok = store_dataset_by_path(st, path, &d, &err) == 0;
    store_dataset_clear(&d);
    return ok;
}

/* This node's copy of upload d: written from the database to a spool file, synced, and
 * renamed to local, so a copy under its final name is whole. */
static int fetch_copy(const api_datasets *ds, store *st, const store_dataset *d,
                      const char *local, vaed_err *err)
{
    char tmp[PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s/" API_SPOOL_PREFIX "fetch-XXXXXX", api_datasets_upload_dir(ds));
    int fd = mkstemp(tmp);
    if (fd < 0)
        return vaed_err_set(err, VAED_EIO, "", "copying dataset %lld here: %s",
                            (long long)d->id, strerror(errno));
    int rc = store_dataset_fetch(st, d, fd, err);
    if (!rc && fsync(fd) != 0)
        rc = vaed_err_set(err, VAED_EIO, "", "syncing dataset %lld's copy: %s",
                          (long long)d->id, strerror(errno));
    close(fd);
    if (!rc && rename(tmp, local) != 0)
        rc = vaed_err_set(err, VAED_EIO, "", "moving dataset %lld's copy into place: %s",
                          (long long)d->id, strerror(errno));
    if (rc)
        unlink(tmp);
    else
        path_fsync(api_datasets_upload_dir(ds), 1);
    return rc;
}

int api_datasets_local_path(const api_datasets *ds, store *st, const char *path, char *out,
                            size_t n, vaed_err *err)
{
    const char *name = api_datasets_upload_name(path);
    store_dataset d;
    int rc = name ? store_dataset_by_path(st, path, &d, err) : VAED_ENOTFOUND;
    if (rc == VAED_ENOTFOUND) { /* not an upload: the file itself */
        vaed_err_clear(err);
        snprintf(out, n, "%s", path);
        return 0;
    }
    if (rc)
        return rc;
    char local[PATH_MAX + 32];
    snprintf(local, sizeof local, "%s/%s", api_datasets_upload_dir(ds), name);
    struct stat sb;
    if (!d.sha256[0]) /* kept in its file only (a build before v10): that file */
        snprintf(local, sizeof local, "%s", path);
    else if (stat(local, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size != d.size)
        rc = fetch_copy(ds, st, &d, local, err);
    store_dataset_clear(&d);
    if (!rc && strlen(local) >= n)
        rc = vaed_err_set(err, VAED_EINVAL, "", "upload path too long");
    if (!rc)
        snprintf(out, n, "%s", local);
    return rc;
}

void api_datasets_prune(const api_datasets *ds, store *st)
{
    DIR *dir = opendir(api_datasets_upload_dir(ds));
    if (!dir)
        return;
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (!api_datasets_upload_name(e->d_name))
            continue;
        store_dataset d;
        vaed_err err;
        int rc = store_dataset_get(st, strtoll(e->d_name, NULL, 10), &d, &err);
        const char *name = NULL;
        json_t *spec = rc ? NULL : json_loads(d.spec, 0, NULL);
        if (spec)
            name = api_datasets_upload_name(json_string_value(json_object_get(spec, "path")));
        if (rc == VAED_ENOTFOUND || (!rc && strcmp(d.source, "upload")) ||
            (spec && (!name || strcmp(name, e->d_name))))
            unlinkat(dirfd(dir), e->d_name, 0);
        json_decref(spec);
        store_dataset_clear(&d);
    }
    closedir(dir);
}
