/*
 * libFuzzer target: the bytes a worker or a control client can send.
 *
 * The first input byte picks a chunk size (1..64), and the rest is fed to
 * a frame reader in chunks of that size, so partial headers and bodies
 * are explored the way short reads produce them.  Every complete frame
 * goes through msg_unpack; the bytes after the first are also given to
 * msg_unpack whole, so the decoder is fuzzed without needing a valid
 * frame header.  Whatever decodes must survive a round trip: packed again
 * and decoded again, it must come back the same type and an equal value
 * (the packer and the decoder agree on every value the decoder admits).
 * Any crash, leak, UB, huge allocation or abort is a bug at agentd's
 * trust boundary.  `make fuzz` builds and runs it.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include "proto/frame.h"
#include "proto/msg.h"

#define FUZZ_FRAME_MAX (1u << 16)

static void
unpack(const uint8_t *p, size_t n)
{
	enum msg_type t, t2;
	json_t *m = NULL, *m2 = NULL;
	char err[256], *body;
	size_t len;

	if (msg_unpack(p, n, &t, &m, err, sizeof(err)) < 0) {
		if (m != NULL || err[0] == '\0')
			abort();	/* failure must leave no object and say why */
		return;
	}
	if (msg_pack_body(t, m, &body, &len) < 0)
		abort();
	if (msg_unpack((const uint8_t *)body, len, &t2, &m2, err, sizeof(err)) < 0 ||
	    t2 != t || !json_equal(m, m2))
		abort();
	free(body);
	json_decref(m2);
	json_decref(m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct frame_reader r;
	const uint8_t *p;
	const char *err;
	size_t len, chunk, off = 1;
	int rc = 0;

	if (size == 0)
		return 0;
	chunk = (size_t)(data[0] % 64) + 1;
	frame_reader_init(&r, FUZZ_FRAME_MAX);
	while (off < size && rc >= 0) {
		size_t n = size - off < chunk ? size - off : chunk;
		frame_reader_feed(&r, data + off, n);
		off += n;
		while ((rc = frame_reader_next(&r, &p, &len, &err)) == 1) {
			if (len == 0 || len > FUZZ_FRAME_MAX)
				abort();
			unpack(p, len);
		}
	}
	if (rc < 0 && frame_reader_next(&r, &p, &len, &err) != -1)
		abort();	/* a failed reader stays failed */
	frame_reader_free(&r);
	unpack(data + 1, size - 1);
	return 0;
}
