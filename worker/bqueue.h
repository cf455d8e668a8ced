/* worker/bqueue.h - a bounded blocking queue of pointers joining two pipeline stages.
 * A full queue blocks its producer, so a slow stage pushes back on the one before it and
 * memory stays flat however deep the backlog is. Closing the queue lets consumers drain
 * what is left and then see NULL. Urgent items go to the front. */
#ifndef POSTHORN_BQUEUE_H
#define POSTHORN_BQUEUE_H
#include <stddef.h>
#include <stdint.h>

typedef struct bqueue bqueue;

bqueue *bqueue_new(size_t cap);
void    bqueue_free(bqueue *q);
/* Appends item, waiting while the queue is full. Pushing to a closed queue is a bug. */
void    bqueue_push(bqueue *q, void *item);
/* Puts item at the front (taken next), past cap if need be (up to a few items more): for
 * transactional work that must not wait behind a full queue of bulk work. */
void    bqueue_push_urgent(bqueue *q, void *item);
/* The oldest item, waiting while the queue is empty; NULL once it is closed and empty. */
void   *bqueue_pop(bqueue *q);
/* The oldest item or NULL at once. */
void   *bqueue_try_pop(bqueue *q);
/* Waits up to timeout_ms for a free slot: 1 when there is one, 0 otherwise. */
int     bqueue_wait_room(bqueue *q, int64_t timeout_ms);
void    bqueue_close(bqueue *q);
size_t  bqueue_len(bqueue *q);
#endif
