#include "worker/bqueue.h"
#include "lib/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

/* Urgent items (bqueue_push_urgent) may exceed cap by this many. */
#define URGENT_SLOTS 8

struct bqueue {
    pthread_mutex_t lock;
    pthread_cond_t  not_empty;
    pthread_cond_t  not_full;
    void          **items;          /* a ring of size slots */
    size_t          cap, size, head, len;
    int             closed;
};

bqueue *bqueue_new(size_t cap)
{
    if (cap == 0)
        die("bqueue_new: zero capacity");
    bqueue *q = xcalloc(1, sizeof *q);
    q->size = cap + URGENT_SLOTS;
    q->items = xcalloc(q->size, sizeof *q->items);
    q->cap = cap;
    pthread_mutex_init(&q->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->not_empty, &ca);
    pthread_cond_init(&q->not_full, &ca);
    pthread_condattr_destroy(&ca);
    return q;
}

void bqueue_free(bqueue *q)
{
    if (!q)
        return;
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->not_empty);
    pthread_cond_destroy(&q->not_full);
    free(q->items);
    free(q);
}

void bqueue_push(bqueue *q, void *item)
{
    pthread_mutex_lock(&q->lock);
    while (q->len >= q->cap && !q->closed)
        pthread_cond_wait(&q->not_full, &q->lock);
    if (q->closed)
        die("bqueue_push: queue is closed");
    q->items[(q->head + q->len) % q->size] = item;
    q->len++;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->lock);
}

void bqueue_push_urgent(bqueue *q, void *item)
{
    pthread_mutex_lock(&q->lock);
    while (q->len >= q->size && !q->closed)
        pthread_cond_wait(&q->not_full, &q->lock);
    if (q->closed)
        die("bqueue_push_urgent: queue is closed");
    q->head = (q->head + q->size - 1) % q->size;
    q->items[q->head] = item;
    q->len++;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->lock);
}

static void *take(bqueue *q)
{
    void *item = q->items[q->head];
    q->head = (q->head + 1) % q->size;
    q->len--;
    pthread_cond_broadcast(&q->not_full);
    return item;
}

void *bqueue_pop(bqueue *q)
{
    pthread_mutex_lock(&q->lock);
    while (q->len == 0 && !q->closed)
        pthread_cond_wait(&q->not_empty, &q->lock);
    void *item = q->len ? take(q) : NULL;
    pthread_mutex_unlock(&q->lock);
    return item;
}

void *bqueue_try_pop(bqueue *q)
{
    pthread_mutex_lock(&q->lock);
    void *item = q->len ? take(q) : NULL;
    pthread_mutex_unlock(&q->lock);
    return item;
}

int bqueue_wait_room(bqueue *q, int64_t timeout_ms)
{
    struct timespec end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    end.tv_sec += timeout_ms / 1000;
    end.tv_nsec += (timeout_ms % 1000) * 1000000;
    if (end.tv_nsec >= 1000000000) {
        end.tv_sec++;
        end.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&q->lock);
    int rc = 0;
    while (q->len >= q->cap && !q->closed && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&q->not_full, &q->lock, &end);
    int room = q->len < q->cap;
    pthread_mutex_unlock(&q->lock);
    return room;
}

void bqueue_close(bqueue *q)
{
    pthread_mutex_lock(&q->lock);
    q->closed = 1;
    pthread_cond_broadcast(&q->not_empty);
    pthread_cond_broadcast(&q->not_full);
    pthread_mutex_unlock(&q->lock);
}

size_t bqueue_len(bqueue *q)
{
    pthread_mutex_lock(&q->lock);
    size_t n = q->len;
    pthread_mutex_unlock(&q->lock);
    return n;
}
