/* api/handlers.h - the route handlers, one file per resource (health.c, accounts.c,
 * suppressions.c). Each takes the prepared request and answers exactly once. */
#ifndef POSTHORN_HANDLERS_H
#define POSTHORN_HANDLERS_H
#include "api/http.h"

enum MHD_Result h_healthz(http_req *r);
enum MHD_Result h_readyz(http_req *r);
enum MHD_Result h_openapi(http_req *r);
enum MHD_Result h_account_get(http_req *r);
enum MHD_Result h_accounts_list(http_req *r);
enum MHD_Result h_suppressions_list(http_req *r);
enum MHD_Result h_suppressions_create(http_req *r);
enum MHD_Result h_suppressions_delete(http_req *r);
enum MHD_Result h_messages_send(http_req *r);
enum MHD_Result h_messages_batch(http_req *r);
enum MHD_Result h_messages_list(http_req *r);
enum MHD_Result h_message_get(http_req *r);
enum MHD_Result h_message_cancel(http_req *r);
enum MHD_Result h_events_list(http_req *r);
enum MHD_Result h_templates_list(http_req *r);
enum MHD_Result h_templates_create(http_req *r);
enum MHD_Result h_template_get(http_req *r);
enum MHD_Result h_template_update(http_req *r);
enum MHD_Result h_template_delete(http_req *r);
enum MHD_Result h_template_render(http_req *r);
enum MHD_Result h_domains_create(http_req *r);
enum MHD_Result h_domains_list(http_req *r);
enum MHD_Result h_domain_get(http_req *r);
enum MHD_Result h_domain_delete(http_req *r);
enum MHD_Result h_domain_verify(http_req *r);
enum MHD_Result h_destinations_list(http_req *r);
enum MHD_Result h_destination_pause(http_req *r);
enum MHD_Result h_destination_resume(http_req *r);
enum MHD_Result h_destination_retry(http_req *r);
enum MHD_Result h_webhooks_list(http_req *r);
enum MHD_Result h_webhooks_create(http_req *r);
enum MHD_Result h_webhook_get(http_req *r);
enum MHD_Result h_webhook_update(http_req *r);
enum MHD_Result h_webhook_delete(http_req *r);
enum MHD_Result h_webhook_test(http_req *r);
enum MHD_Result h_webhook_deliveries(http_req *r);
enum MHD_Result h_webhook_replay(http_req *r);
enum MHD_Result h_track_open(http_req *r);
enum MHD_Result h_track_click(http_req *r);
enum MHD_Result h_unsubscribe_page(http_req *r);
enum MHD_Result h_unsubscribe_post(http_req *r);
enum MHD_Result h_stats(http_req *r);
enum MHD_Result h_suppressions_import(http_req *r);
enum MHD_Result h_suppressions_export(http_req *r);
enum MHD_Result h_lists_create(http_req *r);
enum MHD_Result h_lists_list(http_req *r);
enum MHD_Result h_list_get(http_req *r);
enum MHD_Result h_list_delete(http_req *r);
enum MHD_Result h_contacts_upload(http_req *r);
enum MHD_Result h_contacts_list(http_req *r);
enum MHD_Result h_contact_get(http_req *r);
enum MHD_Result h_contact_delete(http_req *r);
enum MHD_Result h_campaigns_create(http_req *r);
enum MHD_Result h_campaigns_list(http_req *r);
enum MHD_Result h_campaign_get(http_req *r);
enum MHD_Result h_campaign_send(http_req *r);
enum MHD_Result h_campaign_pause(http_req *r);
enum MHD_Result h_campaign_resume(http_req *r);
enum MHD_Result h_campaign_cancel(http_req *r);

/* Shared by list handlers: parses ?limit= (1..1000, default 50) and ?cursor= (bound to
 * account_id). On a bad value answers 422 and returns -1 (*done holds the result). */
int  list_params(http_req *r, const char *account_id, int *limit, json_t **cursor,
                 enum MHD_Result *done);
/* Checks the custom `headers` object of a send request (names, values, count), appending
 * problems to errors ({"field","message"}) and [name, value] pairs to out; shared by
 * POST /v1/messages and POST /v1/campaigns. */
void message_headers_check(json_t *errors, json_t *h, json_t *out);
/* Answers 503 with Retry-After for a database that is down, 500 otherwise. */
enum MHD_Result db_failure(http_req *r, int db_status_value);
#endif
