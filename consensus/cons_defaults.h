/* The defaults of the [raft] settings, in one place: consensus/ applies
 * them where a setting is 0, node/'s configuration shows them in --help
 * and docs and validates against them. Plain decimal literals, so that
 * CONS_STR() makes the text of each. No includes: node_config.c, which
 * does not link consensus/, includes it too. */
#ifndef RAFTMQ_CONS_DEFAULTS_H
#define RAFTMQ_CONS_DEFAULTS_H

#define CONS_DEFAULT_ELECTION_MS 1000 /* libraft's own default too */
#define CONS_DEFAULT_HEARTBEAT_MS 100
#define CONS_DEFAULT_SNAPSHOT_THRESHOLD 65536 /* entries */
#define CONS_DEFAULT_SNAPSHOT_TRAILING 8192   /* entries */
#define CONS_DEFAULT_SNAPSHOT_MIN_MIB 16
#define CONS_DEFAULT_TRAILING_MIB 4
#define CONS_DEFAULT_MAX_INFLIGHT 256 /* entries */

#define CONS_STR_(x) #x
#define CONS_STR(x) CONS_STR_(x)

#endif /* RAFTMQ_CONS_DEFAULTS_H */
