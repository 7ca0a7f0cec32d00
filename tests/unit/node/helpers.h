/* Helpers shared by the node/ tests on the fake node (tests/lib/fake_node.h).
 *
 *   - tn_start(): a fake node with the defaults a test changes (id 1, one
 *     member so that it stops without a leadership transfer).
 *   - tn_publish(), tn_consume()...: send one request (nothing is proposed
 *     until the test ends the iteration) and return its correlation id.
 *   - tn_expect(): the next frame written to a client, which must answer
 *     `corr` with body `body` (an Error is printed in the failure).
 *   - tn_queue(): the queue's counters in the node's state.
 * Every helper cr_asserts on failure. */
#ifndef RAFTMQ_TESTS_NODE_HELPERS_H
#define RAFTMQ_TESTS_NODE_HELPERS_H

#include <stddef.h>
#include <stdint.h>

#include "fake_node.h"

/* Stops the node (fake_node_stop()): the last call of every test, so that
 * the leak check that ends each test in a build with AddressSanitizer
 * (tests/lib/leak_check.c) sees everything the node allocated freed. */
void tn_stop(struct fake_node *n);
/* For .fini: stops the node if the test did not get to tn_stop(). */
void tn_cleanup(struct fake_node *n);

/* node_config_defaults() with id 1 and one member. */
void tn_config(struct node_config *cfg);
/* fake_node_start() with cfg (NULL: tn_config()). */
void tn_start(struct fake_node *n, const struct node_config *cfg);
/* tn_start(), then a client that creates the queue `queue` (committed). */
struct fake_client *tn_start_queue(struct fake_node *n,
				   const struct node_config *cfg,
				   const char *queue);

/* Sends a request whose body (case `body`, a BODY()) is msg (borrowed). */
uint64_t tn_send(struct fake_client *c, int body, void *msg);
uint64_t tn_create_queue(struct fake_client *c, const char *name);
/* Publishes `count` one-byte messages to queue, each in a loop iteration of
 * its own, and expects each confirm. */
void tn_publish_confirmed(struct fake_client *c, const char *queue,
			  size_t count);
uint64_t tn_publish(struct fake_client *c, const char *queue, const void *body,
		    size_t len);
/* A PublishBatch of n bodies of len bytes each (all `fill`). */
uint64_t tn_publish_batch(struct fake_client *c, const char *queue, size_t n,
			  size_t len, char fill);
uint64_t tn_consume(struct fake_client *c, const char *queue,
		    uint32_t prefetch);
uint64_t tn_fetch(struct fake_client *c, const char *queue, uint32_t max,
		  uint64_t wait_ms);
/* Ack, Nack, Release or Extend (kind: a BODY()) of n tags. */
uint64_t tn_tags(struct fake_client *c, int kind, uint64_t consumer,
		 const uint64_t *tags, size_t n);
uint64_t tn_cancel(struct fake_client *c, uint64_t consumer);

/* The next frame written to c; it answers corr with `body`. */
Envelope *tn_expect(struct fake_client *c, uint64_t corr, int body);
/* The next frame is an Error answering corr with `code`. */
Envelope *tn_expect_error(struct fake_client *c, uint64_t corr, int code);
/* No frame is waiting. */
void tn_expect_none(struct fake_client *c);

/* The queue's counters (it must exist). */
struct q_queue_info tn_queue(struct fake_node *n, const char *name);
/* Consumers in the state attached through the session (any queue). */
size_t tn_state_consumers(struct fake_node *n, const struct fake_client *c);
/* Consumers the session knows. */
size_t tn_session_consumers(const struct fake_client *c);
/* Deliveries the session holds for consumers it does not know yet. */
size_t tn_session_early(const struct fake_client *c);

#endif /* RAFTMQ_TESTS_NODE_HELPERS_H */
