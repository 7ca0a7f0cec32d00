/* The guard of leak_check.c: this test leaks on purpose, so in a build with
 * AddressSanitizer it must fail (meson runs it with should_fail). Should
 * the leak check stop working (a Criterion that calls the body another
 * way, the link argument lost), the test passes and meson reports the
 * guard as failed. */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

/* volatile: the allocation and the stores cannot be optimized away. */
static void *volatile lost;

Test(leak_check, a_leak_fails_the_test)
{
	lost = malloc(24);
	cr_assert_not_null(lost);
	memset(lost, 1, 24);
	lost = NULL;
}
