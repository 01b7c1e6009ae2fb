/* map_get: looks keys up in a Go map (shmmap.Map[uint64, interop.Item])
 * without locks (the seqlock read protocol).
 *
 *   map_get SPEC KEY...
 *
 * Prints one line per key: "KEY seq=S producer=P check=C" or "KEY absent".
 */
#define SHMKIT_IMPLEMENTATION
#include "shmkit.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "item.h"

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s SPEC KEY...\n", argv[0]);
		return 1;
	}
	char type[256];
	shmkit_map *m = shmkit_map_open(argv[1], "uint64", 8, 8, item_type(type, sizeof type), sizeof(item), _Alignof(item));
	if (!m) {
		fprintf(stderr, "map_get: %s\n", shmkit_last_error());
		return shmkit_last_code() == SHMKIT_ETYPE ? 2 : 1;
	}
	for (int i = 2; i < argc; i++) {
		uint64_t k = strtoull(argv[i], NULL, 10);
		item v;
		int rc = shmkit_map_get(m, &k, &v);
		if (rc < 0) {
			fprintf(stderr, "map_get: %s\n", shmkit_last_error());
			return 1;
		}
		if (rc == 0)
			printf("%" PRIu64 " absent\n", k);
		else
			printf("%" PRIu64 " seq=%" PRIu64 " producer=%u check=%u\n", k, v.Seq, v.Producer, v.Check);
	}
	shmkit_map_close(m);
	return 0;
}
