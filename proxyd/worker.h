/*
 * worker.h - worker threads: one event_base each, with its own SO_REUSEPORT listening
 * sockets, its sessions and its upstream connection pool.
 *
 * Contract: called from the main thread only, after evthread_use_pthreads(). workers_start() binds
 * every listen address once per worker (so a bind error is reported before anything runs) and
 * starts the threads. workers_reload() binds what the new generation adds, and on success hands the
 * generation to every worker, which keeps the sockets of addresses that stay, closes those
 * that go, and gives new connections the new generation; sessions in flight keep theirs.
 * workers_stop() stops accepting, lets requests in flight finish for up to grace_ms, then
 * closes what is left and joins the threads.
 */
#ifndef PROXYD_WORKER_H
#define PROXYD_WORKER_H

#include <stdint.h>

#include "cfg.h"

struct worker;

/* Returns 0, or -1 with *err set (malloc'd "file:line: reason"). */
int workers_start(struct cfg *cfg, int nworkers, char **err);
int workers_reload(struct cfg *cfg, char **err);
void workers_stop(uint32_t grace_ms);

#endif /* PROXYD_WORKER_H */
