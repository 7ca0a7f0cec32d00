/*
 * Addresses, sockets and clocks: parsing "host:port" lists, a non-blocking
 * connect bounded by a timeout (each resolved address is tried in turn), and
 * the monotonic clock that every deadline of the library is measured on.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "rmq_int.h"

uint64_t rmq__now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t rmq__deadline(uint64_t timeout_ms)
{
	uint64_t now = rmq__now_ms();

	if (timeout_ms >= RMQ_NO_DEADLINE - now) {
		return RMQ_NO_DEADLINE;
	}
	return now + timeout_ms;
}

int rmq__poll_timeout(uint64_t deadline)
{
	uint64_t now;

	if (deadline == RMQ_NO_DEADLINE) {
		return -1;
	}
	now = rmq__now_ms();
	if (now >= deadline) {
		return 0;
	}
	if (deadline - now > 60000) {
		return 60000;
	}
	return (int)(deadline - now);
}

static char *strndup_(const char *s, size_t n)
{
	char *p = malloc(n + 1);

	if (p != NULL) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

int rmq__addr_parse(const char *s, size_t len, struct rmq_addr *out)
{
	const char *item = s;
	const char *host;
	const char *colon;
	size_t hlen;
	size_t plen;
	size_t i;

	/* Trim blanks around the item. */
	while (len > 0 && (*item == ' ' || *item == '\t')) {
		item++;
		len--;
	}
	while (len > 0 && (item[len - 1] == ' ' || item[len - 1] == '\t')) {
		len--;
	}
	if (len > 0 && item[0] == '[') {
		const char *end = memchr(item, ']', len);

		if (end == NULL || end + 1 >= item + len || end[1] != ':') {
			return RAFTMQ_EINVAL;
		}
		host = item + 1;
		hlen = (size_t)(end - host);
		colon = end + 1;
	} else {
		colon = NULL;
		for (i = len; i > 0; i--) {
			if (item[i - 1] == ':') {
				colon = item + i - 1;
				break;
			}
		}
		if (colon == NULL) {
			return RAFTMQ_EINVAL;
		}
		host = item;
		hlen = (size_t)(colon - item);
	}
	plen = (size_t)(item + len - (colon + 1));
	if (hlen == 0 || plen == 0 || plen > 5) {
		return RAFTMQ_EINVAL;
	}
	for (i = 0; i < plen; i++) {
		if (colon[1 + i] < '0' || colon[1 + i] > '9') {
			return RAFTMQ_EINVAL;
		}
	}
	out->host = strndup_(host, hlen);
	out->port = strndup_(colon + 1, plen);
	if (out->host == NULL || out->port == NULL) {
		free(out->host);
		free(out->port);
		out->host = NULL;
		out->port = NULL;
		return RAFTMQ_ENOMEM;
	}
	return 0;
}

void rmq__addr_free(struct rmq_addr *a, size_t n)
{
	size_t i;

	if (a == NULL) {
		return;
	}
	for (i = 0; i < n; i++) {
		free(a[i].host);
		free(a[i].port);
	}
	free(a);
}

int rmq__addr_parse_list(const char *s, struct rmq_addr **out, size_t *n,
			 char *err, size_t errlen)
{
	struct rmq_addr *a;
	size_t count = 1;
	size_t k = 0;
	const char *p;
	int rv;

	*out = NULL;
	*n = 0;
	if (s == NULL || s[0] == '\0') {
		snprintf(err, errlen, "empty address list");
		return RAFTMQ_EINVAL;
	}
	for (p = s; *p != '\0'; p++) {
		count += *p == ',';
	}
	a = calloc(count, sizeof(*a));
	if (a == NULL) {
		snprintf(err, errlen, "out of memory");
		return RAFTMQ_ENOMEM;
	}
	p = s;
	for (;;) {
		const char *end = strchr(p, ',');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);

		rv = rmq__addr_parse(p, len, &a[k]);
		if (rv != 0) {
			snprintf(err, errlen,
				 "bad address \"%.*s\" (want HOST:PORT)",
				 (int)(len > 100 ? 100 : len), p);
			rmq__addr_free(a, k);
			return rv;
		}
		k++;
		if (end == NULL) {
			break;
		}
		p = end + 1;
	}
	*out = a;
	*n = k;
	return 0;
}

/* Waits for a non-blocking connect on fd; returns 0 or an errno value. */
static int wait_connected(int fd, uint64_t deadline)
{
	struct pollfd pfd = {.fd = fd, .events = POLLOUT};
	socklen_t sl = sizeof(int);
	int soerr = 0;
	int rv;

	for (;;) {
		rv = poll(&pfd, 1, rmq__poll_timeout(deadline));
		if (rv < 0 && errno == EINTR) {
			continue;
		}
		if (rv < 0) {
			return errno;
		}
		if (rv == 0) {
			return ETIMEDOUT;
		}
		break;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) {
		return errno;
	}
	return soerr;
}

int rmq__net_connect(const char *host, const char *port, unsigned timeout_ms,
		     int *fd, char *err, size_t errlen)
{
	struct addrinfo hints;
	struct addrinfo *res;
	struct addrinfo *ai;
	uint64_t deadline = rmq__deadline(timeout_ms);
	int last = ECONNREFUSED;
	int one = 1;
	int rv;
	int s;

	*fd = -1;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	rv = getaddrinfo(host, port, &hints, &res);
	if (rv != 0) {
		snprintf(err, errlen, "%s:%s: %s", host, port,
			 gai_strerror(rv));
		return RAFTMQ_ECONNECT;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		s = socket(ai->ai_family,
			   ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			   ai->ai_protocol);
		if (s < 0) {
			last = errno;
			continue;
		}
		rv = connect(s, ai->ai_addr, ai->ai_addrlen);
		if (rv != 0 && errno == EINPROGRESS) {
			last = wait_connected(s, deadline);
			rv = last == 0 ? 0 : -1;
		} else if (rv != 0) {
			last = errno;
		}
		if (rv == 0) {
			setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one,
				   sizeof(one));
			*fd = s;
			freeaddrinfo(res);
			return 0;
		}
		close(s);
	}
	freeaddrinfo(res);
	snprintf(err, errlen, "%s:%s: %s", host, port, strerror(last));
	return RAFTMQ_ECONNECT;
}
