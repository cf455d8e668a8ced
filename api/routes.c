/* api/routes.c - the route table: method, path, scope, body kind and cap, handler. */
#include "api/handlers.h"
#include "api/http.h"

const route routes[] = {
    {"GET",    "/healthz",                  SCOPE_PUBLIC,   BODY_NONE, 0,     h_healthz,             "healthz"},
    {"GET",    "/readyz",                   SCOPE_PUBLIC,   BODY_NONE, 0,     h_readyz,              "readyz"},
    {"GET",    "/openapi.yaml",             SCOPE_PUBLIC,   BODY_NONE, 0,     h_openapi,             "openapi"},
    {"GET",    "/v1/account",               SCOPE_READ,     BODY_NONE, 0,     h_account_get,         "account.get"},
    {"GET",    "/v1/accounts",              SCOPE_OPERATOR, BODY_NONE, 0,     h_accounts_list,       "accounts.list"},
    {"GET",    "/v1/suppressions",          SCOPE_READ,     BODY_NONE, 0,     h_suppressions_list,   "suppressions.list"},
    {"POST",   "/v1/suppressions",          SCOPE_ADMIN,    BODY_JSON, 65536, h_suppressions_create, "suppressions.create"},
    {"POST",   "/v1/messages",              SCOPE_SEND,     BODY_JSON, 40L << 20, h_messages_send,  "messages.send"},
    {"POST",   "/v1/messages/batch",        SCOPE_SEND,     BODY_JSON, 40L << 20, h_messages_batch, "messages.batch"},
    {"GET",    "/v1/messages",              SCOPE_READ,     BODY_NONE, 0,     h_messages_list,       "messages.list"},
    {"GET",    "/v1/messages/{id}",         SCOPE_READ,     BODY_NONE, 0,     h_message_get,         "messages.get"},
    {"DELETE", "/v1/messages/{id}",         SCOPE_SEND,     BODY_NONE, 0,     h_message_cancel,      "messages.cancel"},
    {"GET",    "/v1/events",                SCOPE_READ,     BODY_NONE, 0,     h_events_list,         "events.list"},
    {"DELETE", "/v1/suppressions/{email}",  SCOPE_ADMIN,    BODY_NONE, 0,     h_suppressions_delete, "suppressions.delete"},
    {"GET",    "/v1/templates",             SCOPE_READ,     BODY_NONE, 0,     h_templates_list,      "templates.list"},
    {"POST",   "/v1/templates",             SCOPE_ADMIN,    BODY_JSON, 2L << 20, h_templates_create, "templates.create"},
    {"GET",    "/v1/templates/{id}",        SCOPE_READ,     BODY_NONE, 0,     h_template_get,        "templates.get"},
    {"PUT",    "/v1/templates/{id}",        SCOPE_ADMIN,    BODY_JSON, 2L << 20, h_template_update, "templates.update"},
    {"DELETE", "/v1/templates/{id}",        SCOPE_ADMIN,    BODY_NONE, 0,     h_template_delete,     "templates.delete"},
    {"POST",   "/v1/templates/{id}/render", SCOPE_READ,     BODY_JSON, 2L << 20, h_template_render, "templates.render"},
    {"GET",    "/v1/domains",               SCOPE_READ,     BODY_NONE, 0,     h_domains_list,        "domains.list"},
    {"POST",   "/v1/domains",               SCOPE_ADMIN,    BODY_JSON, 65536, h_domains_create,      "domains.create"},
    {"GET",    "/v1/domains/{id}",          SCOPE_READ,     BODY_NONE, 0,     h_domain_get,          "domains.get"},
    {"DELETE", "/v1/domains/{id}",          SCOPE_ADMIN,    BODY_NONE, 0,     h_domain_delete,       "domains.delete"},
    {"POST",   "/v1/domains/{id}/verify",   SCOPE_ADMIN,    BODY_NONE, 0,     h_domain_verify,       "domains.verify"},
    {"GET",    "/v1/destinations",          SCOPE_OPERATOR, BODY_NONE, 0,     h_destinations_list,   "destinations.list"},
    {"POST",   "/v1/destinations/{name}/pause",  SCOPE_OPERATOR, BODY_NONE, 0, h_destination_pause,  "destinations.pause"},
    {"POST",   "/v1/destinations/{name}/resume", SCOPE_OPERATOR, BODY_NONE, 0, h_destination_resume, "destinations.resume"},
    {"POST",   "/v1/destinations/{name}/retry",  SCOPE_OPERATOR, BODY_NONE, 0, h_destination_retry,  "destinations.retry"},
    /* -- webhooks (add below) -- */
    /* -- tracking and unsubscribe (add below) -- */
    /* -- stats, suppression CSV (add below) -- */
    /* -- lists, contacts, campaigns (add below) -- */
};
const int route_count = (int)(sizeof routes / sizeof routes[0]);
