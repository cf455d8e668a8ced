/* lib/log.h - leveled logging, one JSON object per line on stderr.
 * Every line carries ts, level, prog and msg; callers add fields (request_id, message_id, ...)
 * with log_fields(). Nothing logged may contain secrets: callers redact before logging. */
#ifndef POSTHORN_LOG_H
#define POSTHORN_LOG_H
#include <jansson.h>

typedef enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

void log_init(const char *prog, log_level min);
int  log_level_parse(const char *s, log_level *out);   /* 0 ok, -1 unknown name */
int  log_enabled(log_level lvl);

/* A plain line: {"ts","level","prog","msg"}. */
void log_msg(log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A line with extra fields: the object's members are added (and the object is consumed). */
void log_fields(log_level lvl, json_t *fields, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

/* Allocation failure and broken invariants end the process loudly. */
_Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
#endif
