/*
 * `raftmq bench`: the peer workloads W1..W5 (../shared/peers/RESULTS.md)
 * against a raftmq cluster, printing the peers' load generator columns.
 */
#ifndef RAFTMQ_CLI_BENCH_H
#define RAFTMQ_CLI_BENCH_H

/*
 * Runs `raftmq bench W1|W2|W3|W4|W5 [options]` against `cluster` (borrowed,
 * "host:port[,host:port]"). argv[0] is "bench". Returns the process exit
 * code (0 ok, 1 failed, 2 usage).
 */
int rmq_bench_main(const char *cluster, int argc, char **argv);

#endif /* RAFTMQ_CLI_BENCH_H */
