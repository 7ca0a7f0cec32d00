/*
 * A tiny scripted raftmq server for the client library's tests: one thread
 * listening on 127.0.0.1 (random free port), serving one connection at a
 * time, and calling a test-provided handler for every decoded request.
 */
#ifndef FAKE_SERVER_H
#define FAKE_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "rmq_int.h"

#define FAKE_MAX_IDS 256

struct fake;

/* Handles one request on connection number conn_no (0-based). Returns true
 * to keep the connection, false to close it at once. Runs on the server
 * thread with f->mu held. */
typedef bool (*fake_handler)(struct fake *f, int fd, int conn_no, rmq_env *req);

struct fake {
	int lfd;
	int port;
	char addr[32]; /* "127.0.0.1:port" */
	pthread_t thread;
	volatile int stop;
	pthread_mutex_t mu;
	fake_handler handle;
	void *data; /* for the test */
	uint64_t node_id;
	/* Recorded by the helpers below. */
	int n_conns;
	int n_ids;
	char ids[FAKE_MAX_IDS][64]; /* msg_id of each Publish received */
	int id_conn[FAKE_MAX_IDS];  /* connection it came on */
};

void fake_start(struct fake *f, fake_handler h, uint64_t node_id);
void fake_stop(struct fake *f);

/* Records the msg_id of a Publish request. */
void fake_record_publish(struct fake *f, int conn_no, const rmq_env *req);

/* Sends env (its body set) with version 1 and correlation id corr. */
void fake_send(int fd, uint64_t corr, rmq_env *env);
void fake_hello_result(int fd, uint64_t corr, uint64_t node_id,
		       uint64_t leader_id, const char *leader_addr);
void fake_error(int fd, uint64_t corr, int code, const char *msg,
		const char *leader_addr);
void fake_publish_result(int fd, uint64_t corr, uint64_t seq, bool dup);
void fake_delivery(int fd, uint64_t corr, uint64_t consumer_id,
		   const char *queue, uint64_t tag, const char *body,
		   uint32_t count);

#endif /* FAKE_SERVER_H */
