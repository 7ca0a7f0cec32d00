/*
 * orders: a work queue with competing workers, retries and a dead-letter
 * queue. See README.md next to this file.
 *
 * The main thread publishes N orders to the queue "orders". W worker threads,
 * each with its own connection (a connection serves one thread at a time),
 * consume them with a prefetch and "process" them:
 *
 *   - an order whose number ends in 3 fails once (the payment gateway timed
 *     out) and succeeds when it is retried;
 *   - an order whose number ends in 7 is poison (the card is declined) and
 *     fails every time.
 *
 * A failed order is nacked with a delay: the broker delivers it again later,
 * to any worker. After MAX_DELIVERIES failed deliveries the broker moves it
 * to the queue "orders-dlq", which the main thread drains. The program exits
 * 0 once every order is either processed or dead-lettered.
 *
 * Delivery is at least once: after a failover an order may come twice, so
 * the bookkeeping below counts each order once, whatever its deliveries.
 */
#include <raftmq.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define QUEUE "orders"
#define DLQ "orders-dlq"
#define MAX_DELIVERIES 3   /* failed deliveries before dead-lettering */
#define RETRY_DELAY_MS 200 /* nack delay: when the broker retries */
#define PREFETCH 8	   /* unacked orders a worker may hold */
#define MAX_WORKERS 64

enum { OPEN, PROCESSED, DEAD };

/* What the threads share: the fate of every order, under `lock`. */
static struct {
	const char *cluster;
	unsigned n_orders;
	pthread_mutex_t lock;
	unsigned char *state; /* [1..n_orders]: OPEN, PROCESSED or DEAD */
	unsigned processed, retried, dead;
	atomic_bool stop;
} shop = {.lock = PTHREAD_MUTEX_INITIALIZER};

struct worker {
	pthread_t thread;
	unsigned id;
	unsigned processed;
};

/* Parses "order-N"; returns N, or 0 for a body that is not one of ours. */
static unsigned order_number(const struct raftmq_delivery *d)
{
	unsigned n;

	if (sscanf(d->body, "order-%u", &n) != 1 || n == 0 || n > shop.n_orders)
		return 0;
	return n;
}

/* Records the fate of an order once; returns true the first time. */
static bool settle_order(unsigned n, unsigned char fate, bool retried)
{
	bool first;

	pthread_mutex_lock(&shop.lock);
	first = shop.state[n] == OPEN;
	if (first) {
		shop.state[n] = fate;
		if (fate == DEAD) {
			shop.dead++;
		} else {
			shop.processed++;
			shop.retried += retried;
		}
	}
	pthread_mutex_unlock(&shop.lock);
	return first;
}

static unsigned accounted(void)
{
	unsigned n;

	pthread_mutex_lock(&shop.lock);
	n = shop.processed + shop.dead;
	pthread_mutex_unlock(&shop.lock);
	return n;
}

/* The business logic: charge the card, ship the goods. */
static bool process(unsigned order, uint32_t delivery_count)
{
	struct timespec work = {.tv_nsec = 2 * 1000 * 1000};

	nanosleep(&work, NULL);
	if (order % 10 == 7)
		return false; /* poison: the card is declined, always */
	if (order % 10 == 3 && delivery_count == 1)
		return false; /* transient: the gateway timed out */
	return true;
}

/* Ack/nack results: ESTALE and EUNKNOWN_CONSUMER mean the consumer was
 * re-attached after a failover; the order comes again, nothing to do. */
static void check(struct raftmq *c, int rv, const char *what)
{
	if (rv != 0 && rv != RAFTMQ_ESTALE && rv != RAFTMQ_EUNKNOWN_CONSUMER)
		fprintf(stderr, "%s: %s\n", what, raftmq_errmsg(c));
}

static void *work(void *arg)
{
	struct worker *w = arg;
	struct raftmq *c;
	struct raftmq_consumer *cons;
	char err[256];

	if (raftmq_connect(shop.cluster, NULL, &c, err, sizeof err) != 0) {
		fprintf(stderr, "worker %u: %s\n", w->id, err);
		return NULL;
	}
	if (raftmq_consume(c, QUEUE, PREFETCH, &cons) != 0) {
		fprintf(stderr, "worker %u: %s\n", w->id, raftmq_errmsg(c));
		raftmq_close(c);
		return NULL;
	}
	while (!atomic_load(&shop.stop)) {
		struct raftmq_delivery d;
		int rv = raftmq_next(c, cons, 100, &d);

		/* ECONNECT: no leader yet after a failover; the library
		 * re-attaches the consumer on a later call. */
		if (rv == RAFTMQ_ETIMEOUT || rv == RAFTMQ_ECONNECT)
			continue;
		if (rv != 0) {
			fprintf(stderr, "worker %u: %s\n", w->id,
				raftmq_errmsg(c));
			break;
		}
		unsigned order = order_number(&d);
		if (order != 0 && !process(order, d.delivery_count)) {
			/* Failed: the broker retries it after the delay. */
			rv = raftmq_nack(c, d.consumer_id, &d.tag, 1,
					 RETRY_DELAY_MS, NULL);
		} else {
			/* Done (or not an order at all: dropped). */
			if (order != 0 &&
			    settle_order(order, PROCESSED, d.redelivered))
				w->processed++;
			rv = raftmq_ack(c, d.consumer_id, &d.tag, 1, NULL);
		}
		check(c, rv, "ack/nack");
		raftmq_delivery_free(&d);
	}
	raftmq_close(c);
	return NULL;
}

static const char *reason_name(enum raftmq_dead_letter_reason r)
{
	switch (r) {
	case RAFTMQ_DL_MAX_DELIVERIES:
		return "max-deliveries";
	case RAFTMQ_DL_EXPIRED:
		return "expired";
	case RAFTMQ_DL_OVERFLOW:
		return "overflow";
	default:
		return "none";
	}
}

/* Creates both queues (idempotent) and empties them, so that every run
 * starts from zero. */
static int setup(struct raftmq *c)
{
	struct raftmq_queue_settings s = {
		.has = RAFTMQ_HAS_MAX_DELIVERIES | RAFTMQ_HAS_DEAD_LETTER_QUEUE,
		.max_deliveries = MAX_DELIVERIES,
		.dead_letter_queue = DLQ,
	};

	if (raftmq_queue_create(c, DLQ, NULL) != 0 ||
	    raftmq_queue_create(c, QUEUE, &s) != 0 ||
	    raftmq_queue_purge(c, QUEUE, NULL) != 0 ||
	    raftmq_queue_purge(c, DLQ, NULL) != 0)
		return -1;
	return 0;
}

static int publish_orders(struct raftmq *c)
{
	for (unsigned i = 1; i <= shop.n_orders; i++) {
		char body[32];
		int len = snprintf(body, sizeof body, "order-%u", i);
		struct raftmq_message m = {
			.queue = QUEUE,
			.body = body,
			.body_len = (size_t)len,
		};

		if (raftmq_publish(c, &m, NULL, NULL) != 0) {
			fprintf(stderr, "publish: %s\n", raftmq_errmsg(c));
			return -1;
		}
	}
	printf("published %u orders to \"%s\"\n", shop.n_orders, QUEUE);
	return 0;
}

/* Drains the dead-letter queue until every order is accounted for or
 * `timeout_s` passed. Returns 0 when all are. */
static int watch_dead_letters(struct raftmq *c, unsigned timeout_s)
{
	struct raftmq_consumer *dlq;
	time_t deadline = time(NULL) + (time_t)timeout_s;

	if (raftmq_consume(c, DLQ, PREFETCH, &dlq) != 0) {
		fprintf(stderr, "consume: %s\n", raftmq_errmsg(c));
		return -1;
	}
	while (accounted() < shop.n_orders) {
		struct raftmq_delivery d;
		int rv = raftmq_next(c, dlq, 100, &d);

		if (time(NULL) > deadline) {
			fprintf(stderr, "timed out: %u of %u orders settled\n",
				accounted(), shop.n_orders);
			return -1;
		}
		if (rv == RAFTMQ_ETIMEOUT || rv == RAFTMQ_ECONNECT)
			continue;
		if (rv != 0) {
			fprintf(stderr, "next: %s\n", raftmq_errmsg(c));
			return -1;
		}
		unsigned order = order_number(&d);
		if (order != 0 && settle_order(order, DEAD, false))
			printf("dead-lettered: %s (%s in \"%s\")\n",
			       (const char *)d.body,
			       reason_name(d.dead_letter_reason),
			       d.dead_letter_queue);
		check(c, raftmq_ack(c, d.consumer_id, &d.tag, 1, NULL), "ack");
		raftmq_delivery_free(&d);
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: orders [-c HOST:PORT,...] [-n ORDERS] [-w WORKERS] "
		"[-t SECONDS]\n"
		"  -c  cluster addresses (default $RAFTMQ_CLUSTER, else "
		"127.0.0.1:7001..7003)\n"
		"  -n  orders to publish (default 100)\n"
		"  -w  worker threads (default 4)\n"
		"  -t  give up after SECONDS (default 60)\n");
}

int main(int argc, char **argv)
{
	struct worker workers[MAX_WORKERS] = {0};
	unsigned n_workers = 4, timeout_s = 60;
	struct raftmq *c;
	char err[256];
	int opt, rv = 1;

	shop.cluster = getenv("RAFTMQ_CLUSTER");
	if (shop.cluster == NULL)
		shop.cluster = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003";
	shop.n_orders = 100;
	while ((opt = getopt(argc, argv, "c:n:w:t:h")) != -1) {
		switch (opt) {
		case 'c':
			shop.cluster = optarg;
			break;
		case 'n':
			shop.n_orders = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'w':
			n_workers = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 't':
			timeout_s = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (shop.n_orders == 0 || n_workers == 0 || n_workers > MAX_WORKERS) {
		usage(stderr);
		return 2;
	}
	shop.state = calloc(shop.n_orders + 1, 1);
	if (shop.state == NULL)
		return 1;

	if (raftmq_connect(shop.cluster, NULL, &c, err, sizeof err) != 0) {
		fprintf(stderr, "connect: %s\n", err);
		return 1;
	}
	if (setup(c) != 0) {
		fprintf(stderr, "setup: %s\n", raftmq_errmsg(c));
		raftmq_close(c);
		return 1;
	}
	for (unsigned i = 0; i < n_workers; i++) {
		workers[i].id = i + 1;
		pthread_create(&workers[i].thread, NULL, work, &workers[i]);
	}
	if (publish_orders(c) == 0 && watch_dead_letters(c, timeout_s) == 0)
		rv = 0;

	atomic_store(&shop.stop, true);
	for (unsigned i = 0; i < n_workers; i++) {
		pthread_join(workers[i].thread, NULL);
		printf("worker %u processed %u orders\n", workers[i].id,
		       workers[i].processed);
	}
	printf("summary: %u orders, %u processed (%u after a retry), "
	       "%u dead-lettered\n",
	       shop.n_orders, shop.processed, shop.retried, shop.dead);
	raftmq_close(c);
	free(shop.state);
	return rv;
}
