/* ring_producer: pushes N items {Seq: i, Producer: pid, Check} into a Go
 * ring (shmring.Ring[interop.Item]).
 *
 *   ring_producer SPEC N [PAUSE_EVERY PAUSE_US]
 *
 * Every PAUSE_EVERY items it sleeps PAUSE_US microseconds, so that a Go
 * consumer finds the ring empty and parks, and this producer's publish has
 * to wake it. Prints one line:
 *   produced N items in S s parks=P wakes=W
 */
#define SHMKIT_IMPLEMENTATION
#include "shmkit.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "item.h"

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s SPEC N [PAUSE_EVERY PAUSE_US]\n", argv[0]);
		return 1;
	}
	const char *spec = argv[1];
	uint64_t n = strtoull(argv[2], NULL, 10);
	uint64_t pause_every = argc > 3 ? strtoull(argv[3], NULL, 10) : 0;
	uint64_t pause_us = argc > 4 ? strtoull(argv[4], NULL, 10) : 0;
	char type[256];
	shmkit_ring *r = shmkit_ring_open(spec, item_type(type, sizeof type), sizeof(item), _Alignof(item));
	if (!r) {
		fprintf(stderr, "ring_producer: %s\n", shmkit_last_error());
		return shmkit_last_code() == SHMKIT_ETYPE ? 2 : 1;
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	uint32_t pid = (uint32_t)getpid();
	for (uint64_t i = 0; i < n; i++) {
		item it = {i, pid, item_check(i)};
		int rc = shmkit_ring_push(r, &it, 30LL * 1000000000LL);
		if (rc != SHMKIT_OK) {
			fprintf(stderr, "ring_producer: push %" PRIu64 ": %s (%s)\n", i, shmkit_strerror(rc), shmkit_last_error());
			return 1;
		}
		if (pause_every && (i + 1) % pause_every == 0 && pause_us)
			usleep((useconds_t)pause_us);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	shmkit_wait_stats st;
	shmkit_ring_stats(r, &st);
	printf("produced %" PRIu64 " items in %.6f s parks=%" PRIu64 " wakes=%" PRIu64 "\n", n, secs, st.parks, st.wakes);
	shmkit_ring_close(r);
	return 0;
}
