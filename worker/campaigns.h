/* worker/campaigns.h - the campaign expander of posthorn-worker, and the per-recipient
 * data of campaign deliveries for the render stage.
 * The expander thread turns each sending campaign into deliveries, a chunk of contacts per
 * statement (db/stmts.c ST_CAMP_EXPAND): the chunk's deliveries, their events and the
 * campaign's keyset cursor commit together, under a FOR UPDATE SKIP LOCKED lock of the
 * campaign row, so any number of workers expand a campaign between them, each contact
 * exactly once, and a worker killed half way leaves a cursor that is exactly right.
 * rate_per_minute is kept by spacing next_attempt_at from the campaign row's next_slot_at
 * (shared by every worker through that row, so no Redis bucket is needed and a Redis
 * outage changes nothing); only a couple of minutes ahead are expanded at a time. It also
 * starts scheduled campaigns whose send_at has come and marks campaigns sent once
 * expanded with every delivery final (from campaign_counters, never scanning). */
#ifndef POSTHORN_WORKER_CAMPAIGNS_H
#define POSTHORN_WORKER_CAMPAIGNS_H
#include "db/db.h"
#include "worker/batch.h"

#include <jansson.h>

typedef struct campaigns campaigns;

/* Starts the expander thread; NULL when it cannot be started. */
campaigns *campaigns_start(void);
/* Stops and joins it (a chunk in progress commits or rolls back as a whole) and frees c. */
void       campaigns_stop(campaigns *c);

/* The per-recipient data of b's jobs (deliveries.data; campaign contacts): *out becomes an
 * array of b->njobs entries (NULL: the job has none), or NULL when no job has any. Only
 * broadcast jobs are looked up, so a transactional batch costs no query. Free with
 * campaigns_job_data_free. */
db_status campaigns_job_data(db_conn *db, const wbatch *b, json_t ***out);
void      campaigns_job_data_free(json_t **data, size_t n);
#endif
