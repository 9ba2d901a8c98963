/*
 * frame: length-prefixed frames over a byte stream.
 *
 * The reader keeps unparsed bytes in a struct buf and hands out frames in
 * place; the previous frame is consumed lazily at the start of the next
 * call, so a returned payload stays valid until then without a copy.  A
 * bad length poisons the reader for good: the stream has lost framing and
 * nothing after it can be trusted.  The length is checked as soon as the
 * header is complete, before any of the body is buffered, so a peer cannot
 * make us hold more than max + one read's worth of bytes.
 *
 * The write queue never raises SIGPIPE, whatever the process's signal
 * disposition: sockets get MSG_NOSIGNAL; for pipes (ENOTSOCK) SIGPIPE is
 * blocked around the write and a SIGPIPE the write raised is taken back
 * with sigtimedwait before the mask is restored.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
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

static void
put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

int
frame_reader_next(struct frame_reader *r, const uint8_t **payload, size_t *len,
    const char **err)
{
	/* Static per thread: the caller logs it before reading another frame. */
	static __thread char reason[96];
	uint32_t n;

	if (r->failed) {
		*err = "frame stream already failed";
		return -1;
	}
	if (r->last) {	/* the frame handed out last time is consumed now */
		buf_consume(&r->in, r->last);
		r->last = 0;
	}
	if (buf_pending(&r->in) < FRAME_HDR)
		return 0;
	n = be32(buf_head(&r->in));
	if (n == 0 || n > r->max) {
		r->failed = 1;
		if (n == 0)
			snprintf(reason, sizeof(reason), "empty frame");
		else
			snprintf(reason, sizeof(reason),
			    "frame length %u exceeds maximum %zu", n, r->max);
		*err = reason;
		return -1;
	}
	if (buf_pending(&r->in) - FRAME_HDR < n)
		return 0;
	*payload = buf_head(&r->in) + FRAME_HDR;
	*len = n;
	r->last = FRAME_HDR + (size_t)n;
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

/* Zero-length frames are refused too: every reader rejects them. */
int
wqueue_push(struct wqueue *q, const void *payload, size_t len)
{
	uint8_t *p;

	if (len == 0 || len > FRAME_MAX_DEFAULT) {
		errno = EMSGSIZE;
		return -1;
	}
	if (buf_pending(&q->out) + FRAME_HDR + len > q->limit) {
		q->refused++;
		errno = ENOBUFS;
		return -1;
	}
	p = buf_reserve(&q->out, FRAME_HDR + len);
	put_be32(p, (uint32_t)len);
	memcpy(p + FRAME_HDR, payload, len);
	buf_commit(&q->out, FRAME_HDR + len);
	q->frames++;
	return 0;
}

/* write(2) to a non-socket without letting a reader-less pipe kill us. */
static ssize_t
write_nosigpipe(int fd, const void *p, size_t n)
{
	sigset_t pipe_set, old, pending;
	struct timespec zero = { 0, 0 };
	int was_pending, saved;
	ssize_t w;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	sigpending(&pending);
	was_pending = sigismember(&pending, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	w = write(fd, p, n);
	saved = errno;
	if (w < 0 && saved == EPIPE && !was_pending)
		while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
			;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = saved;
	return w;
}

int
wqueue_flush(struct wqueue *q, int fd)
{
	while (buf_pending(&q->out) > 0) {
		const uint8_t *p = buf_head(&q->out);
		size_t n = buf_pending(&q->out);
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == ENOTSOCK)
			w = write_nosigpipe(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -1;
		}
		if (w == 0)
			return 0;
		buf_consume(&q->out, (size_t)w);
	}
	return 1;
}
