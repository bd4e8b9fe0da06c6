/* paths.h — containment of server-side paths in a directory (--data-dir, the upload
 * directory). One implementation for every place a client names a file on the server:
 * job specs (daemon/jobs.c) and dataset registration (api/datasets.c); and the fsync
 * of a file or directory by path that the uploads' renames need. */
#ifndef VAED_PATHS_H
#define VAED_PATHS_H

#include "vae/err.h"

/* 1 when path, taken relative to dir unless absolute, lies inside dir by text alone:
 * "." and ".." segments and repeated slashes are resolved lexically, no symlink is
 * followed and the file system is not asked. dir must be absolute and normalised. */
int path_lexically_inside(const char *path, const char *dir);

/* 1 when path equals dir or lies below it (both already absolute and normalised). */
int path_under(const char *path, const char *dir);

/* A path a client named must lie inside dir both as written and once every symlink is
 * resolved. A path outside is refused before the file system is asked anything, so a
 * client cannot learn which files exist elsewhere; only a path inside can get "no such
 * file". Returns 0 and, if real is not NULL, the resolved path in real (PATH_MAX
 * bytes); VAED_EPERM (403) outside, VAED_EINVAL (422) when it does not resolve; err
 * names field. */
int path_check_inside(const char *path, const char *dir, const char *field, char *real,
                      vaed_err *err);

/* fsync a file, or a directory (dir non-zero), by path: 0, or -1 with errno. */
int path_fsync(const char *path, int dir);

#endif
