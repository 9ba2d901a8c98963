/*
 * frame: the wire unit shared by worker pipes and the control socket.
 *
 *   +----------------+---------------------------------------+
 *   | length (4, BE) | msgpack map, exactly `length` bytes    |
 *   +----------------+---------------------------------------+
 *
 * The reader is incremental (partial reads, several frames per read) and
 * bounded: a length of 0 or above the reader's maximum is an error the
 * caller treats as a fault of the peer.  After an error the reader stays
 * failed; the caller drops the connection.
 *
 * The write queue is bounded too: pushing past its limit fails with
 * ENOBUFS instead of growing without end, and the caller decides what that
 * means (a worker that does not read its pipe is killed; a slow agentctl
 * follower is disconnected).  Every frame is counted.
 */
#ifndef AGENTD_FRAME_H
#define AGENTD_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "common/buf.h"
#include "common/limits.h"

#define FRAME_HDR 4
#define FRAME_MAX_DEFAULT FRAME_MAX       /* 4 MiB (common/limits.h) */
#define WQUEUE_LIMIT_DEFAULT (16u << 20) /* 16 MiB */

struct frame_reader {
	struct buf in;
	size_t max;
	int failed;
	size_t last;       /* bytes of the frame handed out last, consumed next call */
	uint64_t frames;
};

void frame_reader_init(struct frame_reader *r, size_t max);
void frame_reader_free(struct frame_reader *r);

/* read(2) once from fd into the reader.  Returns bytes read (> 0), 0 at
 * EOF, -1 with errno (EAGAIN when nothing is there). */
ssize_t frame_reader_fill(struct frame_reader *r, int fd);

/* Feed bytes that arrived some other way (tests, fuzzing). */
void frame_reader_feed(struct frame_reader *r, const void *p, size_t n);

/*
 * Next complete frame: returns 1 and points *payload and *len at its msgpack
 * bytes (valid until the next call on r); 0 when more bytes are needed;
 * -1 when the stream is malformed, with a static reason in *err.
 */
int frame_reader_next(struct frame_reader *r, const uint8_t **payload,
    size_t *len, const char **err);

struct wqueue {
	struct buf out;
	size_t limit;
	uint64_t frames;     /* frames accepted */
	uint64_t refused;    /* frames refused because the queue was full */
};

void wqueue_init(struct wqueue *q, size_t limit);
void wqueue_free(struct wqueue *q);
static inline size_t wqueue_pending(const struct wqueue *q) { return buf_pending(&q->out); }

/* Queue one frame (header + payload).  0, or -1/ENOBUFS when full,
 * -1/EMSGSIZE when len exceeds FRAME_MAX_DEFAULT. */
int wqueue_push(struct wqueue *q, const void *payload, size_t len);

/* write(2) as much as the fd takes.  Returns 1 when the queue is empty
 * afterwards, 0 when bytes remain (wait for EPOLLOUT), -1 on error. */
int wqueue_flush(struct wqueue *q, int fd);

#endif
