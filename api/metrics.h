/* api/metrics.h - Prometheus metrics of posthorn-api, served on their own listener
 * (POSTHORN_METRICS_ADDR): requests by route and status, a latency histogram per route,
 * requests in flight, queue depth, PostgreSQL and Redis state, build info. */
#ifndef POSTHORN_METRICS_H
#define POSTHORN_METRICS_H
#include <stdint.h>

void metrics_observe(int route_idx, int status, int64_t dur_us);
void metrics_set_redis_up(int up);
int  metrics_start(void);
void metrics_stop(void);
#endif
