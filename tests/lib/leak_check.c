/* A leak fails the Criterion test that made it, in a build with
 * AddressSanitizer (meson -Dsanitize=true). Linked into every unit test
 * executable (criterion_leaks_dep in meson.build).
 *
 * Why: Criterion runs each test in a child process and decides pass or
 * fail when the test function returns, before .fini and before the child
 * exits. LeakSanitizer's own check runs at exit: it prints its report, but
 * the verdict is already made, so a leaking test passes (and an assert in
 * .fini changes nothing either). So the check has to run inside the test,
 * after its body.
 *
 * How: the linker wraps criterion_internal_test_main() (ld
 * --wrap=criterion_internal_test_main), which every Test() trampoline
 * calls with the test's body. The wrapper hands Criterion a body of its
 * own that runs the real one and then asks LeakSanitizer for a recoverable
 * check: anything allocated and no longer reachable fails the test with an
 * assert, after LeakSanitizer's report with the allocation's stack.
 * Memory a test frees in .fini is still reachable then (from the globals
 * .init filled), so it is not taken for a leak. A body that failed an
 * assert never gets to the check (it failed already). The leaked blocks
 * are reported a second time when the child exits; that report changes
 * nothing. Without AddressSanitizer the wrapper only passes the body on. */
#include <criterion/criterion.h>

#include <stddef.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define LEAK_CHECK 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LEAK_CHECK 1
#endif
#endif
#ifdef LEAK_CHECK
#include <sanitizer/lsan_interface.h>
#endif

void __real_criterion_internal_test_main(void (*fn)(void));
void __wrap_criterion_internal_test_main(void (*fn)(void));

#ifdef LEAK_CHECK
/* The test's own body. Each test runs in a process of its own, so one
 * static is enough. */
static void (*body)(void);

static void check(void)
{
	cr_assert_eq(__lsan_do_recoverable_leak_check(), 0,
		     "memory leaked (LeakSanitizer's report above)");
}

static void run(void)
{
	body();
	check();
}

/* A ParameterizedTest's body takes its parameter: Criterion casts the
 * function back to that type when the test is parameterized. */
static void run_param(void *param)
{
	((void (*)(void *))body)(param);
	check();
}

/* Whether the running test is a ParameterizedTest. Criterion's copy of the
 * test's extra data (where this is recorded) is not aligned for its type,
 * so the field is read as bytes rather than through the struct. */
static bool parameterized(void)
{
	const char *data = (const char *)criterion_current_test->data;
	struct criterion_test_params (*param)(void);
	memcpy(&param,
	       data + offsetof(struct criterion_test_extra_data, param_),
	       sizeof param);
	return param != NULL;
}
#endif

void __wrap_criterion_internal_test_main(void (*fn)(void))
{
#ifdef LEAK_CHECK
	body = fn;
	if (parameterized()) {
		__real_criterion_internal_test_main(
			(void (*)(void))(void (*)(void *))run_param);
	} else {
		__real_criterion_internal_test_main(run);
	}
#else
	__real_criterion_internal_test_main(fn);
#endif
}
