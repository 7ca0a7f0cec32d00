/* The wrapped allocators of fault.h (ld --wrap=malloc,calloc,realloc). */
#include <stdbool.h>
#include <stdlib.h>

#include "fault.h"

void *__real_malloc(size_t size);
void *__real_calloc(size_t nmemb, size_t size);
void *__real_realloc(void *ptr, size_t size);
void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t nmemb, size_t size);
void *__wrap_realloc(void *ptr, size_t size);

static size_t fail_size;
static unsigned fail_left, failed;
static bool nth_armed;
static unsigned nth_left;

static bool fail(size_t size)
{
	if (nth_armed && nth_left-- == 0) {
		nth_armed = false;
		failed++;
		return true;
	}
	if (fail_left == 0 || size != fail_size) {
		return false;
	}
	fail_left--;
	failed++;
	return true;
}

void fault_fail_size(size_t size, unsigned count)
{
	fail_size = size;
	fail_left = count;
	failed = 0;
}

void fault_fail_nth(unsigned n)
{
	nth_armed = true;
	nth_left = n;
	failed = 0;
}

unsigned fault_reset(void)
{
	unsigned n = failed;
	nth_armed = false;
	fail_left = 0;
	failed = 0;
	return n;
}

void *__wrap_malloc(size_t size)
{
	return fail(size) ? NULL : __real_malloc(size);
}

void *__wrap_calloc(size_t nmemb, size_t size)
{
	/* An overflowing product is left to libc to refuse. */
	if (size != 0 && nmemb <= (size_t)-1 / size && fail(nmemb * size)) {
		return NULL;
	}
	return __real_calloc(nmemb, size);
}

void *__wrap_realloc(void *ptr, size_t size)
{
	return fail(size) ? NULL : __real_realloc(ptr, size);
}
