/* paths.c — see paths.h. */
#include "daemon/paths.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The path with "." and ".." segments and repeated slashes taken out, by text alone
 * (no symlink is followed). out has room for n bytes; returns 0, or -1 if it does not
 * fit. */
static int lexical_normal(const char *path, char *out, size_t n)
{
    size_t len = 0;
    const char *p = path;
    while (*p) {
        while (*p == '/')
            p++;
        const char *seg = p;
        while (*p && *p != '/')
            p++;
        size_t sl = (size_t)(p - seg);
        if (sl == 0 || (sl == 1 && seg[0] == '.'))
            continue;
        if (sl == 2 && seg[0] == '.' && seg[1] == '.') {
            while (len > 0 && out[len - 1] != '/')
                len--;
            if (len > 0)
                len--; /* the slash before the dropped segment */
            continue;
        }
        if (len + 1 + sl + 1 > n)
            return -1;
        out[len++] = '/';
        memcpy(out + len, seg, sl);
        len += sl;
    }
    if (len == 0)
        out[len++] = '/';
    out[len] = '\0';
    return 0;
}

int path_under(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    return !strncmp(path, dir, n) && (path[n] == '/' || path[n] == '\0');
}

/* dir/path, or path when it is absolute, into full (n bytes); -1 if it does not fit. */
static int joined(const char *path, const char *dir, char *full, size_t n)
{
    int w = path[0] == '/' ? snprintf(full, n, "%s", path) : snprintf(full, n, "%s/%s", dir, path);
    return w < 0 || (size_t)w >= n ? -1 : 0;
}

int path_lexically_inside(const char *path, const char *dir)
{
    char full[PATH_MAX * 2], norm[PATH_MAX * 2];
    return joined(path, dir, full, sizeof full) == 0 &&
           lexical_normal(full, norm, sizeof norm) == 0 && path_under(norm, dir);
}

int path_check_inside(const char *path, const char *dir, const char *field, char *real,
                      vaed_err *err)
{
    char full[PATH_MAX * 2], resolved[PATH_MAX];
    if (!path_lexically_inside(path, dir) || joined(path, dir, full, sizeof full))
        return vaed_err_set(err, VAED_EPERM, field, "%s is outside the data directory", path);
    if (!realpath(full, resolved))
        return vaed_err_set(err, VAED_EINVAL, field, "%s: %s", path, strerror(errno));
    if (!path_under(resolved, dir))
        return vaed_err_set(err, VAED_EPERM, field, "%s is outside the data directory", path);
    if (real)
        memcpy(real, resolved, sizeof resolved);
    return 0;
}

int path_fsync(const char *path, int dir)
{
    int fd = open(path, (dir ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}
