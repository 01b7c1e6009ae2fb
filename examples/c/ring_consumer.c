/* ring_consumer: pops items from a Go ring (shmring.Ring[interop.Item])
 * and checks them: sequence numbers in order from the first one seen,
 * Check words right.
 *
 *   ring_consumer SPEC N [PAUSE_EVERY PAUSE_US] [--bad]
 *
 * Every PAUSE_EVERY items it sleeps PAUSE_US microseconds, so that a Go
 * producer fills the ring and parks, and this consumer's release has to
 * wake it. --bad opens the ring with a mismatched struct (the fingerprint
 * check must refuse it: exit status 2). Prints one line:
 *   consumed N items in S s (R items/s) first=F parks=P wakes=W
 */
#define SHMKIT_IMPLEMENTATION
#include "shmkit.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "item.h"

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s SPEC N [PAUSE_EVERY PAUSE_US] [--bad]\n", argv[0]);
		return 1;
	}
	const char *spec = argv[1];
	uint64_t n = strtoull(argv[2], NULL, 10);
	uint64_t pause_every = 0, pause_us = 0;
	int bad = 0;
	for (int i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--bad") == 0)
			bad = 1;
		else if (!pause_every)
			pause_every = strtoull(argv[i], NULL, 10);
		else
			pause_us = strtoull(argv[i], NULL, 10);
	}
	char type[256];
	shmkit_ring *r = bad ? shmkit_ring_open(spec, bad_item_type(type, sizeof type), sizeof(bad_item), _Alignof(bad_item))
	                     : shmkit_ring_open(spec, item_type(type, sizeof type), sizeof(item), _Alignof(item));
	if (!r) {
		fprintf(stderr, "ring_consumer: %s\n", shmkit_last_error());
		return shmkit_last_code() == SHMKIT_ETYPE ? 2 : 1;
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	uint64_t first = 0;
	for (uint64_t i = 0; i < n; i++) {
		item it;
		int rc = shmkit_ring_pop(r, &it, 30LL * 1000000000LL);
		if (rc != SHMKIT_OK) {
			fprintf(stderr, "ring_consumer: pop %" PRIu64 ": %s (%s)\n", i, shmkit_strerror(rc), shmkit_last_error());
			return 1;
		}
		if (i == 0)
			first = it.Seq;
		if (it.Seq != first + i || it.Check != item_check(it.Seq)) {
			fprintf(stderr, "ring_consumer: item %" PRIu64 ": seq %" PRIu64 " check %#x, want seq %" PRIu64 " check %#x\n", i,
			        it.Seq, it.Check, first + i, item_check(first + i));
			return 1;
		}
		if (pause_every && (i + 1) % pause_every == 0 && pause_us)
			usleep((useconds_t)pause_us);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	shmkit_wait_stats st;
	shmkit_ring_stats(r, &st);
	printf("consumed %" PRIu64 " items in %.6f s (%.0f items/s) first=%" PRIu64 " parks=%" PRIu64 " wakes=%" PRIu64 "\n", n, secs,
	       secs > 0 ? (double)n / secs : 0.0, first, st.parks, st.wakes);
	shmkit_ring_close(r);
	return 0;
}
