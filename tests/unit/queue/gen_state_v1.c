/* Writes tests/data/queue/state-v1.bin (see state_v1.h). Run once, by hand,
 * when a dump format is introduced; never to "fix" a failing test:
 *
 *   gen_state_v1 PATH        (refuses to overwrite an existing file)
 *
 * Not a test and not run by the build. It also prints where every message
 * of the state is (q_state_peek), for state_v1.h's description. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "state_v1.h"

static int show(void *data, const struct q_peeked *p)
{
	(void)data;
	printf("  %s seq %" PRIu64
	       " state %u deliveries %u body %zu B id %zu B"
	       " dl %u\n",
	       p->msg.queue, p->msg.seq, p->state, p->msg.delivery_count,
	       p->msg.body_len, p->msg.msg_id_len, p->msg.dl_reason);
	return 0;
}

static int each_queue(void *data, const struct q_queue_info *qi)
{
	return q_state_peek(data, qi->name, 0, SIZE_MAX,
			    Q_PEEK_DELAYED | Q_PEEK_HELD, show, NULL);
}

int main(int argc, char **argv)
{
	struct q_options o = {.hash_seed = 5};
	struct q_state *s;
	const struct q_cmd *cmds;
	size_t n, i, len;
	void *buf;
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: gen_state_v1 PATH\n");
		return 2;
	}
	s = q_state_new(&o);
	n = state_v1_history(&cmds);
	for (i = 0; i < n; i++) {
		struct q_result r;
		if (q_state_apply(s, &cmds[i], &r) != 0 || r.status != Q_OK) {
			fprintf(stderr, "gen_state_v1: command %zu: %d\n", i,
				r.status);
			return 1;
		}
	}
	q_state_foreach_queue(s, each_queue, s);
	if (q_state_dump_buf(s, &buf, &len) != 0) {
		return 1;
	}
	fd = open(argv[1], O_WRONLY | O_CREAT | O_EXCL, 0644);
	if (fd < 0) {
		fprintf(stderr, "gen_state_v1: %s: %s\n", argv[1],
			strerror(errno));
		return 1;
	}
	if (write(fd, buf, len) != (ssize_t)len || close(fd) != 0) {
		fprintf(stderr, "gen_state_v1: write failed\n");
		return 1;
	}
	printf("wrote %s (%zu bytes)\n", argv[1], len);
	free(buf);
	q_state_free(s);
	return 0;
}
