// protocol_floor: shmkit's hand-off protocols in plain C, with nothing
// around them (no roles, no validation, no waking, no API), between two
// processes over MAP_SHARED memory. Each figure is what that protocol costs
// on this machine when written as tightly as C allows; scripts/anchors.py
// runs it in every round beside the shmkit rows it bounds.
//
//   ring_item_{8,64}B_seqcst   per-item ring, the protocol of shmring's
//                              Push/Pop: copy the item into its slot, then
//                              a seq_cst store of the tail (the first half
//                              of the wake handshake: XCHG on amd64); the
//                              consumer copies it out and stores its head
//                              (seq_cst). M items/s.
//   ring_item_{8,64}B_release  the same with release stores (a plain MOV):
//                              what the ring would cost if nothing ever
//                              had to be woken. M items/s.
//   ring_pair_rtt_ns           two such rings of 8-byte items, one each
//                              way, ping-pong, laid out as shmring lays
//                              out a ring: every hand-off moves the slot's
//                              line and the tail's, and stores a head,
//                              where the cache-line floor moves one line.
//                              Mean ns.
//   vyukov_8B_casseq           the bounded MPMC queue shmqueue builds on
//                              (Vyukov), one producer process, one
//                              consumer process: CAS of the cursor, the
//                              slot, a CAS publishing the slot's sequence
//                              (shmqueue's where membarrier is refused:
//                              it is also the wake handshake's fence).
//                              M items/s.
//   vyukov_8B_release          the same with the sequence stored by a
//                              release store (shmqueue's light wakes).
//
// Build: cc -O2 -o protocol_floor scripts/protocol_floor.c
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *shared(size_t n)
{
	void *p = mmap(0, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		_exit(1);
	}
	memset(p, 0, n); /* populate: no first-touch faults in the timed loop */
	return p;
}

#define SLOTS 4096
#define MAXITEM 64

struct ring {
	_Alignas(128) _Atomic uint64_t tail;
	_Alignas(128) _Atomic uint64_t head;
	_Alignas(128) unsigned char data[SLOTS * MAXITEM];
};

/* One item per hand-off; the consumer reloads the tail only when it has
 * caught up, the producer the head only when full (shmring's caches).
 * Always inlined, so that each call's constant size makes the copies
 * inline moves (a call to memcpy per item was most of the 8-byte cost). */
static inline __attribute__((always_inline)) double ring_items(int size, int seqcst, uint64_t n)
{
	struct ring *r = shared(sizeof *r);
	memory_order o = seqcst ? memory_order_seq_cst : memory_order_release;
	pid_t p = fork();
	if (p == 0) {
		unsigned char item[MAXITEM];
		uint64_t tc = 0;
		for (uint64_t h = 0; h < n; h++) {
			while (h == tc)
				tc = atomic_load_explicit(&r->tail, memory_order_acquire);
			memcpy(item, r->data + (h % SLOTS) * size, size);
			uint64_t v;
			memcpy(&v, item, 8);
			if (v != h)
				_exit(3);
			atomic_store_explicit(&r->head, h + 1, o);
		}
		_exit(0);
	}
	unsigned char item[MAXITEM] = {0};
	uint64_t hc = 0;
	double t0 = now();
	for (uint64_t t = 0; t < n; t++) {
		while (t - hc >= SLOTS)
			hc = atomic_load_explicit(&r->head, memory_order_acquire);
		memcpy(item, &t, 8);
		memcpy(r->data + (t % SLOTS) * size, item, size);
		atomic_store_explicit(&r->tail, t + 1, o);
	}
	int st;
	waitpid(p, &st, 0);
	double d = now() - t0;
	munmap(r, sizeof *r);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? n / d / 1e6 : -1;
}

/* Ring pair ping-pong, one 8-byte item each way per round trip, laid out
 * as shmring lays out a ring: per direction a control page with the tail
 * and the head on lines of their own, and the slots in a page of their
 * own; the consumer of each item releases it with a head store, as Pop
 * does. (Tail and slots packed together, with no head, measure about 15%
 * faster here: that is a different protocol.) */
static double ring_pair_rtt(uint64_t n)
{
	unsigned char *b = shared(4 * 4096);
	_Atomic uint64_t *tail[2] = {(void *)b, (void *)(b + 4096)};
	_Atomic uint64_t *head[2] = {(void *)(b + 128), (void *)(b + 4096 + 128)};
	uint64_t *slot[2] = {(void *)(b + 2 * 4096), (void *)(b + 3 * 4096)};
	pid_t p = fork();
	if (p == 0) {
		for (uint64_t i = 0; i < n; i++) {
			while (atomic_load(tail[0]) <= i)
				;
			uint64_t v = slot[0][i % 16];
			atomic_store(head[0], i + 1);
			slot[1][i % 16] = v;
			atomic_store(tail[1], i + 1);
		}
		_exit(0);
	}
	double t0 = now();
	for (uint64_t i = 0; i < n; i++) {
		slot[0][i % 16] = i;
		atomic_store(tail[0], i + 1);
		while (atomic_load(tail[1]) <= i)
			;
		if (slot[1][i % 16] != i)
			return -1;
		atomic_store(head[1], i + 1);
	}
	double el = now() - t0;
	waitpid(p, 0, 0);
	munmap(b, 4 * 4096);
	return el / n * 1e9;
}

struct vslot {
	_Atomic uint64_t seq;
	uint64_t val;
};

struct vqueue {
	_Alignas(128) _Atomic uint64_t enq;
	_Alignas(128) _Atomic uint64_t deq;
	_Alignas(128) struct vslot s[SLOTS];
};

static double vyukov(uint64_t n, int release)
{
	struct vqueue *q = shared(sizeof *q);
	for (uint64_t i = 0; i < SLOTS; i++)
		q->s[i].seq = i;
	pid_t p = fork();
	if (p == 0) {
		for (uint64_t k = 0; k < n;) {
			uint64_t pos = atomic_load(&q->deq);
			struct vslot *s = &q->s[pos % SLOTS];
			uint64_t seq = atomic_load(&s->seq);
			if (seq != pos + 1 || !atomic_compare_exchange_strong(&q->deq, &pos, pos + 1))
				continue;
			if (s->val != k)
				_exit(3);
			uint64_t want = pos + 1;
			if (release)
				atomic_store_explicit(&s->seq, pos + SLOTS, memory_order_release);
			else
				atomic_compare_exchange_strong(&s->seq, &want, pos + SLOTS);
			k++;
		}
		_exit(0);
	}
	double t0 = now();
	for (uint64_t k = 0; k < n;) {
		uint64_t pos = atomic_load(&q->enq);
		struct vslot *s = &q->s[pos % SLOTS];
		uint64_t seq = atomic_load(&s->seq);
		if (seq != pos || !atomic_compare_exchange_strong(&q->enq, &pos, pos + 1))
			continue;
		s->val = k;
		uint64_t want = pos;
		if (release)
			atomic_store_explicit(&s->seq, pos + 1, memory_order_release);
		else
			atomic_compare_exchange_strong(&s->seq, &want, pos + 1);
		k++;
	}
	int st;
	waitpid(p, &st, 0);
	double d = now() - t0;
	munmap(q, sizeof *q);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? n / d / 1e6 : -1;
}

int main(void)
{
	printf("ring_item_8B_seqcst %.1f\n", ring_items(8, 1, 10000000));
	printf("ring_item_8B_release %.1f\n", ring_items(8, 0, 10000000));
	printf("ring_item_64B_seqcst %.1f\n", ring_items(64, 1, 10000000));
	printf("ring_item_64B_release %.1f\n", ring_items(64, 0, 10000000));
	printf("ring_pair_rtt_ns %.1f\n", ring_pair_rtt(1000000));
	printf("vyukov_8B_casseq %.1f\n", vyukov(10000000, 0));
	printf("vyukov_8B_release %.1f\n", vyukov(10000000, 1));
	return 0;
}
