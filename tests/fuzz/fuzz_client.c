/* Fuzz target: bytes from a client, through the real node/ code.
 *
 * node/'s real node_session.c (framing), node_dispatch.c (request
 * validation, request -> q_cmd, results and deliveries -> frames) and
 * node_server.c (group-commit batches, leadership) run over the fake
 * consensus/ of tests/lib (fake_cons.h, fake_node.h): one in-process
 * replica over a real q_state, no raft. The fake is faithful where it
 * matters: it encodes each batch with the real cons__entry_encode() when
 * it is proposed (as cons_node.c does) and applies it later through
 * cons__entry_decode()/cons__entry_command(), as every replica's FSM would,
 * with the node's real sink.
 *
 * The input: byte 0 sets the run up (below); the rest is the TCP stream
 * from one client (4-byte big-endian length + Envelope frames), handed to
 * node_session_read_frames() in chunks. After each chunk an "iteration" of
 * the loop ends: batches are proposed and the proposals applied (which may
 * queue more, e.g. releases of late pull deliveries) until quiet.
 *
 *   byte 0, bits 0-2: chunk size (whole stream, 1, 3, 7, 16, 61, 256, 1024)
 *           bit 3: fetch wait timers fire after each chunk
 *           bit 4: the leader proposes a TICK 60 s later after each chunk
 *           bit 5: every third proposal fails (leadership lost)
 *           bit 6: batches of at most 2 commands (waiting batches)
 *           bit 7: small memory limit (the memory alarm refuses publishes)
 *
 * Checked (by the harness, fake_node.h): no crash, leak or sanitizer
 * report; every frame the node writes back is a valid Envelope whose
 * strings are UTF-8 without NUL (what strict protobuf libraries require;
 * node_codec_check_strings()); every entry the node proposes is one each
 * replica can decode and apply (a committed entry that cannot be applied
 * stops the cluster), and no larger than node/ counted for its batch;
 * q_state_check() after every applied entry; at the end every handle is
 * closed and uv_loop_close() succeeds. */
#include "fake_node.h"
#include "fuzz_util.h"
#include "node_log.h"

/* ---------------------------------------------------------------- harness */

static void tick(struct fake_node *n)
{
	struct q_cmd *cmd;
	n->cons.clock += 60000;
	if (node_batch_add(&n->srv, NULL, 0, 0, NULL, 1, &cmd) != NULL) {
		cmd->type = Q_CMD_TICK;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t chunks[] = {0, 1, 3, 7, 16, 61, 256, 1024};
	struct fake_node n;
	struct fake_client *c;
	struct node_config cfg;
	size_t off, chunk;
	uint8_t mode;

	if (size == 0) {
		return 0;
	}
	mode = data[0];
	data++;
	size--;
	chunk = chunks[mode & 7] ? chunks[mode & 7] : size;

	node_config_defaults(&cfg);
	cfg.id = 1;
	cfg.n_members = 1;	    /* stops without a leadership transfer */
	cfg.max_frame_bytes = 8192; /* reachable by the fuzzer */
	cfg.max_message_bytes = 1024;
	cfg.memory_limit = (mode & 128) ? 2048 : 0;
	if (mode & 64) {
		cfg.max_batch_commands = 2;
		cfg.max_inflight_batches = 2;
	}
	fake_node_start(&n, &cfg);
	/* FUZZ_TRACE=1 in the environment prints every frame the node
	 * writes and node/'s log (to see what an input does). */
	if (getenv("FUZZ_TRACE") != NULL) {
		n.trace = true;
		node_log_ctx.level = NODE_LOG_DEBUG;
	}
	n.keep_frames = false; /* checked and dropped */
	n.odd_changes_busy = true;
	n.cons.fail_every_third = (mode & 32) != 0;
	c = fake_node_connect(&n);

	for (off = 0; off < size && !c->s->closing; off += chunk) {
		size_t len = size - off < chunk ? size - off : chunk;
		fake_client_write(c, data + off, len);
		fake_node_settle(&n);
		if (mode & 8) {
			fake_node_fire_fetch_timers(c);
		}
		if (mode & 16) {
			tick(&n);
		}
		fake_node_settle(&n);
	}
	/* The client goes away (SESSION_GONE), then the node stops; every
	 * handle must close and every session be freed. */
	fake_node_stop(&n);
	return 0;
}
