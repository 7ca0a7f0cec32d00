/* Allocation failures for the store's out-of-memory sweeps: the test
 * executable t_store_oom wraps malloc, calloc and realloc (ld --wrap, as
 * tests/lib/fault.c does by size), and oom_arm(n) makes the nth allocation
 * from now fail (counting from 0), once. Arm only around store calls: the
 * test's own allocations are wrapped too. */
#ifndef RAFTMQ_TESTS_STORE_OOM_H
#define RAFTMQ_TESTS_STORE_OOM_H

#include <stdbool.h>

void oom_arm(unsigned n);
/* Disarms; returns whether the failure was made. */
bool oom_disarm(void);

#endif
