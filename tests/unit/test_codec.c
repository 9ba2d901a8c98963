/*
 * Unit tests: the frame codec and the message catalogue (proto/), and the
 * msgpack<->JSON bridge (common/jsonmp.c).  Every malformed input class a
 * peer can send is here: truncation, bad lengths, garbage, wrong types,
 * unknown types, trailing bytes, deep nesting, non-string keys, big ints,
 * bin/ext objects, invalid UTF-8.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "common/buf.h"
#include "common/jsonmp.h"
#include "proto/frame.h"
#include "proto/msg.h"

static json_t *
roundtrip(enum msg_type t, json_t *fields)
{
	struct buf b;
	struct frame_reader r;
	const uint8_t *p;
	size_t len;
	const char *ferr;
	char err[256];
	enum msg_type got;
	json_t *out = NULL;

	buf_init(&b);
	ck_assert_int_eq(msg_pack(t, fields, &b), 0);
	frame_reader_init(&r, FRAME_MAX_DEFAULT);
	frame_reader_feed(&r, buf_head(&b), buf_pending(&b));
	ck_assert_int_eq(frame_reader_next(&r, &p, &len, &ferr), 1);
	ck_assert_msg(msg_unpack(p, len, &got, &out, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(got, t);
	ck_assert_int_eq(frame_reader_next(&r, &p, &len, &ferr), 0);
	frame_reader_free(&r);
	buf_free(&b);
	return out;
}

START_TEST(every_message_round_trips)
{
	static const char *samples[MSG__COUNT] = {
		[MSG_CONFIG] = "{\"name\":\"a\",\"agent\":{\"x\":[1,2.5,null,true]},\"secrets\":{},\"state_dir\":\"/s\"}",
		[MSG_READY] = "{\"tools\":[\"system_info\"],\"pid\":42}",
		[MSG_RUN] = "{\"run_id\":7,\"attempt\":1,\"session_id\":\"s\",\"run_count\":7,\"kwargs\":{}}",
		[MSG_RUN_ACK] = "{\"run_id\":7}",
		[MSG_CANCEL] = "{\"run_id\":7,\"reason\":\"timeout\"}",
		[MSG_EVENT] = "{\"type\":\"tool_call_result\",\"payload\":{\"k\":\"v\"},\"run_id\":1}",
		[MSG_MEM_STORE] = "{\"memory_type\":\"episodic\",\"role\":\"assistant\",\"content\":\"hé\",\"metadata\":{}}",
		[MSG_MEM_QUERY] = "{\"req_id\":1,\"memory_type\":\"episodic\",\"limit\":10}",
		[MSG_MEM_REPLY] = "{\"req_id\":1,\"items\":[{\"role\":\"user\"}]}",
		[MSG_RESULT] = "{\"run_id\":1,\"ok\":false,\"error\":\"x\",\"retryable\":true,\"retry_after_ms\":1500,\"result\":null}",
		[MSG_LOG] = "{\"level\":\"info\",\"msg\":\"hello\"}",
		[MSG_SHUTDOWN] = "{}",
		[MSG_REQUEST] = "{\"cmd\":\"status\",\"agent\":\"a\",\"args\":{\"follow\":true}}",
		[MSG_RESPONSE] = "{\"ok\":true,\"data\":[1,\"two\",{\"three\":3}]}",
		[MSG_RECORD] = "{\"event\":{\"id\":1}}",
	};
	for (int t = 0; t < MSG__COUNT; t++) {
		json_t *in = json_loads(samples[t], 0, NULL);
		ck_assert_ptr_nonnull(in);
		json_t *out = roundtrip(t, in);
		ck_assert_msg(json_equal(in, out), "%s changed in transit", msg_type_name(t));
		ck_assert_int_eq(msg_type_lookup(msg_type_name(t)), t);
		json_decref(in);
		json_decref(out);
	}
	ck_assert_int_eq(msg_type_lookup("nope"), -1);
}
END_TEST

/* Split one stream of three frames at every byte boundary. */
START_TEST(frames_split_anywhere)
{
	struct buf b;
	buf_init(&b);
	json_t *f = json_pack("{s:I}", "run_id", (json_int_t)1);
	for (int i = 0; i < 3; i++)
		msg_pack(MSG_RUN_ACK, f, &b);
	json_decref(f);
	size_t total = buf_pending(&b);
	for (size_t cut = 0; cut <= total; cut++) {
		struct frame_reader r;
		const uint8_t *p;
		size_t len;
		const char *err;
		int got = 0;
		frame_reader_init(&r, 1024);
		frame_reader_feed(&r, buf_head(&b), cut);
		while (frame_reader_next(&r, &p, &len, &err) == 1)
			got++;
		frame_reader_feed(&r, buf_head(&b) + cut, total - cut);
		while (frame_reader_next(&r, &p, &len, &err) == 1)
			got++;
		ck_assert_int_eq(got, 3);
		frame_reader_free(&r);
	}
	buf_free(&b);
}
END_TEST

START_TEST(bad_lengths_poison_the_stream)
{
	struct frame_reader r;
	const uint8_t *p;
	size_t len;
	const char *err;
	const uint8_t zero[4] = { 0, 0, 0, 0 }, huge[4] = { 0x7f, 0xff, 0xff, 0xff };
	const uint8_t partial[2] = { 0, 0 };

	frame_reader_init(&r, 1024);
	frame_reader_feed(&r, partial, 2);
	ck_assert_int_eq(frame_reader_next(&r, &p, &len, &err), 0);	/* needs more */
	frame_reader_free(&r);

	frame_reader_init(&r, 1024);
	frame_reader_feed(&r, zero, 4);
	ck_assert_int_eq(frame_reader_next(&r, &p, &len, &err), -1);
	ck_assert_ptr_nonnull(strstr(err, "empty"));
	frame_reader_free(&r);

	frame_reader_init(&r, 1024);
	frame_reader_feed(&r, huge, 4);
	ck_assert_int_eq(frame_reader_next(&r, &p, &len, &err), -1);
	ck_assert_ptr_nonnull(strstr(err, "exceeds"));
	/* Stays failed even when good bytes follow. */
	frame_reader_feed(&r, zero, 4);
	ck_assert_int_eq(frame_reader_next(&r, &p, &len, &err), -1);
	frame_reader_free(&r);
}
END_TEST

static void
expect_reject(const char *hex_or_json, bool is_json, const char *reason)
{
	char err[256] = "";
	enum msg_type t;
	json_t *out = NULL;
	uint8_t bytes[512];
	size_t n = 0;

	if (is_json) {
		/* JSON -> msgpack through our own packer: a well-formed map. */
		json_t *j = json_loads(hex_or_json, 0, NULL);
		ck_assert_ptr_nonnull(j);
		msgpack_sbuffer sb;
		msgpack_packer pk;
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		jsonmp_pack(&pk, j);
		memcpy(bytes, sb.data, sb.size);
		n = sb.size;
		msgpack_sbuffer_destroy(&sb);
		json_decref(j);
	} else {
		for (const char *h = hex_or_json; h[0] && h[1]; h += 2)
			sscanf(h, "%2hhx", &bytes[n++]);
	}
	ck_assert_int_eq(msg_unpack(bytes, n, &t, &out, err, sizeof(err)), -1);
	ck_assert_ptr_null(out);
	ck_assert_msg(strstr(err, reason) != NULL, "expected \"%s\", got \"%s\"", reason, err);
}

START_TEST(malformed_messages)
{
	expect_reject("{\"t\":\"run\",\"run_id\":\"7\",\"attempt\":1,\"session_id\":\"s\",\"run_count\":1,\"kwargs\":{}}",
	    true, "run: field run_id must be int");
	expect_reject("{\"t\":\"run\",\"run_id\":7,\"attempt\":1,\"run_count\":1,\"kwargs\":{}}",
	    true, "run: missing field session_id");
	expect_reject("{\"t\":\"result\",\"run_id\":1,\"ok\":\"yes\"}", true, "field ok must be bool");
	expect_reject("{\"t\":\"ready\",\"tools\":{}}", true, "field tools must be arr");
	expect_reject("{\"t\":\"config\",\"name\":\"a\",\"agent\":[]}", true, "field agent must be obj");
	expect_reject("{\"t\":\"frobnicate\"}", true, "unknown message type");
	expect_reject("{\"t\":7}", true, "\"t\" missing or not a string");
	expect_reject("{\"type\":\"run\"}", true, "\"t\" missing");
	expect_reject("[1,2,3]", true, "not a msgpack map");
	/* Raw bytes. */
	expect_reject("c1", false, "malformed");			/* never-used byte */
	expect_reject("81a174", false, "exceeds");			/* map missing its value */
	expect_reject("81a174cb0000", false, "truncated");		/* short float64 */
	expect_reject("81a174a3726177c0", false, "trailing");		/* one byte too many */
	expect_reject("8101a3727574", false, "key is not a string");	/* {1: "rut"} */
	expect_reject("82a174a573746f7070a174a3727574", false, "duplicate");
	expect_reject("81a174cfffffffffffffffff", false, "beyond int64");
	expect_reject("81a174c40100", false, "bin and ext");		/* bin 8 */
	expect_reject("81a174d40100", false, "bin and ext");		/* fixext 1 */
	expect_reject("81a174a2c328", false, "invalid UTF-8");
	expect_reject("81a174a3610062", false, "NUL");
	/* Sizes that do not fit the bytes present: refused before allocating. */
	expect_reject("dfffffffff", false, "exceeds");			/* map32 of 2^32-1 */
	expect_reject("81a174ddffffffff00", false, "exceeds");		/* array32 */
	expect_reject("81a174dbffffffff41", false, "exceeds");		/* str32 */
}
END_TEST

START_TEST(nesting_is_bounded)
{
	/* {"t": [[[[...]]]]} 40 deep */
	uint8_t bytes[64];
	size_t n = 0;
	char err[256];
	enum msg_type t;
	json_t *out;
	bytes[n++] = 0x81;
	bytes[n++] = 0xa1;
	bytes[n++] = 't';
	for (int i = 0; i < 40; i++)
		bytes[n++] = 0x91;
	bytes[n++] = 0xc0;
	ck_assert_int_eq(msg_unpack(bytes, n, &t, &out, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "nesting") || strstr(err, "malformed"), "%s", err);
}
END_TEST

START_TEST(write_queue_is_bounded)
{
	struct wqueue q;
	char payload[100];
	memset(payload, 'x', sizeof(payload));
	wqueue_init(&q, 1000);
	int ok = 0;
	while (wqueue_push(&q, payload, sizeof(payload)) == 0)
		ok++;
	ck_assert_int_eq(errno, ENOBUFS);
	ck_assert_int_eq(ok, 9);	/* 9 * 104 <= 1000 < 10 * 104 */
	ck_assert_uint_eq(q.refused, 1);
	ck_assert_uint_eq(q.frames, 9);
	ck_assert_int_eq(wqueue_push(&q, payload, 0), -1);
	wqueue_free(&q);
}
END_TEST

START_TEST(write_queue_over_a_socket)
{
	int sv[2];
	struct wqueue q;
	static char big[200000];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	int small = 4096;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	wqueue_init(&q, 1 << 20);
	ck_assert_int_eq(wqueue_push(&q, big, sizeof(big)), 0);
	ck_assert_int_eq(wqueue_flush(&q, sv[0]), 0);	/* partial: the rest waits */
	ck_assert_uint_gt(wqueue_pending(&q), 0);
	/* Drain the peer through a frame reader: the whole frame arrives. */
	struct frame_reader r;
	const uint8_t *p;
	size_t len;
	const char *err;
	frame_reader_init(&r, 1 << 20);
	int rc;
	while ((rc = frame_reader_next(&r, &p, &len, &err)) == 0) {
		wqueue_flush(&q, sv[0]);
		ck_assert_int_gt(frame_reader_fill(&r, sv[1]), 0);
	}
	ck_assert_int_eq(rc, 1);
	ck_assert_uint_eq(len, sizeof(big));
	ck_assert_int_eq(wqueue_flush(&q, sv[0]), 1);
	/* Peer gone: EPIPE, and no SIGPIPE kills us. */
	close(sv[1]);
	ck_assert_int_eq(wqueue_push(&q, big, 10), 0);
	ck_assert_int_eq(wqueue_flush(&q, sv[0]), -1);
	ck_assert_int_eq(errno, EPIPE);
	frame_reader_free(&r);
	wqueue_free(&q);
	close(sv[0]);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("codec");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, every_message_round_trips);
	tcase_add_test(tc, frames_split_anywhere);
	tcase_add_test(tc, bad_lengths_poison_the_stream);
	tcase_add_test(tc, malformed_messages);
	tcase_add_test(tc, nesting_is_bounded);
	tcase_add_test(tc, write_queue_is_bounded);
	tcase_add_test(tc, write_queue_over_a_socket);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
