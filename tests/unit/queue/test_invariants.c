/* Invariants that must never break are asserted in queue/ (kept on in every
 * build): a replica that stops is better than one that diverges. These
 * tests check that breaking one stops the process. */
#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>

#include "helpers.h"
#include "q.h"

static struct q_state *state;
static struct fb_state fb; /* the bodies in t_queue_store */

/* A sink that applies from inside a delivery, as node/ must never do (it
 * proposes into the next log entry instead). */
static void reentering_deliver(void *data, const struct q_delivery *d)
{
	struct q_cmd cmd;
	struct q_result r;
	(void)data;
	memset(&cmd, 0, sizeof cmd);
	cmd.type = Q_CMD_ACK;
	cmd.now_ms = 2;
	cmd.u.tags.consumer = d->consumer;
	cmd.u.tags.tags = &d->seq;
	cmd.u.tags.n_tags = 1;
	(void)q_state_apply(state, &cmd, &r);
}

static void apply_ok(struct q_cmd *cmd)
{
	struct q_result r;
	cr_assert_eq(q_state_apply(state, cmd, &r), 0);
	cr_assert_eq(r.status, 0, "command %d: status %d", cmd->type, r.status);
}

Test(invariants, apply_reentered_from_the_sink_aborts, .signal = SIGABRT)
{
	struct q_sink sink = {NULL, reentering_deliver, NULL};
	struct q_options opts;
	struct q_cmd cmd;

	memset(&opts, 0, sizeof opts);
	if (H_STORE_DEFAULT) {
		fb_init(&fb);
		opts.bodies = &fb.vt;
	}
	state = q_state_new(&opts);
	cr_assert_not_null(state);
	q_state_set_sink(state, &sink);

	memset(&cmd, 0, sizeof cmd);
	cmd.type = Q_CMD_CREATE_QUEUE;
	cmd.now_ms = 1;
	cmd.u.queue.name = "q";
	q_settings_default(&cmd.u.queue.settings);
	apply_ok(&cmd);

	memset(&cmd, 0, sizeof cmd);
	cmd.type = Q_CMD_ATTACH;
	cmd.now_ms = 1;
	cmd.u.attach.queue = "q";
	cmd.u.attach.session = (struct q_session){1, 1, 1};
	cmd.u.attach.prefetch = 1;
	cmd.u.attach.credit = Q_CREDIT_UNLIMITED;
	apply_ok(&cmd);

	memset(&cmd, 0, sizeof cmd);
	cmd.type = Q_CMD_PUBLISH;
	cmd.now_ms = 1;
	cmd.u.publish.queue = "q";
	cmd.u.publish.body = "x";
	cmd.u.publish.body_len = 1;
	apply_ok(&cmd); /* delivers inside apply: the sink re-enters */
	cr_assert_fail("apply re-entered from the sink did not abort");
}
