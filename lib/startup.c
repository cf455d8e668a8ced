#include "lib/startup.h"
#include "lib/config.h"
#include "lib/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

void startup(const char *prog, int need_secret)
{
    char err[512];
    log_init(prog, LOG_INFO);
    if (config_load(need_secret, err, sizeof err) != 0) {
        fprintf(stderr, "%s: configuration error: %s\n", prog, err);
        exit(2);
    }
    log_init(prog, (log_level)cfg.log_level);
    signal(SIGPIPE, SIG_IGN);
}

void startup_block_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, set, NULL);
}
