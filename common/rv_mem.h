/* rv_mem: allocation wrappers. Small allocations abort on out-of-memory
 * (there is nothing sensible to do); allocations whose size comes from
 * input must use plain malloc and fail gracefully instead. */
#ifndef RV_MEM_H
#define RV_MEM_H

#include <stdarg.h>
#include <stddef.h>

void *rv_xmalloc(size_t n);
void *rv_xcalloc(size_t n, size_t size);
void *rv_xrealloc(void *p, size_t n);
char *rv_xstrdup(const char *s);
char *rv_xstrndup(const char *s, size_t n);
char *rv_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *rv_xvasprintf(const char *fmt, va_list ap);

/* Grows *buf (of *cap elements of size elem) to hold at least need elements,
 * doubling. */
void rv_xgrow(void **buf, size_t *cap, size_t need, size_t elem);

#endif
