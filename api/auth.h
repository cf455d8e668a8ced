/* api/auth.h - Bearer API-key authentication and scope checks for one request.
 * Fills r->auth, or answers 401 (no/malformed/unknown/revoked key), 403 (missing scope;
 * account keys on operator routes and operator keys on account routes) or 503 (database
 * unreachable). */
#ifndef POSTHORN_AUTH_H
#define POSTHORN_AUTH_H
#include "api/http.h"

enum MHD_Result auth_request(http_req *r, scope need);
/* Writes the scope names of bits as a JSON array. */
json_t *auth_scopes_json(unsigned bits);
#endif
