/* lib/startup.h - what every Posthorn program does first: read the settings table (a bad
 * value or missing secret ends the process with exit code 2 and a message naming the
 * variable), set up logging, and block the signals the main thread waits for. */
#ifndef POSTHORN_STARTUP_H
#define POSTHORN_STARTUP_H
#include <signal.h>

void startup(const char *prog, int need_secret);
/* Blocks SIGTERM, SIGINT and SIGHUP in the calling thread and every thread it starts later,
 * so the main thread can sigwait() for them; fills set. */
void startup_block_signals(sigset_t *set);
#endif
