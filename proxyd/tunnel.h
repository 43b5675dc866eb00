/*
 * tunnel.h - relaying bytes both ways between two connected sockets (CONNECT tunnels,
 * and later Upgrade: the one tunnel both use).
 *
 * Contract: tunnel_new() takes ownership of both non-blocking sockets. It first writes
 * the bytes of pre[d] (if any) to the other side, then moves everything read from side d
 * to side 1 - d, d = TUNNEL_UP (client to upstream) or TUNNEL_DOWN (upstream to client).
 * Bytes move with splice(2) through a pipe per direction, never through user space (with
 * a user-space copy through a 64 KiB buffer where splice is refused). Back-pressure: a
 * side is read only when what was read from it has been written on. An EOF from a side
 * is passed on as a shutdown(SHUT_WR) of the other once its data is out (half-close);
 * the tunnel ends when both directions ended, on an error or reset of either side, or
 * after idle_ms without a byte either way (0: never). Then done(arg, why) runs once;
 * the tunnel stays valid for tunnel_bytes() until tunnel_free(), which closes both
 * sockets. Memory per tunnel is a few hundred bytes plus two pipes in the kernel.
 */
#ifndef PROXYD_TUNNEL_H
#define PROXYD_TUNNEL_H

#include <stdint.h>

struct event_base;
struct evbuffer;
struct tunnel;

#define TUNNEL_UP   0 /* client to upstream */
#define TUNNEL_DOWN 1 /* upstream to client */

typedef void (*tunnel_done_cb)(void *arg, const char *why);

/*
 * fd[TUNNEL_UP] is the client socket, fd[TUNNEL_DOWN] the upstream socket (each is the
 * source of its direction). pre[d] may be NULL; its contents are moved out at once.
 * Returns NULL (sockets not taken) when out of memory.
 */
struct tunnel *tunnel_new(struct event_base *base, const int fd[2], struct evbuffer *const pre[2],
                          uint32_t idle_ms, tunnel_done_cb done, void *arg);
/*
 * The same over two bufferevents, for when a side speaks TLS (no splice): the tunnel takes
 * both and frees them in tunnel_free(). pre[d] is written first in direction d. Back-
 * pressure through watermarks (at most 256 KiB queued per direction); an EOF on either
 * side ends the tunnel once what it sent is written (TLS has no half-close to pass on).
 */
struct bufferevent;
struct tunnel *tunnel_new_bev(struct event_base *base, struct bufferevent *const bev[2],
                              struct evbuffer *const pre[2], uint32_t idle_ms, tunnel_done_cb done,
                              void *arg);
/* Bytes delivered in direction d so far. */
uint64_t tunnel_bytes(const struct tunnel *t, int d);
/* Stop relaying, close both sockets, free t; NULL is allowed. */
void tunnel_free(struct tunnel *t);

#endif /* PROXYD_TUNNEL_H */
