/* bytering_read: reads N records from a Go byte ring (shmring.ByteRing)
 * and checks them: record i has length i % 300 and byte j is (i + j) & 0xff.
 *
 *   bytering_read SPEC N
 *
 * Prints "read N records, B bytes".
 */
#define SHMKIT_IMPLEMENTATION
#include "shmkit.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s SPEC N\n", argv[0]);
		return 1;
	}
	uint64_t n = strtoull(argv[2], NULL, 10), bytes = 0;
	shmkit_bytering *b = shmkit_bytering_open(argv[1]);
	if (!b) {
		fprintf(stderr, "bytering_read: %s\n", shmkit_last_error());
		return 1;
	}
	static uint8_t buf[1 << 16];
	for (uint64_t i = 0; i < n; i++) {
		int64_t len = shmkit_bytering_read(b, buf, sizeof buf, 30LL * 1000000000LL);
		if (len < 0) {
			fprintf(stderr, "bytering_read: record %" PRIu64 ": %s (%s)\n", i, shmkit_strerror((int)len), shmkit_last_error());
			return 1;
		}
		if ((uint64_t)len != i % 300) {
			fprintf(stderr, "bytering_read: record %" PRIu64 " has %" PRId64 " bytes\n", i, len);
			return 1;
		}
		for (int64_t j = 0; j < len; j++)
			if (buf[j] != (uint8_t)(i + (uint64_t)j)) {
				fprintf(stderr, "bytering_read: record %" PRIu64 " byte %" PRId64 " is %u\n", i, j, buf[j]);
				return 1;
			}
		bytes += (uint64_t)len;
	}
	printf("read %" PRIu64 " records, %" PRIu64 " bytes\n", n, bytes);
	shmkit_bytering_close(b);
	return 0;
}
