/* value_rw: opens a Go value (layout.Value[interop.Item]), prints it, and
 * stores Check = Seq + 1 with an atomic store.
 *
 *   value_rw SPEC
 */
#define SHMKIT_IMPLEMENTATION
#include "shmkit.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>

#include "item.h"

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s SPEC\n", argv[0]);
		return 1;
	}
	char type[256];
	void *p;
	shmkit_segment *s = shmkit_value_open(argv[1], item_type(type, sizeof type), sizeof(item), _Alignof(item), &p);
	if (!s) {
		fprintf(stderr, "value_rw: %s\n", shmkit_last_error());
		return shmkit_last_code() == SHMKIT_ETYPE ? 2 : 1;
	}
	item *v = (item *)p;
	uint64_t seq = atomic_load((_Atomic uint64_t *)&v->Seq);
	printf("seq=%" PRIu64 " producer=%u check=%u\n", seq, v->Producer, v->Check);
	atomic_store((_Atomic uint32_t *)&v->Check, (uint32_t)(seq + 1));
	shmkit_close(s);
	return 0;
}
