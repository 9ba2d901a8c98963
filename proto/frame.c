/*
 * frame: length-prefixed frames over a byte stream.
 *
 * The reader keeps unparsed bytes in a struct buf and hands out frames in
 * place; the previous frame is consumed lazily at the start of the next
 * call, so a returned payload stays valid until then without a copy.  A
 * bad length poisons the reader for good: the stream has lost framing and
 * nothing after it can be trusted.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "proto/frame.h"

#define FILL_CHUNK 65536

void
frame_reader_init(struct frame_reader *r, size_t max)
{
	memset(r, 0, sizeof(*r));
	buf_init(&r->in);
	r->max = max;
}

void
frame_reader_free(struct frame_reader *r)
{
	buf_free(&r->in);
}


ssize_t
frame_reader_fill(struct frame_reader *r, int fd)
{
	uint8_t *p = buf_reserve(&r->in, FILL_CHUNK);
	ssize_t n;
	do
		n = read(fd, p, FILL_CHUNK);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		buf_commit(&r->in, (size_t)n);
	return n;
}

void
frame_reader_feed(struct frame_reader *r, const void *p, size_t n)
{
	buf_append(&r->in, p, n);
}

static uint32_t
be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int
frame_reader_next(struct frame_reader *r, const uint8_t **payload, size_t *len,
    const char **err)
{
	if (r->failed) {
		*err = "stream already failed";
		return -1;
	}
	/* The frame handed out last time is consumed now. */
	if (r->last) {
		buf_consume(&r->in, r->last);
		r->last = 0;
	}
	if (buf_pending(&r->in) < FRAME_HDR)
		return 0;
	uint32_t n = be32(buf_head(&r->in));
	if (n == 0 || n > r->max) {
		r->failed = 1;
		*err = n == 0 ? "empty frame" : "frame length exceeds the maximum";
		return -1;
	}
	if (buf_pending(&r->in) - FRAME_HDR < n)
		return 0;
	*payload = buf_head(&r->in) + FRAME_HDR;
	*len = n;
	r->last = FRAME_HDR + n;
	r->frames++;
	return 1;
}

void
wqueue_init(struct wqueue *q, size_t limit)
{
	memset(q, 0, sizeof(*q));
	buf_init(&q->out);
	q->limit = limit;
}

void
wqueue_free(struct wqueue *q)
{
	buf_free(&q->out);
}

int
wqueue_push(struct wqueue *q, const void *payload, size_t len)
{
	uint8_t hdr[FRAME_HDR];

	if (len == 0 || len > FRAME_MAX_DEFAULT) {
		errno = EMSGSIZE;
		return -1;
	}
	if (buf_pending(&q->out) + FRAME_HDR + len > q->limit) {
		q->refused++;
		errno = ENOBUFS;
		return -1;
	}
	hdr[0] = (uint8_t)(len >> 24);
	hdr[1] = (uint8_t)(len >> 16);
	hdr[2] = (uint8_t)(len >> 8);
	hdr[3] = (uint8_t)len;
	buf_append(&q->out, hdr, sizeof(hdr));
	buf_append(&q->out, payload, len);
	q->frames++;
	return 0;
}

int
wqueue_flush(struct wqueue *q, int fd)
{
	while (buf_pending(&q->out) > 0) {
		ssize_t w = send(fd, buf_head(&q->out), buf_pending(&q->out), MSG_NOSIGNAL);
		if (w < 0 && errno == ENOTSOCK)
			w = write(fd, buf_head(&q->out), buf_pending(&q->out));
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return -1;
		}
		buf_consume(&q->out, (size_t)w);
	}
	return 1;
}
