/*
 * libFuzzer target: the bytes a worker or a control client can send.
 * The input is fed to a frame reader in chunks whose sizes come from the
 * first byte (so partial reads are explored), every complete frame goes
 * through msg_unpack, and the whole input is also given to msg_unpack
 * directly.  Any crash, leak, UB or hang is a bug in agentd's trust
 * boundary.  `make fuzz` builds and runs it.
 */
#include <stddef.h>
#include <stdint.h>
#include "proto/frame.h"
#include "proto/msg.h"

static void
unpack(const uint8_t *p, size_t n)
{
	enum msg_type t;
	json_t *m = NULL;
	char err[256];
	if (msg_unpack(p, n, &t, &m, err, sizeof(err)) == 0)
		json_decref(m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct frame_reader r;
	const uint8_t *p;
	size_t len, chunk, off = 1;
	const char *err;

	if (size == 0)
		return 0;
	chunk = (size_t)(data[0] % 64) + 1;
	frame_reader_init(&r, 1u << 16);
	while (off < size) {
		size_t n = size - off < chunk ? size - off : chunk;
		frame_reader_feed(&r, data + off, n);
		off += n;
		int rc;
		while ((rc = frame_reader_next(&r, &p, &len, &err)) == 1)
			unpack(p, len);
		if (rc < 0)
			break;
	}
	frame_reader_free(&r);
	unpack(data, size);
	return 0;
}
