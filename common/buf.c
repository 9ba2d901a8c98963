/*
 * buf: growable byte buffer with a consume offset.  Space at the front is
 * reclaimed only when it would otherwise force a reallocation, so a reader
 * that consumes frame by frame moves memory rarely.
 */
#include <stdlib.h>
#include <string.h>
#include "common/buf.h"
#include "common/util.h"

void
buf_init(struct buf *b)
{
	memset(b, 0, sizeof(*b));
}

void
buf_free(struct buf *b)
{
	free(b->data);
	buf_init(b);
}

void
buf_reset(struct buf *b)
{
	b->off = b->len = 0;
}

uint8_t *
buf_reserve(struct buf *b, size_t n)
{
	if (b->cap - b->len >= n)
		return b->data + b->len;
	if (b->off > 0) {	/* reclaim consumed space first */
		memmove(b->data, b->data + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
		if (b->cap - b->len >= n)
			return b->data + b->len;
	}
	size_t cap = b->cap ? b->cap : 256;
	while (cap - b->len < n) {
		if (cap > SIZE_MAX / 2)
			abort();
		cap *= 2;
	}
	b->data = xrealloc(b->data, cap);
	b->cap = cap;
	return b->data + b->len;
}

void
buf_commit(struct buf *b, size_t n)
{
	b->len += n;
}

void
buf_append(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	memcpy(buf_reserve(b, n), p, n);
	b->len += n;
}

void
buf_consume(struct buf *b, size_t n)
{
	b->off += n;
	if (b->off >= b->len)
		b->off = b->len = 0;
}
