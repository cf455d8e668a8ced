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
    {"DELETE", "/v1/suppressions/{email}",  SCOPE_ADMIN,    BODY_NONE, 0,     h_suppressions_delete, "suppressions.delete"},
};
const int route_count = (int)(sizeof routes / sizeof routes[0]);
