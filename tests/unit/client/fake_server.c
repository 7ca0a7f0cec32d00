/* The scripted fake server used by the client tests (fake_server.h). */
#include "fake_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>

static void write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

		if (k < 0 && errno == EINTR) {
			continue;
		}
		if (k <= 0) {
			return; /* the client went away: fine for a test */
		}
		p += k;
		n -= (size_t)k;
	}
}

void fake_send(int fd, uint64_t corr, rmq_env *env)
{
	struct rmq_buf b = {0};

	env->version = 1;
	env->correlation_id = corr;
	cr_assert_eq(rmq__frame_encode(env, RMQ_DEFAULT_MAX_FRAME, &b), 0);
	write_all(fd, b.data, b.len);
	rmq__buf_close(&b);
}

void fake_hello_result(int fd, uint64_t corr, uint64_t node_id,
		       uint64_t leader_id, const char *leader_addr)
{
	Raftmq__Client__V1__HelloResult r =
		RAFTMQ__CLIENT__V1__HELLO_RESULT__INIT;
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;

	r.protocol_version = 1;
	r.node_id = node_id;
	r.leader_id = leader_id;
	r.leader_client_address = (char *)(leader_addr ? leader_addr : "");
	r.max_frame_bytes = RMQ_DEFAULT_MAX_FRAME;
	env.body_case = RMQ_BODY(HELLO_RESULT);
	env.hello_result = &r;
	fake_send(fd, corr, &env);
}

void fake_error(int fd, uint64_t corr, int code, const char *msg,
		const char *leader_addr)
{
	Raftmq__Client__V1__Error e = RAFTMQ__CLIENT__V1__ERROR__INIT;
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;

	e.code = (Raftmq__Client__V1__ErrorCode)code;
	e.message = (char *)msg;
	e.leader_client_address = (char *)(leader_addr ? leader_addr : "");
	env.body_case = RMQ_BODY(ERROR);
	env.error = &e;
	fake_send(fd, corr, &env);
}

void fake_publish_result(int fd, uint64_t corr, uint64_t seq, bool dup)
{
	Raftmq__Client__V1__PublishResult r =
		RAFTMQ__CLIENT__V1__PUBLISH_RESULT__INIT;
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;

	r.seq = seq;
	r.duplicate = dup;
	env.body_case = RMQ_BODY(PUBLISH_RESULT);
	env.publish_result = &r;
	fake_send(fd, corr, &env);
}

void fake_delivery(int fd, uint64_t corr, uint64_t consumer_id,
		   const char *queue, uint64_t tag, const char *body,
		   uint32_t count)
{
	Raftmq__Client__V1__Delivery d = RAFTMQ__CLIENT__V1__DELIVERY__INIT;
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;

	d.consumer_id = consumer_id;
	d.queue = (char *)queue;
	d.tag = tag;
	d.msg_id.data = (uint8_t *)"mid";
	d.msg_id.len = 3;
	d.body.data = (uint8_t *)body;
	d.body.len = strlen(body);
	d.delivery_count = count;
	d.redelivered = count > 1;
	d.published_ms = 1700000000000ull;
	env.body_case = RMQ_BODY(DELIVERY);
	env.delivery = &d;
	fake_send(fd, corr, &env);
}

void fake_record_publish(struct fake *f, int conn_no, const rmq_env *req)
{
	const ProtobufCBinaryData *id = &req->publish->msg_id;

	if (f->n_ids < FAKE_MAX_IDS) {
		snprintf(f->ids[f->n_ids], sizeof(f->ids[0]), "%.*s",
			 (int)id->len, (const char *)id->data);
		f->id_conn[f->n_ids] = conn_no;
		f->n_ids++;
	}
}

/* Serves one connection until the client or the handler closes it. */
static void serve(struct fake *f, int fd, int conn_no)
{
	struct rmq_frame_reader rd;
	bool open = true;

	rmq__frame_reader_init(&rd, RMQ_DEFAULT_MAX_FRAME);
	while (open && !f->stop) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		uint8_t buf[4096];
		const uint8_t *frame;
		rmq_env *env;
		size_t len;
		bool ready;
		ssize_t n;

		if (poll(&pfd, 1, 20) <= 0) {
			continue;
		}
		n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0) {
			break;
		}
		rmq__frame_reader_feed(&rd, buf, (size_t)n);
		while (open) {
			cr_assert_eq(rmq__frame_next(&rd, &frame, &len, &ready),
				     0);
			if (!ready) {
				break;
			}
			cr_assert_eq(rmq__frame_decode(frame, len, &env), 0);
			cr_assert_eq(env->version,
				     RMQ_FRAME_VERSION(env->body_case));
			cr_assert_neq(env->correlation_id, 0);
			pthread_mutex_lock(&f->mu);
			open = f->handle(f, fd, conn_no, env);
			pthread_mutex_unlock(&f->mu);
			rmq__env_free(env);
		}
	}
	rmq__frame_reader_close(&rd);
	close(fd);
}

static void *run(void *arg)
{
	struct fake *f = arg;

	while (!f->stop) {
		struct pollfd pfd = {.fd = f->lfd, .events = POLLIN};
		int fd;
		int no;

		if (poll(&pfd, 1, 20) <= 0) {
			continue;
		}
		fd = accept(f->lfd, NULL, NULL);
		if (fd < 0) {
			continue;
		}
		pthread_mutex_lock(&f->mu);
		no = f->n_conns++;
		pthread_mutex_unlock(&f->mu);
		serve(f, fd, no);
	}
	return NULL;
}

void fake_start(struct fake *f, fake_handler h, uint64_t node_id)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	int one = 1;

	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->mu, NULL);
	f->handle = h;
	f->node_id = node_id;
	f->lfd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(f->lfd, 0);
	setsockopt(f->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = 0; /* a random free port */
	cr_assert_eq(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(f->lfd, 8), 0);
	cr_assert_eq(getsockname(f->lfd, (struct sockaddr *)&sa, &sl), 0);
	f->port = ntohs(sa.sin_port);
	snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%d", f->port);
	cr_assert_eq(pthread_create(&f->thread, NULL, run, f), 0);
}

void fake_stop(struct fake *f)
{
	f->stop = 1;
	pthread_join(f->thread, NULL);
	close(f->lfd);
	pthread_mutex_destroy(&f->mu);
}
