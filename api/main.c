/* posthorn-api: the HTTP API. Stateless apart from PostgreSQL and Redis; run as many as
 * needed behind a load balancer. SIGTERM/SIGINT: stop accepting, finish in-flight requests
 * (up to POSTHORN_SHUTDOWN_GRACE), exit 0. */
#include "api/cursor.h"
#include "api/http.h"
#include "api/metrics.h"
#include "api/server.h"
#include "api/writer.h"
#include "lib/config.h"
#include "lib/log.h"
#include "lib/secretbox.h"
#include "lib/token.h"
#include "lib/startup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_routes(void)
{
    json_t *a = json_array();
    for (int i = 0; i < route_count; i++) {
        const route *rt = &routes[i];
        json_int_t max = rt->body == BODY_NONE ? 0 : rt->body_max ? rt->body_max : cfg.body_max;
        json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:I}", "method", rt->method, "path",
                                           rt->path, "scope", apikey_scope_name(rt->scope), "body_max", max));
    }
    char *s = json_dumps(a, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    puts(s);
    free(s);
    json_decref(a);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--routes") == 0) {
        startup("posthorn-api", 0);
        print_routes();
        config_free();
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "usage: posthorn-api [--routes]\n(all settings come from the environment: "
                        "see `posthorn settings`)\n");
        return strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    startup("posthorn-api", 1);
    sigset_t sigs;
    startup_block_signals(&sigs);
    cursor_init(cfg.secret, cfg.secret_previous);
    secretbox_init(cfg.secret, cfg.secret_previous);
    token_init(cfg.secret, cfg.secret_previous);

    writer_start();
    if (metrics_start() != 0 || server_start() != 0) {
        metrics_stop();
        writer_stop();
        return 1;
    }
    log_fields(LOG_INFO, json_pack("{s:s}", "version", POSTHORN_VERSION), "posthorn-api started");

    int sig = 0;
    for (;;) {
        sigwait(&sigs, &sig);
        if (sig != SIGHUP)
            break;
        log_info("SIGHUP: nothing to reload in the API");
    }
    log_info("signal %d: draining", sig);
    server_shutdown(cfg.shutdown_grace_ms);
    writer_stop();
    metrics_stop();
    log_info("posthorn-api stopped");
    config_free();
    return 0;
}
