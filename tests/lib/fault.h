/* Allocation failures for tests of code that calls libc directly (node/):
 * a program linked with fault_dep (tests/lib/meson.build) has malloc,
 * calloc and realloc of its static libraries wrapped (ld --wrap), so a
 * test can make chosen allocations fail. Shared libraries (libuv,
 * protobuf-c, Criterion) are never affected. queue/ takes an allocator of
 * its own (q_options.allocator) and is tested that way instead.
 *
 * Single-threaded, as the code under test is. */
#ifndef RAFTMQ_TESTS_FAULT_H
#define RAFTMQ_TESTS_FAULT_H

#include <stddef.h>

/* Makes the next `count` allocations of exactly `size` bytes (calloc:
 * nmemb * size; realloc: the new size) fail with NULL, starting now. */
void fault_fail_size(size_t size, unsigned count);
/* Makes the nth allocation from now (counting from 0, any size) fail
 * with NULL, once: an out-of-memory sweep over every allocation of a
 * call. */
void fault_fail_nth(unsigned n);
/* Disarms; returns how many allocations were made to fail since armed. */
unsigned fault_reset(void);

#endif /* RAFTMQ_TESTS_FAULT_H */
