/* The wrapped allocators of oom.h. */
#include <stdbool.h>
#include <stdlib.h>

#include "oom.h"

void *__real_malloc(size_t size);
void *__real_calloc(size_t nmemb, size_t size);
void *__real_realloc(void *ptr, size_t size);
void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t nmemb, size_t size);
void *__wrap_realloc(void *ptr, size_t size);

static bool armed, fired;
static unsigned left;

static bool fail(void)
{
	if (!armed) {
		return false;
	}
	if (left-- == 0) {
		armed = false;
		fired = true;
		return true;
	}
	return false;
}

void oom_arm(unsigned n)
{
	armed = true;
	fired = false;
	left = n;
}

bool oom_disarm(void)
{
	armed = false;
	return fired;
}

void *__wrap_malloc(size_t size)
{
	return fail() ? NULL : __real_malloc(size);
}

void *__wrap_calloc(size_t nmemb, size_t size)
{
	return fail() ? NULL : __real_calloc(nmemb, size);
}

void *__wrap_realloc(void *ptr, size_t size)
{
	return fail() ? NULL : __real_realloc(ptr, size);
}
