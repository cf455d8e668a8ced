/* db/redis.h - a Redis connection for wake-ups and shared rate limits. Redis only
 * accelerates: every caller has a path for "Redis unavailable" (NULL reply), and a failed
 * connection is not retried for a second so a dead Redis costs nothing per request. */
#ifndef POSTHORN_REDIS_H
#define POSTHORN_REDIS_H
#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

typedef struct redis_conn redis_conn;

/* A handle for url (redis://[:password@]host:port[/db]); connects lazily. Timeouts from
 * timeout_ms. Returns NULL for a malformed URL. */
redis_conn *redis_open(const char *url, int64_t timeout_ms);
void        redis_close(redis_conn *r);
/* This thread's handle for cfg.redis_url (closed at thread exit). */
redis_conn *redis_thread(void);
/* Runs one command; NULL when Redis is unavailable (the connection is dropped). The caller
 * frees the reply with freeReplyObject(). A reply of type REDIS_REPLY_ERROR is returned. */
redisReply *redis_cmd(redis_conn *r, int argc, const char **argv, const size_t *lens);
/* A blocking command (BLPOP): the socket timeout is widened by block_ms for this call. */
redisReply *redis_cmd_block(redis_conn *r, int64_t block_ms, int argc, const char **argv,
                            const size_t *lens);
/* The workers' wake-up lists: deliveries of any kind are due (claimers wait on it), and
 * transactional ones are (each worker's express lane waits on it too). */
#define REDIS_WAKE    "ph:wake"
#define REDIS_WAKE_TX "ph:wake:tx"
/* Deliveries are due: pushes min(tokens, 8) tokens on the wake-up list key (one wakes one
 * waiting worker thread: BLPOP) in one command and keeps the list at 64. Best effort. */
void        redis_wake(redis_conn *r, const char *key, long tokens);
/* Events were committed (or a webhook was made or changed): bumps the counter ph:events
 * that webhook dispatchers watch, so they look at once instead of at their next poll.
 * Best effort: nothing happens when Redis is unavailable. */
void        redis_note_events(redis_conn *r);
/* The ph:events counter into *seq (0 while unset); 0, or -1 when Redis is unavailable. */
int         redis_events_seq(redis_conn *r, long long *seq);
/* 1 when the last command succeeded (for /readyz and the redis_up metric). */
int         redis_up(redis_conn *r);
/* Parses a Redis URL; 0 ok. host needs 256 bytes, password 256. */
int redis_url_parse(const char *url, char *host, int *port, char *password, int *db);
#endif
