/* The defaults of the [raft] settings and the size limits of a log entry,
 * in one place: consensus/ applies the defaults where a setting is 0 and
 * enforces the limits, node/'s configuration shows them in --help and docs
 * and validates against them. Plain decimal literals, so that CONS_STR()
 * makes the text of each. No includes: node_config.c, which does not link
 * consensus/, includes it too. */
#ifndef RAFTMQ_CONS_DEFAULTS_H
#define RAFTMQ_CONS_DEFAULTS_H

#define CONS_DEFAULT_ELECTION_MS 1000 /* libraft's own default too */
#define CONS_DEFAULT_HEARTBEAT_MS 100
#define CONS_DEFAULT_SNAPSHOT_THRESHOLD 65536 /* entries */
#define CONS_DEFAULT_SNAPSHOT_TRAILING 8192   /* entries */
#define CONS_DEFAULT_SNAPSHOT_MIN_MIB 16
#define CONS_DEFAULT_TRAILING_MIB 4
#define CONS_DEFAULT_MAX_INFLIGHT 256 /* entries */

/* The largest log entry, encoded (header, LogEntry, padding), in MiB:
 * CONS_MAX_ENTRY_BYTES (cons.h says why there is a cap). */
#define CONS_MAX_ENTRY_MIB 64
/* An upper bound of an entry's bytes besides its commands: the 8-byte
 * header, the LogEntry's own fields (format, leader clock, proposer) and
 * the padding to a multiple of 8. Each command then adds its encoding plus
 * at most CONS_COMMAND_WRAP_BYTES (its Command and list field headers). */
#define CONS_ENTRY_BASE_BYTES 64
#define CONS_COMMAND_WRAP_BYTES 16

#define CONS_STR_(x) #x
#define CONS_STR(x) CONS_STR_(x)

#endif /* RAFTMQ_CONS_DEFAULTS_H */
