/* Writes the golden files of tests/data/consensus/ (see golden_v1.h). Run
 * once, by hand, when a format is introduced; never to "fix" a failing
 * golden test:
 *
 *   gen_golden OUTDIR        (refuses to overwrite an existing file)
 *
 * Not a test and not run by the build. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cons_int.h"
#include "golden_v1.h"

static int write_new(const char *dir, const char *name, const void *buf,
		     size_t len)
{
	char path[4096];
	int fd;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
	if (fd < 0) {
		fprintf(stderr, "gen_golden: %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (write(fd, buf, len) != (ssize_t)len || close(fd) != 0) {
		fprintf(stderr, "gen_golden: write %s failed\n", path);
		return 1;
	}
	printf("wrote %s (%zu bytes)\n", path, len);
	return 0;
}

static int gen_entry(const char *dir)
{
	const struct q_cmd *cmds;
	size_t n = golden_v1_cmds(&cmds);
	struct cons_proposer by = {GOLDEN_V1_PROPOSER_ID,
				   GOLDEN_V1_PROPOSER_BOOT,
				   GOLDEN_V1_PROPOSER_SEQ};
	Raftmq__Log__V1__SetMember m;
	struct raft_buffer buf;
	int rv;

	raftmq__log__v1__set_member__init(&m);
	m.id = GOLDEN_V1_MEMBER_ID;
	m.client_address = (char *)(uintptr_t)GOLDEN_V1_MEMBER_ADDR;
	if (cons__entry_encode(cmds, n, &m, 1, GOLDEN_V1_TIME_MS, &by, &buf) !=
	    0) {
		fprintf(stderr, "gen_golden: encode failed\n");
		return 1;
	}
	rv = write_new(dir, "entry-v1.bin", buf.base, buf.len);
	raft_free(buf.base);
	return rv;
}

static int gen_snapshot(const char *dir)
{
	const struct q_cmd *cmds;
	size_t n = golden_v1_history(&cmds), i;
	struct q_options qopts = {0};
	struct cons_fsm f;
	struct raft_buffer *bufs;
	unsigned n_bufs;
	int rv;

	if (cons__fsm_init(&f, &qopts, NULL) != 0) {
		return 1;
	}
	for (i = 0; i < n; i++) {
		struct raft_buffer b;
		void *result;
		if (cons__entry_encode(&cmds[i], 1, NULL, 0,
				       GOLDEN_V1_TIME_MS + 1000 * i, NULL,
				       &b) != 0) {
			return 1;
		}
		f.fsm.apply(&f.fsm, &b, &result);
		raft_free(b.base);
	}
	cons__fsm_set_member(&f, GOLDEN_V1_SNAP_MEMBER1_ID,
			     GOLDEN_V1_SNAP_MEMBER1_ADDR);
	cons__fsm_set_member(&f, GOLDEN_V1_SNAP_MEMBER2_ID,
			     GOLDEN_V1_SNAP_MEMBER2_ADDR);
	if (f.fsm.snapshot(&f.fsm, &bufs, &n_bufs) != 0 || n_bufs != 1) {
		fprintf(stderr, "gen_golden: snapshot failed\n");
		return 1;
	}
	rv = write_new(dir, "snapshot-v1.bin", bufs[0].base, bufs[0].len);
	f.fsm.snapshot_finalize(&f.fsm, &bufs, &n_bufs);
	cons__fsm_close(&f);
	return rv;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: gen_golden OUTDIR\n");
		return 2;
	}
	return gen_entry(argv[1]) | gen_snapshot(argv[1]);
}
