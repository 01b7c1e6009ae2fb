/* The native half of shmkit's Python package: C11 atomics and futex calls
 * on words in shared memory, for the consumers in shmkit/native.py (the
 * ring consumer and the bus subscriber, which store cursors, claim role
 * words and wake Go processes parked on a Notifier).
 *
 * Every operation is one C11 atomic on a naturally aligned word, with the
 * ordering docs/FORMAT.md asks for: cursor stores and the Dekker handshake
 * of the Notifier are sequentially consistent; loads that make slot
 * contents visible are acquire (seq_cst here, which implies it). Futex
 * calls are process-shared (no FUTEX_PRIVATE_FLAG): the waiter or waker is
 * in another process.
 *
 * When built with -DSHMKIT_PY_HEADER and -I pointing at include/ (what
 * python3 -m shmkit.build does when it finds include/shmkit.h), the
 * library also carries the header-only C library's implementation, and
 * shmkit.native consumes through it (shmkit_ring_*, shmkit_bus_*).
 *
 * Build: python3 -m shmkit.build (gcc -O2 -std=c11 -shared -fPIC).
 */
#define _GNU_SOURCE
#ifdef SHMKIT_PY_HEADER
#define SHMKIT_IMPLEMENTATION
#include "shmkit.h"
#endif
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define API __attribute__((visibility("default")))

API int shkpy_abi(void) { return 1; }

#ifdef SHMKIT_PY_HEADER
API int shkpy_has_header(void) { return 1; }
#else
API int shkpy_has_header(void) { return 0; }
#endif

API uint64_t shkpy_load64(const void *p) { return atomic_load((_Atomic uint64_t *)p); }
API uint32_t shkpy_load32(const void *p) { return atomic_load((_Atomic uint32_t *)p); }
API void shkpy_store64(void *p, uint64_t v) { atomic_store((_Atomic uint64_t *)p, v); }
API void shkpy_store32(void *p, uint32_t v) { atomic_store((_Atomic uint32_t *)p, v); }
API uint64_t shkpy_add64(void *p, uint64_t v) { return atomic_fetch_add((_Atomic uint64_t *)p, v) + v; }

API int shkpy_cas64(void *p, uint64_t old, uint64_t new_) {
	return atomic_compare_exchange_strong((_Atomic uint64_t *)p, &old, new_);
}

API int shkpy_cas32(void *p, uint32_t old, uint32_t new_) {
	return atomic_compare_exchange_strong((_Atomic uint32_t *)p, &old, new_);
}

/* Copy n bytes of slot data, then an acquire fence: the plain loads of the
 * copy are ordered before any later load (a seqlock's or an Overwrite
 * slot's second look at its sequence word). */
API void shkpy_copy_acquire(void *dst, const void *src, size_t n) {
	memcpy(dst, src, n);
	atomic_thread_fence(memory_order_acquire);
}

/* FUTEX_WAIT while *p == val, at most timeout_ns (<0: forever). Returns 0
 * when woken, or errno (EAGAIN: the word changed; ETIMEDOUT; EINTR). */
API int shkpy_futex_wait(void *p, uint32_t val, int64_t timeout_ns) {
	struct timespec ts, *tsp = NULL;
	if (timeout_ns >= 0) {
		ts.tv_sec = timeout_ns / 1000000000;
		ts.tv_nsec = timeout_ns % 1000000000;
		tsp = &ts;
	}
	long r = syscall(SYS_futex, p, FUTEX_WAIT, val, tsp, NULL, 0);
	return r == 0 ? 0 : errno;
}

API int shkpy_futex_wake(void *p, int n) {
	long r = syscall(SYS_futex, p, FUTEX_WAKE, n, NULL, NULL, 0);
	return r < 0 ? -errno : (int)r;
}

/* Notifier.Notify (docs/FORMAT.md 5.2): after the caller's seq_cst store
 * of the state waiters check, wake every parked waiter if the parked bit
 * is set. One load and nothing else when nobody is parked. */
#define PARKED 0x80000000u
API void shkpy_notify(void *p) {
	_Atomic uint32_t *w = (_Atomic uint32_t *)p;
	uint32_t cur = atomic_load(w);
	if (!(cur & PARKED))
		return;
	for (;;) {
		uint32_t next = (cur + 1) & ~PARKED;
		if (atomic_compare_exchange_strong(w, &cur, next))
			break;
		if (!(cur & PARKED))
			return; /* another notifier cleared it and wakes them */
	}
	syscall(SYS_futex, p, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* Notifier arm step: set the parked bit. Returns the word to sleep on, or
 * 0 when the word changed under us (re-check instead of sleeping). */
API uint32_t shkpy_arm(void *p) {
	_Atomic uint32_t *w = (_Atomic uint32_t *)p;
	uint32_t cur = atomic_load(w);
	if (cur & PARKED)
		return cur;
	if (atomic_compare_exchange_strong(w, &cur, cur | PARKED))
		return cur | PARKED;
	return 0;
}
