/* rv_file: reading a whole (small) file, such as a job or config file,
 * creating and removing directory trees, and linking or copying a file. */
#ifndef RV_FILE_H
#define RV_FILE_H

#include <stddef.h>

#include "rv_err.h"

/* Reads path into a new NUL-terminated buffer (*text, freed with free(),
 * *len bytes without the NUL). Files over max bytes are refused. */
rv_err *rv_file_read(const char *path, size_t max, char **text, size_t *len);
/* mkdir -p (mode 0755). */
rv_err *rv_file_mkdirs(const char *path);
/* rm -rf: removes path and everything below it; a missing path is fine. */
rv_err *rv_file_remove_tree(const char *path);
/* Makes dst the same file as src: a hard link, or a copy where the file
 * system cannot link (another device, no permission). dst must not exist. */
rv_err *rv_file_link_or_copy(const char *src, const char *dst);

#endif
