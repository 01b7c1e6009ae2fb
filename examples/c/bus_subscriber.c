/* bus_subscriber: subscribes to a Go bus (shmbus.Bus[interop.Item]) and
 * reads until the publisher closes it for writes, checking that the
 * messages arrive in order with the right Check words.
 *
 *   bus_subscriber SPEC [PAUSE_EVERY PAUSE_US]
 *
 * Prints "joined cursor=C" once subscribed (the Go side may start
 * publishing then), and at the end:
 *   received N messages first=F last=L lagged=K
 */
#define SHMKIT_IMPLEMENTATION
#include "shmkit.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "item.h"

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s SPEC [PAUSE_EVERY PAUSE_US]\n", argv[0]);
		return 1;
	}
	uint64_t pause_every = argc > 2 ? strtoull(argv[2], NULL, 10) : 0;
	uint64_t pause_us = argc > 3 ? strtoull(argv[3], NULL, 10) : 0;
	char type[256];
	shmkit_bus_sub *s = shmkit_bus_subscribe(argv[1], item_type(type, sizeof type), sizeof(item), _Alignof(item), 0);
	if (!s) {
		fprintf(stderr, "bus_subscriber: %s\n", shmkit_last_error());
		return shmkit_last_code() == SHMKIT_ETYPE ? 2 : 1;
	}
	printf("joined cursor=%" PRIu64 "\n", shmkit_bus_cursor(s));
	fflush(stdout);
	uint64_t n = 0, first = 0, last = 0, lagged = 0;
	for (;;) {
		item it;
		int rc = shmkit_bus_next(s, &it, 30LL * 1000000000LL);
		if (rc == SHMKIT_ECLOSED)
			break;
		if (rc == SHMKIT_ELAGGED) {
			lagged += shmkit_bus_missed(s);
			continue;
		}
		if (rc != SHMKIT_OK) {
			fprintf(stderr, "bus_subscriber: next: %s (%s)\n", shmkit_strerror(rc), shmkit_last_error());
			return 1;
		}
		if (n == 0)
			first = it.Seq;
		else if (it.Seq != last + 1 && lagged == 0) {
			fprintf(stderr, "bus_subscriber: message %" PRIu64 " after %" PRIu64 "\n", it.Seq, last);
			return 1;
		}
		if (it.Check != item_check(it.Seq)) {
			fprintf(stderr, "bus_subscriber: message %" PRIu64 ": bad check %#x\n", it.Seq, it.Check);
			return 1;
		}
		last = it.Seq;
		n++;
		if (pause_every && n % pause_every == 0 && pause_us)
			usleep((useconds_t)pause_us);
	}
	printf("received %" PRIu64 " messages first=%" PRIu64 " last=%" PRIu64 " lagged=%" PRIu64 "\n", n, first, last, lagged);
	shmkit_bus_close(s);
	return 0;
}
