/* api/server.h - the HTTP listener of posthorn-api (libmicrohttpd, a pool of epoll threads)
 * and the separate metrics listener. */
#ifndef POSTHORN_SERVER_H
#define POSTHORN_SERVER_H
#include <stdint.h>
#include <sys/socket.h>

/* Parses "host:port" / "[v6]:port" into a socket address; 0 ok. */
int  server_parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len);
/* Starts the API listener on cfg.http_addr; 0 ok, -1 with the reason logged. */
int  server_start(void);
/* Stops accepting, waits up to grace_ms for in-flight requests, then stops the listener. */
void server_shutdown(int64_t grace_ms);
/* Requests between their first byte and their completion (for draining and metrics). */
long server_in_flight(void);
#endif
