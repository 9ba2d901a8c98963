/*
 * buf: a growable byte buffer with a read offset, used for socket input
 * (append at the end, consume from the front) and output queues.
 * Consumed space is reclaimed lazily, when it exceeds half the buffer, so
 * consuming is O(1) amortised.
 */
#ifndef AGENTD_BUF_H
#define AGENTD_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t *data;
	size_t off;  /* first unconsumed byte */
	size_t len;  /* end of valid data (bytes off..len-1 are pending) */
	size_t cap;
};

static inline size_t buf_pending(const struct buf *b) { return b->len - b->off; }
static inline uint8_t *buf_head(const struct buf *b) { return b->data + b->off; }

void buf_init(struct buf *b);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
/* Make room for n more bytes; returns a pointer to write them (then call
 * buf_commit).  Aborts on ENOMEM. */
uint8_t *buf_reserve(struct buf *b, size_t n);
void buf_commit(struct buf *b, size_t n);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_consume(struct buf *b, size_t n);

#endif
