/* rv_file: reading a whole (small) file, such as a job or config file, and
 * creating and removing directory trees. */
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

#endif
