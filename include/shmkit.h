/*
 * shmkit.h: a header-only C11 library that speaks shmkit's on-segment
 * format (docs/FORMAT.md, format version 1) beside Go processes.
 * Linux only (futex, /proc); gcc or clang, -std=c11.
 *
 * USE
 *   In exactly one .c file:   #define SHMKIT_IMPLEMENTATION
 *                             #include "shmkit.h"
 *   Elsewhere just #include "shmkit.h" (declarations only).
 *   Shared library (Python ctypes, other languages):
 *     gcc -std=c11 -O2 -fPIC -shared -DSHMKIT_IMPLEMENTATION \
 *         -x c include/shmkit.h -o libshmkit.so
 *   Every API function is a plain extern function; handles are opaque
 *   pointers; no API is macro-only. Not thread-safe per handle (one thread
 *   per ring end / subscriber), like the Go handles.
 *
 * API SUMMARY (all functions return SHMKIT_OK (0) or a negative shmkit_err
 * unless noted; on failure shmkit_last_error() says what happened)
 *
 *   Errors and helpers
 *     const char *shmkit_last_error(void);          thread-local message
 *     const char *shmkit_strerror(int err);
 *     uint64_t    shmkit_xxh64(const void *p, size_t n, uint64_t seed);
 *     const char *shmkit_arch(void);                "amd64", "arm64", ...
 *   Type descriptions (the fingerprint; FORMAT.md section 4)
 *     typedef struct { const char *name; const char *type; uint64_t offset; } shmkit_field;
 *     int shmkit_struct_text(char *out, size_t cap, const shmkit_field *f,
 *                            size_t nfields, uint64_t size, uint64_t align);
 *         builds "struct{Seq uint64@0; ...}#16/8" (field types are layout
 *         texts too: "uint64", "[4]uint8", or a nested struct text)
 *     int shmkit_layout_string(char *out, size_t cap, const char *type_text);
 *         prefixes "ARCH/le ": the full layout string Go stores
 *     uint64_t shmkit_fingerprint(const char *type_text);
 *   Segments
 *     shmkit_segment *shmkit_open(const char *spec, uint32_t kind, int64_t init_timeout_ms);
 *         spec: "posix:/NAME", "file:PATH", "sysv:KEY", or a path; kind:
 *         SHMKIT_KIND_* or 0 for any; validates magic, version, checksum,
 *         bounds; NULL on failure (see shmkit_last_error / shmkit_last_code)
 *     int shmkit_last_code(void);                   shmkit_err of the last failure
 *     void shmkit_close(shmkit_segment *s);
 *     const shmkit_header *shmkit_header_of(const shmkit_segment *s);
 *     void *shmkit_region(const shmkit_segment *s, uint32_t i, uint64_t *size);
 *     int shmkit_check_type(const shmkit_segment *s, uint32_t i,
 *                           const char *type_text, uint64_t size, uint64_t align);
 *         SHMKIT_ETYPE (with both layout strings in the message) on mismatch
 *     const char *shmkit_type_layout(const shmkit_segment *s, uint32_t i);
 *   Ring (kind 2): one producer, one consumer; roles claimed on first use
 *     shmkit_ring *shmkit_ring_open(const char *spec, const char *type_text,
 *                                   uint64_t size, uint64_t align);
 *     int     shmkit_ring_push(shmkit_ring *r, const void *item, int64_t timeout_ns);
 *     int64_t shmkit_ring_push_batch(shmkit_ring *r, const void *items, size_t n, int64_t timeout_ns);
 *     int     shmkit_ring_pop(shmkit_ring *r, void *out, int64_t timeout_ns);
 *     int64_t shmkit_ring_pop_batch(shmkit_ring *r, void *out, size_t max, int64_t timeout_ns);
 *     void   *shmkit_ring_peek(shmkit_ring *r, size_t max, size_t *n, int64_t timeout_ns);
 *     int     shmkit_ring_advance(shmkit_ring *r, size_t k);
 *     uint64_t shmkit_ring_capacity(const shmkit_ring *r);
 *     void    shmkit_ring_set_wait(shmkit_ring *r, int64_t spin_ns, int64_t yield_ns);
 *     void    shmkit_ring_stats(const shmkit_ring *r, shmkit_wait_stats *st);
 *     void    shmkit_ring_close(shmkit_ring *r);  releases roles, unmaps
 *         timeout_ns: < 0 wait forever, 0 do not wait (SHMKIT_EEMPTY /
 *         SHMKIT_EFULL), > 0 wait at most that long (SHMKIT_ETIMEDOUT).
 *         Consuming calls return SHMKIT_ECLOSED once the Go producer
 *         called CloseWrites and every item was read; a producer then gets
 *         SHMKIT_ECLOSED too.
 *         Batch calls return the count moved (>= 1) or a negative error.
 *   Byte ring (kind 3), consumer side
 *     shmkit_bytering *shmkit_bytering_open(const char *spec);
 *     int64_t shmkit_bytering_read(shmkit_bytering *b, void *buf, size_t cap, int64_t timeout_ns);
 *         copies the next record and releases it; returns its length;
 *         SHMKIT_ESHORT (record left in place) if cap is too small
 *     void shmkit_bytering_close(shmkit_bytering *b);
 *   Bus (kind 6), subscriber side
 *     shmkit_bus_sub *shmkit_bus_subscribe(const char *spec, const char *type_text,
 *                                          uint64_t size, uint64_t align, int from_oldest);
 *     int shmkit_bus_next(shmkit_bus_sub *s, void *out, int64_t timeout_ns);
 *         SHMKIT_ECLOSED once closed for writes and drained;
 *         SHMKIT_ELAGGED (Overwrite bus) after a lap: shmkit_bus_missed()
 *     uint64_t shmkit_bus_missed(const shmkit_bus_sub *s);
 *     uint64_t shmkit_bus_cursor(const shmkit_bus_sub *s);
 *     void shmkit_bus_close(shmkit_bus_sub *s);    leaves the table, unmaps
 *   Map (kind 5), lock-free Get
 *     shmkit_map *shmkit_map_open(const char *spec, const char *key_text, uint64_t ksize,
 *                                 uint64_t kalign, const char *val_text, uint64_t vsize,
 *                                 uint64_t valign);
 *     int shmkit_map_get(shmkit_map *m, const void *key, void *val);
 *         1 found (val filled), 0 absent, SHMKIT_EBUSY while a writer
 *         holds the shard (or died in it): retry later. Keys must have no
 *         padding bytes.
 *     void shmkit_map_close(shmkit_map *m);
 *   Value (kind 1)
 *     shmkit_segment *shmkit_value_open(const char *spec, const char *type_text,
 *                                       uint64_t size, uint64_t align, void **ptr);
 *         *ptr is the shared T; valid until shmkit_close.
 */
#ifndef SHMKIT_H
#define SHMKIT_H

/* The implementation needs Linux interfaces (syscall, strndup): include
 * this header before any system header in the implementing file, or
 * compile with -D_GNU_SOURCE. */
#if defined(SHMKIT_IMPLEMENTATION) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE
#endif

#include <stddef.h>
#include <stdint.h>

#ifndef SHMKIT_API
#define SHMKIT_API extern
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Errors (negative return values). */
typedef enum shmkit_err {
	SHMKIT_OK = 0,
	SHMKIT_EEMPTY = -1,    /* nothing to read now */
	SHMKIT_EFULL = -2,     /* no room now */
	SHMKIT_ETIMEDOUT = -3, /* the timeout passed */
	SHMKIT_ECLOSED = -4,   /* closed for writes and drained */
	SHMKIT_ESYS = -5,      /* a system call failed (errno in the message) */
	SHMKIT_EBADMAGIC = -6, /* not a shmkit segment */
	SHMKIT_EVERSION = -7,  /* another format version */
	SHMKIT_ECORRUPT = -8,  /* the segment fails validation */
	SHMKIT_ENOTREADY = -9, /* the creator has not finished (or died) */
	SHMKIT_EKIND = -10,    /* another kind of structure */
	SHMKIT_ETYPE = -11,    /* element type mismatch (fingerprint) */
	SHMKIT_EROLE = -12,    /* the role is held by a live process */
	SHMKIT_EBUSY = -13,    /* try again later */
	SHMKIT_EINVAL = -14,   /* invalid argument */
	SHMKIT_ELAGGED = -15,  /* subscriber lapped: messages were lost */
	SHMKIT_ESHORT = -16,   /* buffer too small */
	SHMKIT_ECAPACITY = -17 /* no free record */
} shmkit_err;

/* Structure kinds (Header.Kind). */
enum {
	SHMKIT_KIND_ANY = 0,
	SHMKIT_KIND_VALUE = 1,
	SHMKIT_KIND_RING = 2,
	SHMKIT_KIND_BYTERING = 3,
	SHMKIT_KIND_QUEUE = 4,
	SHMKIT_KIND_MAP = 5,
	SHMKIT_KIND_BUS = 6
};

/* The segment header, as in FORMAT.md section 3 (464 bytes). */
typedef struct shmkit_header {
	uint8_t magic[8];
	uint32_t version;
	uint32_t header_size;
	uint32_t kind;
	uint32_t num_types;
	uint32_t num_regions;
	uint32_t flags;
	uint64_t segment_size;
	uint64_t capacity;
	int32_t creator_pid;
	uint32_t pad0;
	uint64_t creator_start;
	int64_t created_unix;
	uint64_t type_desc_off;
	uint64_t type_desc_len;
	struct {
		uint64_t fingerprint, size, align;
	} types[2];
	uint64_t params[8];
	struct {
		uint64_t off, size;
	} regions[8];
	uint64_t checksum;
	uint32_t state;
	uint8_t pad1[124];
} shmkit_header;

typedef struct shmkit_field {
	const char *name;   /* the Go field name */
	const char *type;   /* its layout text: "uint64", "[8]uint8", "struct{...}#N/A" */
	uint64_t offset;    /* offsetof */
} shmkit_field;

/* Waiting statistics of a ring handle (diagnostics and tests). */
typedef struct shmkit_wait_stats {
	uint64_t parks;   /* times this handle slept in FUTEX_WAIT */
	uint64_t wakes;   /* times it issued FUTEX_WAKE for a parked peer */
	uint64_t notifies_skipped; /* peer parked but target not reached */
} shmkit_wait_stats;

typedef struct shmkit_segment shmkit_segment;
typedef struct shmkit_ring shmkit_ring;
typedef struct shmkit_bytering shmkit_bytering;
typedef struct shmkit_bus_sub shmkit_bus_sub;
typedef struct shmkit_map shmkit_map;

SHMKIT_API const char *shmkit_last_error(void);
SHMKIT_API int shmkit_last_code(void);
SHMKIT_API const char *shmkit_strerror(int err);
SHMKIT_API uint64_t shmkit_xxh64(const void *p, size_t n, uint64_t seed);
SHMKIT_API const char *shmkit_arch(void);
SHMKIT_API int shmkit_struct_text(char *out, size_t cap, const shmkit_field *f, size_t nfields, uint64_t size, uint64_t align);
SHMKIT_API int shmkit_layout_string(char *out, size_t cap, const char *type_text);
SHMKIT_API uint64_t shmkit_fingerprint(const char *type_text);

SHMKIT_API shmkit_segment *shmkit_open(const char *spec, uint32_t kind, int64_t init_timeout_ms);
SHMKIT_API void shmkit_close(shmkit_segment *s);
SHMKIT_API const shmkit_header *shmkit_header_of(const shmkit_segment *s);
SHMKIT_API void *shmkit_region(const shmkit_segment *s, uint32_t i, uint64_t *size);
SHMKIT_API int shmkit_check_type(const shmkit_segment *s, uint32_t i, const char *type_text, uint64_t size, uint64_t align);
SHMKIT_API const char *shmkit_type_layout(const shmkit_segment *s, uint32_t i);

SHMKIT_API shmkit_ring *shmkit_ring_open(const char *spec, const char *type_text, uint64_t size, uint64_t align);
SHMKIT_API int shmkit_ring_push(shmkit_ring *r, const void *item, int64_t timeout_ns);
SHMKIT_API int64_t shmkit_ring_push_batch(shmkit_ring *r, const void *items, size_t n, int64_t timeout_ns);
SHMKIT_API int shmkit_ring_pop(shmkit_ring *r, void *out, int64_t timeout_ns);
SHMKIT_API int64_t shmkit_ring_pop_batch(shmkit_ring *r, void *out, size_t max, int64_t timeout_ns);
SHMKIT_API void *shmkit_ring_peek(shmkit_ring *r, size_t max, size_t *n, int64_t timeout_ns);
SHMKIT_API int shmkit_ring_advance(shmkit_ring *r, size_t k);
SHMKIT_API uint64_t shmkit_ring_capacity(const shmkit_ring *r);
SHMKIT_API void shmkit_ring_set_wait(shmkit_ring *r, int64_t spin_ns, int64_t yield_ns);
SHMKIT_API void shmkit_ring_stats(const shmkit_ring *r, shmkit_wait_stats *st);
SHMKIT_API void shmkit_ring_close(shmkit_ring *r);

SHMKIT_API shmkit_bytering *shmkit_bytering_open(const char *spec);
SHMKIT_API int64_t shmkit_bytering_read(shmkit_bytering *b, void *buf, size_t cap, int64_t timeout_ns);
SHMKIT_API void shmkit_bytering_close(shmkit_bytering *b);

SHMKIT_API shmkit_bus_sub *shmkit_bus_subscribe(const char *spec, const char *type_text, uint64_t size, uint64_t align, int from_oldest);
SHMKIT_API int shmkit_bus_next(shmkit_bus_sub *s, void *out, int64_t timeout_ns);
SHMKIT_API uint64_t shmkit_bus_missed(const shmkit_bus_sub *s);
SHMKIT_API uint64_t shmkit_bus_cursor(const shmkit_bus_sub *s);
SHMKIT_API void shmkit_bus_close(shmkit_bus_sub *s);

SHMKIT_API shmkit_map *shmkit_map_open(const char *spec, const char *key_text, uint64_t ksize, uint64_t kalign, const char *val_text, uint64_t vsize, uint64_t valign);
SHMKIT_API int shmkit_map_get(shmkit_map *m, const void *key, void *val);
SHMKIT_API void shmkit_map_close(shmkit_map *m);

SHMKIT_API shmkit_segment *shmkit_value_open(const char *spec, const char *type_text, uint64_t size, uint64_t align, void **ptr);

#ifdef __cplusplus
}
#endif

/* ===================================================================== */
#ifdef SHMKIT_IMPLEMENTATION

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SHMKIT__INTERNAL static inline

_Static_assert(sizeof(shmkit_header) == 464, "header size");
_Static_assert(offsetof(shmkit_header, creator_pid) == 48, "creator");
_Static_assert(offsetof(shmkit_header, types) == 88, "types");
_Static_assert(offsetof(shmkit_header, params) == 136, "params");
_Static_assert(offsetof(shmkit_header, regions) == 200, "regions");
_Static_assert(offsetof(shmkit_header, checksum) == 328, "checksum");
_Static_assert(offsetof(shmkit_header, state) == 336, "state");

typedef _Atomic uint64_t shmkit__a64;
typedef _Atomic uint32_t shmkit__a32;

/* ---- errors ---- */

static _Thread_local char shmkit__errbuf[1024];
static _Thread_local int shmkit__errcode;

SHMKIT__INTERNAL int shmkit__fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
SHMKIT__INTERNAL int shmkit__fail(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(shmkit__errbuf, sizeof shmkit__errbuf, fmt, ap);
	va_end(ap);
	shmkit__errcode = code;
	return code;
}

SHMKIT_API const char *shmkit_last_error(void) { return shmkit__errbuf; }
SHMKIT_API int shmkit_last_code(void) { return shmkit__errcode; }

SHMKIT_API const char *shmkit_strerror(int err)
{
	switch (err) {
	case SHMKIT_OK: return "ok";
	case SHMKIT_EEMPTY: return "empty";
	case SHMKIT_EFULL: return "full";
	case SHMKIT_ETIMEDOUT: return "timed out";
	case SHMKIT_ECLOSED: return "closed";
	case SHMKIT_ESYS: return "system call failed";
	case SHMKIT_EBADMAGIC: return "not a shmkit segment";
	case SHMKIT_EVERSION: return "unsupported format version";
	case SHMKIT_ECORRUPT: return "corrupt segment";
	case SHMKIT_ENOTREADY: return "segment not ready";
	case SHMKIT_EKIND: return "wrong structure kind";
	case SHMKIT_ETYPE: return "element type mismatch";
	case SHMKIT_EROLE: return "role held by a live process";
	case SHMKIT_EBUSY: return "busy";
	case SHMKIT_EINVAL: return "invalid argument";
	case SHMKIT_ELAGGED: return "lagged";
	case SHMKIT_ESHORT: return "buffer too small";
	case SHMKIT_ECAPACITY: return "no free record";
	}
	return "unknown error";
}

/* ---- xxhash64 (XXH64, Yann Collet), little-endian input reads ---- */

#define SHMKIT__P1 11400714785074694791ULL
#define SHMKIT__P2 14029467366897019727ULL
#define SHMKIT__P3 1609587929392839161ULL
#define SHMKIT__P4 9650029242287828579ULL
#define SHMKIT__P5 2870177450012600261ULL

SHMKIT__INTERNAL uint64_t shmkit__rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
SHMKIT__INTERNAL uint64_t shmkit__rd64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}
SHMKIT__INTERNAL uint32_t shmkit__rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
SHMKIT__INTERNAL uint64_t shmkit__round(uint64_t acc, uint64_t in)
{
	acc += in * SHMKIT__P2;
	acc = shmkit__rotl(acc, 31);
	return acc * SHMKIT__P1;
}
SHMKIT__INTERNAL uint64_t shmkit__merge(uint64_t acc, uint64_t v)
{
	acc ^= shmkit__round(0, v);
	return acc * SHMKIT__P1 + SHMKIT__P4;
}

/* Streaming state, so the checksum can hash header || descriptions. */
typedef struct shmkit__xxh {
	uint64_t v1, v2, v3, v4, total;
	uint8_t buf[32];
	size_t n;
	uint64_t seed;
} shmkit__xxh;

SHMKIT__INTERNAL void shmkit__xxh_init(shmkit__xxh *s, uint64_t seed)
{
	memset(s, 0, sizeof *s);
	s->seed = seed;
	s->v1 = seed + SHMKIT__P1 + SHMKIT__P2;
	s->v2 = seed + SHMKIT__P2;
	s->v3 = seed;
	s->v4 = seed - SHMKIT__P1;
}

SHMKIT__INTERNAL void shmkit__xxh_stripe(shmkit__xxh *s, const uint8_t *p)
{
	s->v1 = shmkit__round(s->v1, shmkit__rd64(p));
	s->v2 = shmkit__round(s->v2, shmkit__rd64(p + 8));
	s->v3 = shmkit__round(s->v3, shmkit__rd64(p + 16));
	s->v4 = shmkit__round(s->v4, shmkit__rd64(p + 24));
}

SHMKIT__INTERNAL void shmkit__xxh_update(shmkit__xxh *s, const void *data, size_t len)
{
	const uint8_t *p = (const uint8_t *)data;
	s->total += len;
	if (s->n + len < 32) {
		memcpy(s->buf + s->n, p, len);
		s->n += len;
		return;
	}
	if (s->n > 0) {
		size_t k = 32 - s->n;
		memcpy(s->buf + s->n, p, k);
		shmkit__xxh_stripe(s, s->buf);
		p += k;
		len -= k;
		s->n = 0;
	}
	while (len >= 32) {
		shmkit__xxh_stripe(s, p);
		p += 32;
		len -= 32;
	}
	memcpy(s->buf, p, len);
	s->n = len;
}

SHMKIT__INTERNAL uint64_t shmkit__xxh_digest(const shmkit__xxh *s)
{
	uint64_t h;
	if (s->total >= 32) {
		h = shmkit__rotl(s->v1, 1) + shmkit__rotl(s->v2, 7) + shmkit__rotl(s->v3, 12) + shmkit__rotl(s->v4, 18);
		h = shmkit__merge(h, s->v1);
		h = shmkit__merge(h, s->v2);
		h = shmkit__merge(h, s->v3);
		h = shmkit__merge(h, s->v4);
	} else {
		h = s->seed + SHMKIT__P5;
	}
	h += s->total;
	const uint8_t *p = s->buf;
	size_t n = s->n;
	while (n >= 8) {
		h ^= shmkit__round(0, shmkit__rd64(p));
		h = shmkit__rotl(h, 27) * SHMKIT__P1 + SHMKIT__P4;
		p += 8;
		n -= 8;
	}
	if (n >= 4) {
		h ^= (uint64_t)shmkit__rd32(p) * SHMKIT__P1;
		h = shmkit__rotl(h, 23) * SHMKIT__P2 + SHMKIT__P3;
		p += 4;
		n -= 4;
	}
	while (n > 0) {
		h ^= (uint64_t)(*p) * SHMKIT__P5;
		h = shmkit__rotl(h, 11) * SHMKIT__P1;
		p++;
		n--;
	}
	h ^= h >> 33;
	h *= SHMKIT__P2;
	h ^= h >> 29;
	h *= SHMKIT__P3;
	h ^= h >> 32;
	return h;
}

SHMKIT_API uint64_t shmkit_xxh64(const void *p, size_t n, uint64_t seed)
{
	shmkit__xxh s;
	shmkit__xxh_init(&s, seed);
	shmkit__xxh_update(&s, p, n);
	return shmkit__xxh_digest(&s);
}

/* ---- layout strings ---- */

SHMKIT_API const char *shmkit_arch(void)
{
#if defined(__x86_64__)
	return "amd64";
#elif defined(__aarch64__)
	return "arm64";
#elif defined(__i386__)
	return "386";
#elif defined(__riscv) && __riscv_xlen == 64
	return "riscv64";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return "ppc64le";
#elif defined(__s390x__)
	return "s390x";
#else
	return "unknown";
#endif
}

SHMKIT__INTERNAL const char *shmkit__order(void)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return "le";
#else
	return "be";
#endif
}

SHMKIT_API int shmkit_layout_string(char *out, size_t cap, const char *type_text)
{
	int n = snprintf(out, cap, "%s/%s %s", shmkit_arch(), shmkit__order(), type_text ? type_text : "");
	if (n < 0 || (size_t)n >= cap)
		return shmkit__fail(SHMKIT_ESHORT, "layout string of %d bytes does not fit %zu", n, cap);
	return SHMKIT_OK;
}

SHMKIT_API uint64_t shmkit_fingerprint(const char *type_text)
{
	char stack[512];
	size_t need = strlen(shmkit_arch()) + 4 + strlen(type_text) + 1;
	char *buf = need <= sizeof stack ? stack : (char *)malloc(need);
	if (!buf)
		return 0;
	snprintf(buf, need, "%s/%s %s", shmkit_arch(), shmkit__order(), type_text);
	uint64_t h = shmkit_xxh64(buf, strlen(buf), 0);
	if (buf != stack)
		free(buf);
	return h;
}

SHMKIT_API int shmkit_struct_text(char *out, size_t cap, const shmkit_field *f, size_t nfields, uint64_t size, uint64_t align)
{
	size_t used = 0;
	int n;
#define SHMKIT__APPEND(...)                                                          \
	do {                                                                             \
		n = snprintf(out + used, used < cap ? cap - used : 0, __VA_ARGS__);          \
		if (n < 0)                                                                   \
			return shmkit__fail(SHMKIT_EINVAL, "struct text: formatting failed");    \
		used += (size_t)n;                                                           \
	} while (0)
	if (cap == 0)
		return shmkit__fail(SHMKIT_ESHORT, "struct text: no buffer");
	out[0] = 0;
	SHMKIT__APPEND("struct{");
	for (size_t i = 0; i < nfields; i++)
		SHMKIT__APPEND("%s%s %s@%llu", i ? "; " : "", f[i].name, f[i].type, (unsigned long long)f[i].offset);
	SHMKIT__APPEND("}#%llu/%llu", (unsigned long long)size, (unsigned long long)align);
#undef SHMKIT__APPEND
	if (used >= cap)
		return shmkit__fail(SHMKIT_ESHORT, "struct text of %zu bytes does not fit %zu", used, cap);
	return SHMKIT_OK;
}

/* ---- time, futex, processes ---- */

SHMKIT__INTERNAL int64_t shmkit__now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

SHMKIT__INTERNAL void shmkit__relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

SHMKIT__INTERNAL long shmkit__futex_wait(shmkit__a32 *w, uint32_t val, int64_t timeout_ns)
{
	struct timespec ts, *tsp = NULL;
	if (timeout_ns >= 0) {
		ts.tv_sec = timeout_ns / 1000000000LL;
		ts.tv_nsec = timeout_ns % 1000000000LL;
		tsp = &ts;
	}
	/* Shared futex: no FUTEX_PRIVATE_FLAG, the wakers are other processes. */
	return syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT, val, tsp, NULL, 0);
}

SHMKIT__INTERNAL void shmkit__futex_wake_all(shmkit__a32 *w)
{
	syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

#define SHMKIT__PARKED 0x80000000u
#define SHMKIT__START_BITS 42
#define SHMKIT__START_MASK ((UINT64_C(1) << SHMKIT__START_BITS) - 1)

/* Notifier: notify after publishing (FORMAT.md 5.2). Returns 1 if it woke. */
SHMKIT__INTERNAL int shmkit__notify(shmkit__a32 *word)
{
	uint32_t w = atomic_load(word);
	if (!(w & SHMKIT__PARKED))
		return 0;
	for (;;) {
		uint32_t next = (w + 1) & ~SHMKIT__PARKED;
		if (atomic_compare_exchange_strong(word, &w, next))
			break;
		if (!(w & SHMKIT__PARKED))
			return 0;
	}
	shmkit__futex_wake_all(word);
	return 1;
}

/* stat fields after the last ')': returns state and start time. */
SHMKIT__INTERNAL int shmkit__stat(int32_t pid, char *state, uint64_t *start)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	if (!p)
		return -EIO;
	p++;
	/* field 3 is the first after ')', start time is field 22 */
	int field = 2;
	char *tok = p;
	for (;;) {
		while (*tok == ' ')
			tok++;
		if (!*tok)
			return -EIO;
		field++;
		if (field == 3)
			*state = *tok;
		if (field == 22) {
			*start = strtoull(tok, NULL, 10);
			return 0;
		}
		while (*tok && *tok != ' ')
			tok++;
	}
}

static uint64_t shmkit__self_word_cache;

SHMKIT__INTERNAL uint64_t shmkit__self_word(void)
{
	uint64_t w = __atomic_load_n(&shmkit__self_word_cache, __ATOMIC_RELAXED);
	if (w)
		return w;
	int32_t pid = (int32_t)getpid();
	char st;
	uint64_t start = 0;
	if (shmkit__stat(pid, &st, &start) != 0)
		start = 0;
	w = (uint64_t)(uint32_t)pid << SHMKIT__START_BITS | (start & SHMKIT__START_MASK);
	__atomic_store_n(&shmkit__self_word_cache, w, __ATOMIC_RELAXED);
	return w;
}

/* Dead only on definite evidence (FORMAT.md 5.1). */
SHMKIT__INTERNAL int shmkit__word_dead(uint64_t w)
{
	int32_t pid = (int32_t)(w >> SHMKIT__START_BITS);
	uint64_t start = w & SHMKIT__START_MASK;
	if (pid <= 0)
		return 1;
	if (kill(pid, 0) != 0 && errno == ESRCH)
		return 1;
	char st;
	uint64_t cur;
	if (shmkit__stat(pid, &st, &cur) != 0)
		return 0;
	if (st == 'Z' || st == 'X')
		return 1;
	return start != 0 && (cur & SHMKIT__START_MASK) != start;
}

/* Claim a role word: free, ours, or a dead holder's. */
SHMKIT__INTERNAL int shmkit__claim_word(shmkit__a64 *word, const char *what)
{
	uint64_t me = shmkit__self_word();
	for (int i = 0; i < 100; i++) {
		uint64_t cur = atomic_load(word);
		if (cur == me)
			return SHMKIT_OK;
		if (cur == 0) {
			if (atomic_compare_exchange_strong(word, &cur, me))
				return SHMKIT_OK;
			continue;
		}
		if (!shmkit__word_dead(cur))
			return shmkit__fail(SHMKIT_EROLE, "%s is held by live pid %d (start %llu)", what,
			                    (int)(cur >> SHMKIT__START_BITS), (unsigned long long)(cur & SHMKIT__START_MASK));
		if (atomic_compare_exchange_strong(word, &cur, me))
			return SHMKIT_OK;
	}
	return shmkit__fail(SHMKIT_EROLE, "%s: the role word keeps changing", what);
}

SHMKIT__INTERNAL void shmkit__release_word(shmkit__a64 *word)
{
	uint64_t me = shmkit__self_word();
	atomic_compare_exchange_strong(word, &me, 0);
}

/* The one waiting loop (FORMAT.md 5.2): spin, yield, park on word. ready
 * returns 1 (ready), 0 (not yet) or a negative error. */
typedef int (*shmkit__ready_fn)(void *ctx);

typedef struct shmkit__waitcfg {
	int64_t spin_ns, yield_ns, park_max_ns;
	uint64_t *parks;
} shmkit__waitcfg;

SHMKIT__INTERNAL int shmkit__wait(shmkit__a32 *word, shmkit__ready_fn ready, void *ctx, int64_t timeout_ns, const shmkit__waitcfg *cfg)
{
	int r = ready(ctx);
	if (r != 0)
		return r;
	if (timeout_ns == 0)
		return SHMKIT_ETIMEDOUT;
	int64_t start = shmkit__now();
	int64_t deadline = timeout_ns < 0 ? INT64_MAX : start + timeout_ns;
	/* spin */
	for (;;) {
		for (int i = 0; i < 64; i++) {
			if ((r = ready(ctx)) != 0)
				return r;
			shmkit__relax();
		}
		int64_t now = shmkit__now();
		if (now >= deadline)
			return SHMKIT_ETIMEDOUT;
		if (now - start >= cfg->spin_ns)
			break;
	}
	/* yield */
	for (;;) {
		sched_yield();
		if ((r = ready(ctx)) != 0)
			return r;
		int64_t now = shmkit__now();
		if (now >= deadline)
			return SHMKIT_ETIMEDOUT;
		if (now - start >= cfg->spin_ns + cfg->yield_ns)
			break;
	}
	/* park */
	for (;;) {
		uint32_t w = atomic_load(word);
		int armed = 1;
		if (!(w & SHMKIT__PARKED)) {
			uint32_t want = w | SHMKIT__PARKED;
			if (atomic_compare_exchange_strong(word, &w, want))
				w = want;
			else
				armed = 0; /* a notify in flight: re-check */
		}
		if ((r = ready(ctx)) != 0)
			return r;
		int64_t now = shmkit__now();
		if (now >= deadline)
			return SHMKIT_ETIMEDOUT;
		if (armed) {
			int64_t t = deadline - now;
			if (cfg->park_max_ns > 0 && t > cfg->park_max_ns)
				t = cfg->park_max_ns;
			if (cfg->parks)
				(*cfg->parks)++;
			shmkit__futex_wait(word, w, t);
		}
	}
}

/* ---- segments ---- */

struct shmkit_segment {
	uint8_t *base;
	size_t size;
	int sysv;
	shmkit_header hdr; /* private validated copy */
	char *layouts[2];
	char *names[2];
	char spec[256];
};

SHMKIT__INTERNAL int shmkit__map(shmkit_segment *s, const char *spec)
{
	const char *path = NULL;
	char buf[512];
	if (strncmp(spec, "posix:", 6) == 0) {
		const char *name = spec + 6;
		if (*name == '/')
			name++;
		if (!*name || strchr(name, '/'))
			return shmkit__fail(SHMKIT_EINVAL, "%s: bad posix name", spec);
		snprintf(buf, sizeof buf, "/dev/shm/%s", name);
		path = buf;
	} else if (strncmp(spec, "file:", 5) == 0) {
		path = spec + 5;
	} else if (strncmp(spec, "sysv:", 5) == 0) {
		char *end;
		errno = 0;
		long long k = strtoll(spec + 5, &end, 0);
		if (errno || *end || k == 0 || k > 0xffffffffLL || k < INT32_MIN)
			return shmkit__fail(SHMKIT_EINVAL, "%s: bad sysv key", spec);
		int id = shmget((key_t)(int32_t)(uint32_t)k, 0, 0);
		if (id < 0)
			return shmkit__fail(SHMKIT_ESYS, "%s: shmget: %s", spec, strerror(errno));
		struct shmid_ds ds;
		if (shmctl(id, IPC_STAT, &ds) != 0)
			return shmkit__fail(SHMKIT_ESYS, "%s: shmctl: %s", spec, strerror(errno));
		uid_t me = geteuid();
		if ((ds.shm_perm.uid != me && ds.shm_perm.uid != 0) || (ds.shm_perm.cuid != me && ds.shm_perm.cuid != 0))
			return shmkit__fail(SHMKIT_EINVAL, "%s: owned by uid %d, not trusted", spec, (int)ds.shm_perm.uid);
		void *p = shmat(id, NULL, 0);
		if (p == (void *)-1)
			return shmkit__fail(SHMKIT_ESYS, "%s: shmat: %s", spec, strerror(errno));
		s->base = (uint8_t *)p;
		s->size = ds.shm_segsz;
		s->sysv = 1;
		return SHMKIT_OK;
	} else if (spec[0] == '/' || spec[0] == '.') {
		path = spec;
	} else {
		return shmkit__fail(SHMKIT_EINVAL, "%s: want posix:/NAME, file:PATH, sysv:KEY or a path", spec);
	}
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return shmkit__fail(SHMKIT_ESYS, "%s: open %s: %s", spec, path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0) {
		close(fd);
		return shmkit__fail(SHMKIT_ESYS, "%s: fstat: %s", spec, strerror(errno));
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		close(fd);
		return shmkit__fail(SHMKIT_EINVAL, "%s: owned by uid %d, not trusted", spec, (int)st.st_uid);
	}
	if (st.st_size < (off_t)sizeof(shmkit_header)) {
		close(fd);
		return shmkit__fail(SHMKIT_ENOTREADY, "%s: %lld bytes, shorter than a header", spec, (long long)st.st_size);
	}
	void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return shmkit__fail(SHMKIT_ESYS, "%s: mmap: %s", spec, strerror(errno));
	s->base = (uint8_t *)p;
	s->size = (size_t)st.st_size;
	return SHMKIT_OK;
}

SHMKIT__INTERNAL void shmkit__unmap(shmkit_segment *s)
{
	if (!s->base)
		return;
	if (s->sysv)
		shmdt(s->base);
	else
		munmap(s->base, s->size);
	s->base = NULL;
}

SHMKIT__INTERNAL int shmkit__span(const char *what, uint64_t off, uint64_t size, uint64_t min, uint64_t max, uint64_t align)
{
	if (off < min || off % align != 0 || size > max || off > max - size)
		return shmkit__fail(SHMKIT_ECORRUPT, "%s at [%llu, +%llu) outside [%llu, %llu) or not %llu-aligned", what,
		                    (unsigned long long)off, (unsigned long long)size, (unsigned long long)min,
		                    (unsigned long long)max, (unsigned long long)align);
	return SHMKIT_OK;
}

/* Validate the private header copy (FORMAT.md 3, opener step 3). */
SHMKIT__INTERNAL int shmkit__validate(shmkit_segment *s)
{
	static const uint8_t magic[8] = {'S', 'H', 'M', 'K', 'I', 'T', 0, 1};
	shmkit_header *h = &s->hdr;
	if (memcmp(h->magic, magic, 8) != 0)
		return shmkit__fail(SHMKIT_EBADMAGIC, "%s: not a shmkit segment (bad magic)", s->spec);
	if (h->version != 1)
		return shmkit__fail(SHMKIT_EVERSION, "%s: format version %u, this library reads 1", s->spec, h->version);
	if (h->type_desc_off > s->size || h->type_desc_len > s->size - h->type_desc_off || h->type_desc_len > (128u << 10))
		return shmkit__fail(SHMKIT_ECORRUPT, "%s: type descriptions outside the object", s->spec);
	uint8_t *desc = (uint8_t *)malloc(h->type_desc_len + 1);
	if (!desc)
		return shmkit__fail(SHMKIT_ESYS, "out of memory");
	memcpy(desc, s->base + h->type_desc_off, h->type_desc_len);
	shmkit__xxh x;
	shmkit__xxh_init(&x, 0);
	shmkit__xxh_update(&x, h, 328);
	shmkit__xxh_update(&x, desc, h->type_desc_len);
	uint64_t sum = shmkit__xxh_digest(&x);
	if (sum != h->checksum) {
		free(desc);
		return shmkit__fail(SHMKIT_ECORRUPT, "%s: header checksum %#llx, computed %#llx", s->spec,
		                    (unsigned long long)h->checksum, (unsigned long long)sum);
	}
	int rc = SHMKIT_OK;
	if (h->header_size != 464)
		rc = shmkit__fail(SHMKIT_ECORRUPT, "%s: header size %u", s->spec, h->header_size);
	else if (h->kind < 1 || h->kind > 6)
		rc = shmkit__fail(SHMKIT_ECORRUPT, "%s: unknown kind %u", s->spec, h->kind);
	else if (h->num_types > 2 || h->num_regions > 8)
		rc = shmkit__fail(SHMKIT_ECORRUPT, "%s: %u types, %u regions", s->spec, h->num_types, h->num_regions);
	else if (h->segment_size < 464 || h->segment_size > s->size)
		rc = shmkit__fail(SHMKIT_ECORRUPT, "%s: segment size %llu, object %zu", s->spec, (unsigned long long)h->segment_size, s->size);
	if (rc == SHMKIT_OK)
		rc = shmkit__span("type descriptions", h->type_desc_off, h->type_desc_len, 464, h->segment_size, 8);
	uint64_t end = h->type_desc_off + h->type_desc_len;
	for (uint32_t i = 0; rc == SHMKIT_OK && i < h->num_regions; i++) {
		rc = shmkit__span("region", h->regions[i].off, h->regions[i].size, end, h->segment_size, 128);
		end = h->regions[i].off + h->regions[i].size;
	}
	for (uint32_t i = 0; rc == SHMKIT_OK && i < h->num_types; i++) {
		uint64_t a = h->types[i].align;
		if (a == 0 || (a & (a - 1)) || a > 4096 || h->types[i].size % a)
			rc = shmkit__fail(SHMKIT_ECORRUPT, "%s: type %u size %llu align %llu", s->spec, i,
			                  (unsigned long long)h->types[i].size, (unsigned long long)a);
	}
	/* decode the descriptions */
	size_t p = 0;
	for (uint32_t i = 0; rc == SHMKIT_OK && i < h->num_types; i++) {
		if (h->type_desc_len - p < 8) {
			rc = shmkit__fail(SHMKIT_ECORRUPT, "%s: type description %u truncated", s->spec, i);
			break;
		}
		uint64_t nl = shmkit__rd32(desc + p), ll = shmkit__rd32(desc + p + 4);
		p += 8;
		if (nl > h->type_desc_len - p || ll > h->type_desc_len - p - nl) {
			rc = shmkit__fail(SHMKIT_ECORRUPT, "%s: type description %u lengths", s->spec, i);
			break;
		}
		s->names[i] = strndup((char *)desc + p, nl);
		s->layouts[i] = strndup((char *)desc + p + nl, ll);
		p += nl + ll;
		if (!s->names[i] || !s->layouts[i])
			rc = shmkit__fail(SHMKIT_ESYS, "out of memory");
		else if (shmkit_xxh64(s->layouts[i], ll, 0) != h->types[i].fingerprint)
			rc = shmkit__fail(SHMKIT_ECORRUPT, "%s: type description %u does not match its fingerprint", s->spec, i);
	}
	free(desc);
	return rc;
}

SHMKIT_API void shmkit_close(shmkit_segment *s)
{
	if (!s)
		return;
	shmkit__unmap(s);
	for (int i = 0; i < 2; i++) {
		free(s->layouts[i]);
		free(s->names[i]);
	}
	free(s);
}

SHMKIT_API shmkit_segment *shmkit_open(const char *spec, uint32_t kind, int64_t init_timeout_ms)
{
	if (init_timeout_ms < 0)
		init_timeout_ms = 2000;
	int64_t deadline = shmkit__now() + init_timeout_ms * 1000000LL;
	int64_t backoff = 50000;
	for (;;) {
		shmkit_segment *s = (shmkit_segment *)calloc(1, sizeof *s);
		if (!s) {
			shmkit__fail(SHMKIT_ESYS, "out of memory");
			return NULL;
		}
		snprintf(s->spec, sizeof s->spec, "%s", spec);
		int rc = shmkit__map(s, spec);
		if (rc == SHMKIT_OK && s->size < sizeof(shmkit_header))
			rc = shmkit__fail(SHMKIT_ENOTREADY, "%s: shorter than a header", spec);
		if (rc == SHMKIT_OK) {
			/* The state word first (acquire): a Ready header is whole. */
			uint32_t st = atomic_load_explicit((shmkit__a32 *)(s->base + 336), memory_order_acquire);
			if (st == 0 || st == 0x494e4954u) {
				int32_t pid = atomic_load((_Atomic int32_t *)(s->base + 48));
				uint64_t start = atomic_load((shmkit__a64 *)(s->base + 56));
				if (pid > 0 && shmkit__word_dead((uint64_t)(uint32_t)pid << SHMKIT__START_BITS | (start & SHMKIT__START_MASK))) {
					shmkit__fail(SHMKIT_ENOTREADY, "%s: creator pid %d died before finishing initialization", spec, (int)pid);
					shmkit_close(s);
					return NULL;
				}
				rc = shmkit__fail(SHMKIT_ENOTREADY, "%s: creator pid %d still initializing", spec, (int)pid);
			} else if (st != 0x52454459u) {
				rc = shmkit__fail(SHMKIT_ECORRUPT, "%s: init state word %#x is not a known state", spec, st);
			} else {
				memcpy(&s->hdr, s->base, sizeof s->hdr);
				s->hdr.state = st;
				rc = shmkit__validate(s);
			}
		}
		if (rc == SHMKIT_OK) {
			if (kind != 0 && s->hdr.kind != kind) {
				shmkit__fail(SHMKIT_EKIND, "%s: segment holds kind %u, opened as kind %u", spec, s->hdr.kind, kind);
				shmkit_close(s);
				return NULL;
			}
			return s;
		}
		shmkit_close(s);
		if (rc != SHMKIT_ENOTREADY)
			return NULL;
		if (shmkit__now() >= deadline)
			return NULL;
		struct timespec ts = {0, (long)backoff};
		nanosleep(&ts, NULL);
		backoff = backoff * 2 > 20000000 ? 20000000 : backoff * 2;
	}
}

SHMKIT_API const shmkit_header *shmkit_header_of(const shmkit_segment *s) { return &s->hdr; }

SHMKIT_API void *shmkit_region(const shmkit_segment *s, uint32_t i, uint64_t *size)
{
	if (i >= s->hdr.num_regions)
		return NULL;
	if (size)
		*size = s->hdr.regions[i].size;
	return s->base + s->hdr.regions[i].off;
}

SHMKIT_API const char *shmkit_type_layout(const shmkit_segment *s, uint32_t i)
{
	return i < s->hdr.num_types ? s->layouts[i] : NULL;
}

SHMKIT_API int shmkit_check_type(const shmkit_segment *s, uint32_t i, const char *type_text, uint64_t size, uint64_t align)
{
	if (i >= s->hdr.num_types)
		return shmkit__fail(SHMKIT_ETYPE, "%s: segment has %u element types, no type %u", s->spec, s->hdr.num_types, i);
	char mine[4096];
	if (shmkit_layout_string(mine, sizeof mine, type_text) != SHMKIT_OK)
		return SHMKIT_ESHORT;
	uint64_t fp = shmkit_xxh64(mine, strlen(mine), 0);
	if (fp != s->hdr.types[i].fingerprint || strcmp(mine, s->layouts[i]) != 0)
		return shmkit__fail(SHMKIT_ETYPE, "%s: fingerprint mismatch: segment holds %s %s (%#llx), opened as %s (%#llx)",
		                    s->spec, s->names[i], s->layouts[i], (unsigned long long)s->hdr.types[i].fingerprint, mine,
		                    (unsigned long long)fp);
	if (size != s->hdr.types[i].size || align != s->hdr.types[i].align)
		return shmkit__fail(SHMKIT_ETYPE, "%s: type %u has size %llu align %llu, C has %llu/%llu", s->spec, i,
		                    (unsigned long long)s->hdr.types[i].size, (unsigned long long)s->hdr.types[i].align,
		                    (unsigned long long)size, (unsigned long long)align);
	return SHMKIT_OK;
}

SHMKIT_API shmkit_segment *shmkit_value_open(const char *spec, const char *type_text, uint64_t size, uint64_t align, void **ptr)
{
	shmkit_segment *s = shmkit_open(spec, SHMKIT_KIND_VALUE, -1);
	if (!s)
		return NULL;
	uint64_t rs = 0;
	if (shmkit_check_type(s, 0, type_text, size, align) != SHMKIT_OK) {
		shmkit_close(s);
		return NULL;
	}
	void *p = shmkit_region(s, 0, &rs);
	if (!p || rs < size || ((uintptr_t)p % align) != 0) {
		shmkit__fail(SHMKIT_ECORRUPT, "%s: value region of %llu bytes for a %llu-byte type", spec, (unsigned long long)rs,
		             (unsigned long long)size);
		shmkit_close(s);
		return NULL;
	}
	if (ptr)
		*ptr = p;
	return s;
}

/* ---- ring (FORMAT.md 6) ---- */

/* Control block offsets (shmring.control). */
enum {
	SHMKIT__RING_TAIL = 0,
	SHMKIT__RING_HEAD = 128,
	SHMKIT__RING_NOTEMPTY = 256,
	SHMKIT__RING_NOTFULL = 384,
	SHMKIT__RING_NOTFULLAT = 392,
	SHMKIT__RING_PRODUCER = 512,
	SHMKIT__RING_CONSUMER = 520,
	SHMKIT__RING_WRITES_CLOSED = 528,
	SHMKIT__RING_CTL_SIZE = 640
};

struct shmkit_ring {
	shmkit_segment *seg;
	uint8_t *slots;
	uint64_t size, cap, mask;
	shmkit__a64 *tailp, *headp, *notfullat, *producer, *consumer, *writes_closed;
	shmkit__a32 *notempty, *notfull;
	shmkit__waitcfg wcfg;
	shmkit_wait_stats st;
	int bytes; /* a byte ring: cursors count bytes */
	/* producer */
	int pheld;
	uint64_t tail, head_cache, need;
	int perr;
	/* consumer */
	int cheld;
	uint64_t head, tail_cache, peeked, ready_pos;
	int cerr;
};

SHMKIT__INTERNAL int shmkit__ring_init(shmkit_ring *r, shmkit_segment *s, int bytes)
{
	uint64_t csize = 0, dsize = 0;
	uint8_t *ctl = (uint8_t *)shmkit_region(s, 0, &csize);
	uint8_t *data = (uint8_t *)shmkit_region(s, 1, &dsize);
	uint64_t cap = s->hdr.capacity;
	if (s->hdr.num_regions != 2 || !ctl || csize != SHMKIT__RING_CTL_SIZE)
		return shmkit__fail(SHMKIT_ECORRUPT, "%s: ring with %u regions, control block of %llu bytes", s->spec,
		                    s->hdr.num_regions, (unsigned long long)csize);
	if (cap == 0 || (cap & (cap - 1)) || cap > (UINT64_C(1) << 40))
		return shmkit__fail(SHMKIT_ECORRUPT, "%s: capacity %llu", s->spec, (unsigned long long)cap);
	uint64_t size = bytes ? 1 : s->hdr.params[0];
	if (bytes ? (cap < 64 || dsize != cap) : (size == 0 || size != s->hdr.types[0].size || dsize / size != cap || dsize % size))
		return shmkit__fail(SHMKIT_ECORRUPT, "%s: data region of %llu bytes for %llu slots of %llu", s->spec,
		                    (unsigned long long)dsize, (unsigned long long)cap, (unsigned long long)size);
	r->seg = s;
	r->slots = data;
	r->size = size;
	r->cap = cap;
	r->mask = cap - 1;
	r->bytes = bytes;
	r->tailp = (shmkit__a64 *)(ctl + SHMKIT__RING_TAIL);
	r->headp = (shmkit__a64 *)(ctl + SHMKIT__RING_HEAD);
	r->notempty = (shmkit__a32 *)(ctl + SHMKIT__RING_NOTEMPTY);
	r->notfull = (shmkit__a32 *)(ctl + SHMKIT__RING_NOTFULL);
	r->notfullat = (shmkit__a64 *)(ctl + SHMKIT__RING_NOTFULLAT);
	r->producer = (shmkit__a64 *)(ctl + SHMKIT__RING_PRODUCER);
	r->consumer = (shmkit__a64 *)(ctl + SHMKIT__RING_CONSUMER);
	r->writes_closed = (shmkit__a64 *)(ctl + SHMKIT__RING_WRITES_CLOSED);
	r->wcfg.spin_ns = 2000;
	r->wcfg.yield_ns = 20000;
	r->wcfg.park_max_ns = 1000000000LL;
	r->wcfg.parks = &r->st.parks;
	return SHMKIT_OK;
}

SHMKIT_API shmkit_ring *shmkit_ring_open(const char *spec, const char *type_text, uint64_t size, uint64_t align)
{
	shmkit_segment *s = shmkit_open(spec, SHMKIT_KIND_RING, -1);
	if (!s)
		return NULL;
	shmkit_ring *r = (shmkit_ring *)calloc(1, sizeof *r);
	if (!r || shmkit_check_type(s, 0, type_text, size, align) != SHMKIT_OK || shmkit__ring_init(r, s, 0) != SHMKIT_OK) {
		if (!r)
			shmkit__fail(SHMKIT_ESYS, "out of memory");
		free(r);
		shmkit_close(s);
		return NULL;
	}
	return r;
}

SHMKIT_API uint64_t shmkit_ring_capacity(const shmkit_ring *r) { return r->cap; }

SHMKIT_API void shmkit_ring_set_wait(shmkit_ring *r, int64_t spin_ns, int64_t yield_ns)
{
	r->wcfg.spin_ns = spin_ns;
	r->wcfg.yield_ns = yield_ns;
}

SHMKIT_API void shmkit_ring_stats(const shmkit_ring *r, shmkit_wait_stats *st) { *st = r->st; }

/* Copy one element: constant-size copies for the common sizes, so the hot
 * path inlines them instead of calling memcpy. */
SHMKIT__INTERNAL void shmkit__copy(void *d, const void *s, uint64_t n)
{
	switch (n) {
	case 4: memcpy(d, s, 4); return;
	case 8: memcpy(d, s, 8); return;
	case 16: memcpy(d, s, 16); return;
	case 24: memcpy(d, s, 24); return;
	case 32: memcpy(d, s, 32); return;
	case 64: memcpy(d, s, 64); return;
	default: memcpy(d, s, n);
	}
}

SHMKIT__INTERNAL int shmkit__ring_corrupt(shmkit_ring *r, uint64_t h, uint64_t t)
{
	return shmkit__fail(SHMKIT_ECORRUPT, "%s: head %llu, tail %llu, capacity %llu (tail-head must be in [0, capacity])",
	                    r->seg->spec, (unsigned long long)h, (unsigned long long)t, (unsigned long long)r->cap);
}

SHMKIT__INTERNAL int shmkit__ring_claim_producer(shmkit_ring *r)
{
	if (atomic_load(r->writes_closed) != 0)
		return shmkit__fail(SHMKIT_ECLOSED, "%s: writes were closed (CloseWrites)", r->seg->spec);
	int rc = shmkit__claim_word(r->producer, "the ring's producer role");
	if (rc)
		return rc;
	uint64_t t = atomic_load(r->tailp), h = atomic_load(r->headp);
	if (t - h > r->cap || (r->bytes && (t % 8 || h % 8))) {
		shmkit__release_word(r->producer);
		return shmkit__ring_corrupt(r, h, t);
	}
	r->tail = t;
	r->head_cache = h;
	r->pheld = 1;
	return SHMKIT_OK;
}

SHMKIT__INTERNAL int shmkit__ring_claim_consumer(shmkit_ring *r)
{
	int rc = shmkit__claim_word(r->consumer, "the ring's consumer role");
	if (rc)
		return rc;
	uint64_t h = atomic_load(r->headp), t = atomic_load(r->tailp);
	if (t - h > r->cap || (r->bytes && (t % 8 || h % 8))) {
		shmkit__release_word(r->consumer);
		return shmkit__ring_corrupt(r, h, t);
	}
	r->head = h;
	r->tail_cache = t;
	r->cheld = 1;
	return SHMKIT_OK;
}

/* Load the head; 1 if need units are free. */
SHMKIT__INTERNAL int shmkit__ring_room(void *ctx)
{
	shmkit_ring *r = (shmkit_ring *)ctx;
	uint64_t h = atomic_load(r->headp);
	if (r->tail - h > r->cap || (r->bytes && h % 8))
		return shmkit__ring_corrupt(r, h, r->tail);
	r->head_cache = h;
	return r->cap - (r->tail - h) >= r->need;
}

/* Load the tail; 1 if it moved past ready_pos. */
SHMKIT__INTERNAL int shmkit__ring_data(void *ctx)
{
	shmkit_ring *r = (shmkit_ring *)ctx;
	uint64_t t = atomic_load(r->tailp);
	if (t - r->head > r->cap || t - r->head < r->ready_pos - r->head || (r->bytes && t % 8))
		return shmkit__ring_corrupt(r, r->head, t);
	r->tail_cache = t;
	if (t != r->ready_pos)
		return 1;
	if (atomic_load(r->writes_closed) == 0)
		return 0;
	/* Closed for writes (FORMAT.md, ring "Close writes"): everything
	 * published before the flag is visible now; one more look is final. */
	t = atomic_load(r->tailp);
	if (t != r->ready_pos) {
		r->tail_cache = t;
		return 1;
	}
	return shmkit__fail(SHMKIT_ECLOSED, "%s: the producer closed writes and every item was read", r->seg->spec);
}

SHMKIT__INTERNAL int shmkit__ring_wait_room(shmkit_ring *r, uint64_t need, int64_t timeout_ns)
{
	r->need = need;
	int rc = shmkit__ring_room(r);
	if (rc != 0)
		return rc < 0 ? rc : SHMKIT_OK;
	if (timeout_ns == 0)
		return SHMKIT_EFULL;
	/* The target before the parked bit: a consumer that sees the bit
	 * sees the target. */
	uint64_t target = r->tail + need - r->cap;
	if (atomic_load(r->notfullat) != target)
		atomic_store(r->notfullat, target);
	rc = shmkit__wait(r->notfull, shmkit__ring_room, r, timeout_ns, &r->wcfg);
	return rc == 1 ? SHMKIT_OK : rc;
}

SHMKIT__INTERNAL int shmkit__ring_wait_data(shmkit_ring *r, uint64_t pos, int64_t timeout_ns)
{
	r->ready_pos = pos;
	int rc = shmkit__ring_data(r);
	if (rc != 0)
		return rc < 0 ? rc : SHMKIT_OK;
	if (timeout_ns == 0)
		return SHMKIT_EEMPTY;
	rc = shmkit__wait(r->notempty, shmkit__ring_data, r, timeout_ns, &r->wcfg);
	return rc == 1 ? SHMKIT_OK : rc;
}

SHMKIT__INTERNAL void shmkit__ring_publish(shmkit_ring *r, uint64_t t)
{
	r->tail = t;
	atomic_store(r->tailp, t); /* seq_cst: Dekker with the consumer's arm */
	if (shmkit__notify(r->notempty))
		r->st.wakes++;
}

SHMKIT__INTERNAL void shmkit__ring_release(shmkit_ring *r, uint64_t h)
{
	uint64_t old = r->head;
	r->head = h;
	atomic_store(r->headp, h); /* seq_cst */
	if (atomic_load(r->notfull) & SHMKIT__PARKED) {
		if (atomic_load(r->notfullat) - old - 1 < h - old) {
			if (shmkit__notify(r->notfull))
				r->st.wakes++;
		} else {
			r->st.notifies_skipped++;
		}
	}
}

SHMKIT_API int64_t shmkit_ring_push_batch(shmkit_ring *r, const void *items, size_t n, int64_t timeout_ns)
{
	if (!r->pheld) {
		int rc = shmkit__ring_claim_producer(r);
		if (rc)
			return rc;
	}
	if (n == 0)
		return 0;
	uint64_t t = r->tail;
	uint64_t free_ = r->cap - (t - r->head_cache);
	if (free_ == 0) {
		int rc = shmkit__ring_wait_room(r, 1, timeout_ns);
		if (rc)
			return rc;
		free_ = r->cap - (t - r->head_cache);
	}
	uint64_t k = n < free_ ? n : free_;
	uint64_t i = t & r->mask;
	uint64_t first = k < r->cap - i ? k : r->cap - i;
	memcpy(r->slots + i * r->size, items, first * r->size);
	if (k > first)
		memcpy(r->slots, (const uint8_t *)items + first * r->size, (k - first) * r->size);
	shmkit__ring_publish(r, t + k);
	return (int64_t)k;
}

SHMKIT_API int shmkit_ring_push(shmkit_ring *r, const void *item, int64_t timeout_ns)
{
	int64_t n = shmkit_ring_push_batch(r, item, 1, timeout_ns);
	return n == 1 ? SHMKIT_OK : (int)n;
}

SHMKIT_API int64_t shmkit_ring_pop_batch(shmkit_ring *r, void *out, size_t max, int64_t timeout_ns)
{
	if (!r->cheld) {
		int rc = shmkit__ring_claim_consumer(r);
		if (rc)
			return rc;
	}
	if (max == 0)
		return 0;
	uint64_t h = r->head;
	if (h == r->tail_cache) {
		int rc = shmkit__ring_wait_data(r, h, timeout_ns);
		if (rc)
			return rc;
	}
	uint64_t avail = r->tail_cache - h;
	uint64_t k = max < avail ? max : avail;
	uint64_t i = h & r->mask;
	uint64_t first = k < r->cap - i ? k : r->cap - i;
	memcpy(out, r->slots + i * r->size, first * r->size);
	if (k > first)
		memcpy((uint8_t *)out + first * r->size, r->slots, (k - first) * r->size);
	r->peeked = 0;
	shmkit__ring_release(r, h + k);
	return (int64_t)k;
}

SHMKIT_API int shmkit_ring_pop(shmkit_ring *r, void *out, int64_t timeout_ns)
{
	if (__builtin_expect(r->cheld && r->head != r->tail_cache, 1)) {
		uint64_t h = r->head;
		shmkit__copy(out, r->slots + (h & r->mask) * r->size, r->size);
		r->peeked = 0;
		shmkit__ring_release(r, h + 1);
		return SHMKIT_OK;
	}
	int64_t n = shmkit_ring_pop_batch(r, out, 1, timeout_ns);
	return n == 1 ? SHMKIT_OK : (int)n;
}

SHMKIT_API void *shmkit_ring_peek(shmkit_ring *r, size_t max, size_t *n, int64_t timeout_ns)
{
	*n = 0;
	if (!r->cheld && shmkit__ring_claim_consumer(r) != SHMKIT_OK)
		return NULL;
	uint64_t h = r->head;
	if (max == 0)
		return r->slots;
	if (r->tail_cache - h < max) {
		r->ready_pos = h;
		int rc = shmkit__ring_data(r);
		if (rc < 0)
			return NULL;
		if (r->tail_cache == h) {
			rc = shmkit__ring_wait_data(r, h, timeout_ns);
			if (rc) {
				if (rc != SHMKIT_ETIMEDOUT && rc != SHMKIT_EEMPTY)
					return NULL;
				shmkit__fail(rc, "ring empty");
				return NULL;
			}
		}
	}
	uint64_t avail = r->tail_cache - h, i = h & r->mask;
	uint64_t k = max < avail ? max : avail;
	if (k > r->cap - i)
		k = r->cap - i;
	r->peeked = k;
	*n = (size_t)k;
	return r->slots + i * r->size;
}

SHMKIT_API int shmkit_ring_advance(shmkit_ring *r, size_t k)
{
	if (!r->cheld || k > r->peeked)
		return shmkit__fail(SHMKIT_EINVAL, "advance(%zu) with %llu items peeked", k, (unsigned long long)r->peeked);
	r->peeked = 0;
	if (k)
		shmkit__ring_release(r, r->head + k);
	return SHMKIT_OK;
}

SHMKIT_API void shmkit_ring_close(shmkit_ring *r)
{
	if (!r)
		return;
	if (r->pheld)
		shmkit__release_word(r->producer);
	if (r->cheld)
		shmkit__release_word(r->consumer);
	shmkit_close(r->seg);
	free(r);
}

/* ---- byte ring (FORMAT.md 7), consumer ---- */

struct shmkit_bytering {
	shmkit_ring r;
};

SHMKIT_API shmkit_bytering *shmkit_bytering_open(const char *spec)
{
	shmkit_segment *s = shmkit_open(spec, SHMKIT_KIND_BYTERING, -1);
	if (!s)
		return NULL;
	shmkit_bytering *b = (shmkit_bytering *)calloc(1, sizeof *b);
	if (!b || shmkit__ring_init(&b->r, s, 1) != SHMKIT_OK) {
		free(b);
		shmkit_close(s);
		return NULL;
	}
	return b;
}

SHMKIT_API int64_t shmkit_bytering_read(shmkit_bytering *b, void *buf, size_t cap, int64_t timeout_ns)
{
	shmkit_ring *r = &b->r;
	if (!r->cheld) {
		int rc = shmkit__ring_claim_consumer(r);
		if (rc)
			return rc;
	}
	uint64_t pos = r->head;
	for (;;) {
		if (pos == r->tail_cache) {
			int rc = shmkit__ring_wait_data(r, pos, timeout_ns);
			if (rc)
				return rc;
		}
		uint64_t off = pos & r->mask;
		const uint8_t *p = r->slots + off;
		uint64_t n = shmkit__rd32(p), tag = shmkit__rd32(p + 4), span;
		if (tag == 0x31434552u) { /* REC1 */
			if (n > r->cap / 2 - 8 || off + 8 + n > r->cap)
				return shmkit__fail(SHMKIT_ECORRUPT, "%s: record at %llu: bad length %llu", r->seg->spec,
				                    (unsigned long long)pos, (unsigned long long)n);
			span = (8 + n + 7) & ~UINT64_C(7);
		} else if (tag == 0x31444150u) { /* PAD1 */
			if (off + 8 + n != r->cap)
				return shmkit__fail(SHMKIT_ECORRUPT, "%s: padding at %llu: bad length %llu", r->seg->spec,
				                    (unsigned long long)pos, (unsigned long long)n);
			span = r->cap - off;
		} else {
			return shmkit__fail(SHMKIT_ECORRUPT, "%s: record at %llu: bad tag %#llx", r->seg->spec,
			                    (unsigned long long)pos, (unsigned long long)tag);
		}
		if (span > r->tail_cache - pos)
			return shmkit__fail(SHMKIT_ECORRUPT, "%s: record at %llu runs past the tail", r->seg->spec,
			                    (unsigned long long)pos);
		if (tag == 0x31444150u) {
			pos += span;
			continue;
		}
		if (n > cap)
			return shmkit__fail(SHMKIT_ESHORT, "record of %llu bytes, buffer of %zu", (unsigned long long)n, cap);
		memcpy(buf, p + 8, n);
		shmkit__ring_release(r, pos + span);
		return (int64_t)n;
	}
}

SHMKIT_API void shmkit_bytering_close(shmkit_bytering *b)
{
	if (!b)
		return;
	if (b->r.cheld)
		shmkit__release_word(b->r.consumer);
	shmkit_close(b->r.seg);
	free(b);
}

/* ---- bus (FORMAT.md 10), subscriber ---- */

enum {
	SHMKIT__BUS_TAIL = 0,
	SHMKIT__BUS_NOTEMPTY = 128,
	SHMKIT__BUS_NOTFULL = 256,
	SHMKIT__BUS_NOTFULLAT = 264,
	SHMKIT__BUS_GEN = 384,
	SHMKIT__BUS_CLOSED = 392,
	SHMKIT__BUS_LOCK = 520,
	SHMKIT__BUS_TABLEFREE = 528,
	SHMKIT__BUS_CTL_SIZE = 640,
	SHMKIT__REC_CURSOR = 0,
	SHMKIT__REC_OWNER = 128,
	SHMKIT__REC_STATE = 136,
	SHMKIT__REC_NAMELEN = 140,
	SHMKIT__REC_LAPPED = 144,
	SHMKIT__REC_MISSED = 152,
	SHMKIT__REC_SIZE = 256
};

struct shmkit_bus_sub {
	shmkit_segment *seg;
	uint8_t *ctl, *rec, *slots;
	uint64_t cap, size, slot_size;
	int overwrite;
	uint64_t cursor, tail_cache, missed;
	shmkit__waitcfg wcfg;
	uint64_t parks;
	int saw_closed;
};

#define SHMKIT__A64(p, off) ((shmkit__a64 *)((p) + (off)))
#define SHMKIT__A32(p, off) ((shmkit__a32 *)((p) + (off)))

SHMKIT__INTERNAL int shmkit__bus_lock_ready(void *ctx)
{
	shmkit_bus_sub *s = (shmkit_bus_sub *)ctx;
	shmkit__a64 *lock = SHMKIT__A64(s->ctl, SHMKIT__BUS_LOCK);
	uint64_t zero = 0, me = shmkit__self_word();
	if (atomic_compare_exchange_strong(lock, &zero, me))
		return 1;
	if (zero == me)
		return 1;
	if (shmkit__word_dead(zero))
		atomic_compare_exchange_strong(lock, &zero, 0);
	return 0;
}

SHMKIT_API shmkit_bus_sub *shmkit_bus_subscribe(const char *spec, const char *type_text, uint64_t size, uint64_t align, int from_oldest)
{
	shmkit_segment *seg = shmkit_open(spec, SHMKIT_KIND_BUS, -1);
	if (!seg)
		return NULL;
	shmkit_bus_sub *s = (shmkit_bus_sub *)calloc(1, sizeof *s);
	if (!s) {
		shmkit__fail(SHMKIT_ESYS, "out of memory");
		shmkit_close(seg);
		return NULL;
	}
	s->seg = seg;
	const shmkit_header *h = &seg->hdr;
	uint64_t csize = 0, rsize = 0, dsize = 0;
	if (shmkit_check_type(seg, 0, type_text, size, align) != SHMKIT_OK)
		goto fail;
	s->cap = h->capacity;
	s->size = size;
	s->overwrite = h->params[2] == 2;
	s->slot_size = s->overwrite ? ((8 + size + (align > 8 ? align : 8) - 1) & ~((align > 8 ? align : 8) - 1)) : size;
	s->ctl = (uint8_t *)shmkit_region(seg, 0, &csize);
	uint8_t *recs = (uint8_t *)shmkit_region(seg, 1, &rsize);
	s->slots = (uint8_t *)shmkit_region(seg, 2, &dsize);
	uint64_t nrec = h->params[1];
	if (h->num_regions != 3 || csize != SHMKIT__BUS_CTL_SIZE || nrec == 0 || nrec > 4096 || rsize != nrec * SHMKIT__REC_SIZE ||
	    s->cap == 0 || (s->cap & (s->cap - 1)) || s->cap > (UINT64_C(1) << 40) || h->params[0] != size ||
	    (h->params[2] != 1 && h->params[2] != 2) || dsize / s->slot_size != s->cap) {
		shmkit__fail(SHMKIT_ECORRUPT, "%s: bus geometry does not check out", spec);
		goto fail;
	}
	s->wcfg.spin_ns = 2000;
	s->wcfg.yield_ns = 20000;
	s->wcfg.park_max_ns = 2000000; /* table lock: poll the holder */
	s->wcfg.parks = &s->parks;
	/* 1. the table lock */
	if (shmkit__wait(SHMKIT__A32(s->ctl, SHMKIT__BUS_TABLEFREE), shmkit__bus_lock_ready, s, 10000000000LL, &s->wcfg) != 1) {
		shmkit__fail(SHMKIT_EROLE, "%s: the subscriber table stays locked", spec);
		goto fail;
	}
	uint64_t me = shmkit__self_word();
	/* 2. a record: free, else a dead anonymous subscriber's */
	int64_t idx = -1;
	for (uint64_t i = 0; i < nrec && idx < 0; i++) {
		uint8_t *r = recs + i * SHMKIT__REC_SIZE;
		uint64_t zero = 0;
		if (atomic_load(SHMKIT__A32(r, SHMKIT__REC_STATE)) == 0 &&
		    atomic_compare_exchange_strong(SHMKIT__A64(r, SHMKIT__REC_OWNER), &zero, me)) {
			if (atomic_load(SHMKIT__A32(r, SHMKIT__REC_STATE)) == 0)
				idx = (int64_t)i;
			else {
				uint64_t m = me;
				atomic_compare_exchange_strong(SHMKIT__A64(r, SHMKIT__REC_OWNER), &m, 0);
			}
		}
	}
	for (uint64_t i = 0; i < nrec && idx < 0; i++) {
		uint8_t *r = recs + i * SHMKIT__REC_SIZE;
		if (atomic_load(SHMKIT__A32(r, SHMKIT__REC_STATE)) == 2)
			continue;
		uint64_t o = atomic_load(SHMKIT__A64(r, SHMKIT__REC_OWNER));
		if (o != 0 && o != me && shmkit__word_dead(o) && atomic_compare_exchange_strong(SHMKIT__A64(r, SHMKIT__REC_OWNER), &o, me)) {
			atomic_store(SHMKIT__A32(r, SHMKIT__REC_STATE), 0);
			idx = (int64_t)i;
		}
	}
	if (idx < 0) {
		uint64_t m = me;
		atomic_compare_exchange_strong(SHMKIT__A64(s->ctl, SHMKIT__BUS_LOCK), &m, 0);
		shmkit__notify(SHMKIT__A32(s->ctl, SHMKIT__BUS_TABLEFREE));
		shmkit__fail(SHMKIT_ECAPACITY, "%s: all %llu subscriber records are in use", spec, (unsigned long long)nrec);
		goto fail;
	}
	s->rec = recs + (uint64_t)idx * SHMKIT__REC_SIZE;
	/* 3. the cursor */
	uint64_t t0 = atomic_load(SHMKIT__A64(s->ctl, SHMKIT__BUS_TAIL));
	uint64_t cur = t0;
	if (from_oldest)
		cur = t0 - (t0 < s->cap - 1 ? t0 : s->cap - 1);
	atomic_store(SHMKIT__A64(s->rec, SHMKIT__REC_LAPPED), 0);
	atomic_store(SHMKIT__A64(s->rec, SHMKIT__REC_MISSED), 0);
	atomic_store(SHMKIT__A64(s->rec, SHMKIT__REC_CURSOR), cur);
	atomic_store(SHMKIT__A32(s->rec, SHMKIT__REC_NAMELEN), 0);
	atomic_store(SHMKIT__A32(s->rec, SHMKIT__REC_STATE), 1);
	/* 4. make a Block publisher re-read the table, then look again */
	atomic_fetch_add(SHMKIT__A64(s->ctl, SHMKIT__BUS_GEN), 1);
	uint64_t t1 = atomic_load(SHMKIT__A64(s->ctl, SHMKIT__BUS_TAIL));
	if (!from_oldest)
		cur = t1;
	else if (t1 - cur >= s->cap)
		cur = t1 - s->cap + 1;
	atomic_store(SHMKIT__A64(s->rec, SHMKIT__REC_CURSOR), cur);
	s->cursor = s->tail_cache = cur;
	/* 5. unlock, then wake a publisher that may wait for the table */
	uint64_t m = me;
	atomic_compare_exchange_strong(SHMKIT__A64(s->ctl, SHMKIT__BUS_LOCK), &m, 0);
	shmkit__notify(SHMKIT__A32(s->ctl, SHMKIT__BUS_TABLEFREE));
	shmkit__notify(SHMKIT__A32(s->ctl, SHMKIT__BUS_NOTFULL));
	s->wcfg.park_max_ns = 1000000000LL;
	return s;
fail:
	shmkit_close(seg);
	free(s);
	return NULL;
}

SHMKIT__INTERNAL int shmkit__bus_ready(void *ctx)
{
	shmkit_bus_sub *s = (shmkit_bus_sub *)ctx;
	int closed = atomic_load(SHMKIT__A32(s->ctl, SHMKIT__BUS_CLOSED)) != 0;
	uint64_t t = atomic_load(SHMKIT__A64(s->ctl, SHMKIT__BUS_TAIL));
	if (t < s->cursor || (!s->overwrite && t - s->cursor > s->cap))
		return shmkit__fail(SHMKIT_ECORRUPT, "%s: tail %llu, cursor %llu, capacity %llu", s->seg->spec,
		                    (unsigned long long)t, (unsigned long long)s->cursor, (unsigned long long)s->cap);
	s->tail_cache = t;
	s->saw_closed = closed;
	return t != s->cursor || closed;
}

SHMKIT__INTERNAL void shmkit__bus_advance(shmkit_bus_sub *s, uint64_t next)
{
	uint64_t old = s->cursor;
	s->cursor = next;
	atomic_store(SHMKIT__A64(s->rec, SHMKIT__REC_CURSOR), next);
	if (!s->overwrite && (atomic_load(SHMKIT__A32(s->ctl, SHMKIT__BUS_NOTFULL)) & SHMKIT__PARKED) &&
	    atomic_load(SHMKIT__A64(s->ctl, SHMKIT__BUS_NOTFULLAT)) - old - 1 < next - old)
		shmkit__notify(SHMKIT__A32(s->ctl, SHMKIT__BUS_NOTFULL));
}

SHMKIT__INTERNAL int shmkit__bus_lagged(shmkit_bus_sub *s)
{
	uint64_t c = s->cursor, t = atomic_load(SHMKIT__A64(s->ctl, SHMKIT__BUS_TAIL));
	if (t < c + s->cap)
		return shmkit__fail(SHMKIT_ECORRUPT, "%s: slot of message %llu overwritten but tail is %llu", s->seg->spec,
		                    (unsigned long long)c, (unsigned long long)t);
	uint64_t next = t - s->cap + 1;
	s->tail_cache = t;
	shmkit__bus_advance(s, next);
	atomic_fetch_add(SHMKIT__A64(s->rec, SHMKIT__REC_LAPPED), 1);
	atomic_fetch_add(SHMKIT__A64(s->rec, SHMKIT__REC_MISSED), next - c);
	s->missed = next - c;
	return shmkit__fail(SHMKIT_ELAGGED, "%s: lapped, missed %llu messages", s->seg->spec, (unsigned long long)(next - c));
}

SHMKIT_API int shmkit_bus_next(shmkit_bus_sub *s, void *out, int64_t timeout_ns)
{
	while (s->cursor == s->tail_cache) {
		int rc = shmkit__bus_ready(s);
		if (rc < 0)
			return rc;
		if (s->cursor != s->tail_cache)
			break;
		if (s->saw_closed)
			return shmkit__fail(SHMKIT_ECLOSED, "%s: closed for writes", s->seg->spec);
		if (timeout_ns == 0)
			return SHMKIT_EEMPTY;
		rc = shmkit__wait(SHMKIT__A32(s->ctl, SHMKIT__BUS_NOTEMPTY), shmkit__bus_ready, s, timeout_ns, &s->wcfg);
		if (rc < 0)
			return rc;
	}
	uint64_t c = s->cursor, i = c & (s->cap - 1);
	if (!s->overwrite) {
		memcpy(out, s->slots + i * s->size, s->size);
		shmkit__bus_advance(s, c + 1);
		return SHMKIT_OK;
	}
	if (s->tail_cache - c > s->cap)
		return shmkit__bus_lagged(s);
	uint8_t *sl = s->slots + i * s->slot_size;
	const uint64_t voff = 8; /* the value follows the seq word (Go aligns no type beyond 8) */
	if (atomic_load(SHMKIT__A64(sl, 0)) == c + 1) {
		memcpy(out, sl + voff, s->size);
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load(SHMKIT__A64(sl, 0)) == c + 1) {
			shmkit__bus_advance(s, c + 1);
			return SHMKIT_OK;
		}
	}
	memset(out, 0, s->size);
	return shmkit__bus_lagged(s);
}

SHMKIT_API uint64_t shmkit_bus_missed(const shmkit_bus_sub *s) { return s->missed; }
SHMKIT_API uint64_t shmkit_bus_cursor(const shmkit_bus_sub *s) { return s->cursor; }

SHMKIT_API void shmkit_bus_close(shmkit_bus_sub *s)
{
	if (!s)
		return;
	uint64_t me = shmkit__self_word();
	if (atomic_load(SHMKIT__A64(s->rec, SHMKIT__REC_OWNER)) == me)
		atomic_store(SHMKIT__A32(s->rec, SHMKIT__REC_STATE), 0);
	shmkit__release_word(SHMKIT__A64(s->rec, SHMKIT__REC_OWNER));
	shmkit__notify(SHMKIT__A32(s->ctl, SHMKIT__BUS_NOTFULL));
	shmkit_close(s->seg);
	free(s);
}

/* ---- map (FORMAT.md 9), Get ---- */

struct shmkit_map {
	shmkit_segment *seg;
	uint8_t *shards, *slots;
	uint64_t seed, shard_bits, per_shard, stride, slot_size, ksize, vsize, voff;
};

SHMKIT_API shmkit_map *shmkit_map_open(const char *spec, const char *key_text, uint64_t ksize, uint64_t kalign, const char *val_text,
                                       uint64_t vsize, uint64_t valign)
{
	shmkit_segment *seg = shmkit_open(spec, SHMKIT_KIND_MAP, -1);
	if (!seg)
		return NULL;
	shmkit_map *m = (shmkit_map *)calloc(1, sizeof *m);
	if (!m) {
		shmkit_close(seg);
		return NULL;
	}
	m->seg = seg;
	const shmkit_header *h = &seg->hdr;
	if (shmkit_check_type(seg, 0, key_text, ksize, kalign) != SHMKIT_OK || shmkit_check_type(seg, 1, val_text, vsize, valign) != SHMKIT_OK)
		goto fail;
	if (h->params[0] != 1 || h->params[2] > 16 || h->params[3] < 8 || h->params[3] > (1u << 30) || h->num_regions != 2) {
		shmkit__fail(SHMKIT_ECORRUPT, "%s: map geometry does not check out", spec);
		goto fail;
	}
	m->seed = h->params[1];
	m->shard_bits = h->params[2];
	m->per_shard = h->params[3];
	m->ksize = ksize;
	m->vsize = vsize;
	m->voff = (8 + ksize + valign - 1) & ~(valign - 1);
	m->slot_size = (m->voff + vsize + 7) & ~UINT64_C(7);
	m->stride = (64 + m->slot_size + 127) & ~UINT64_C(127);
	uint64_t s0 = 0, s1 = 0, shards = UINT64_C(1) << m->shard_bits;
	m->shards = (uint8_t *)shmkit_region(seg, 0, &s0);
	m->slots = (uint8_t *)shmkit_region(seg, 1, &s1);
	if (s0 != shards * m->stride || s1 / m->slot_size / shards != m->per_shard || s1 % (m->slot_size * shards)) {
		shmkit__fail(SHMKIT_ECORRUPT, "%s: map regions of %llu and %llu bytes", spec, (unsigned long long)s0, (unsigned long long)s1);
		goto fail;
	}
	return m;
fail:
	shmkit_close(seg);
	free(m);
	return NULL;
}

SHMKIT_API int shmkit_map_get(shmkit_map *m, const void *key, void *val)
{
	uint8_t seedle[8];
	for (int i = 0; i < 8; i++)
		seedle[i] = (uint8_t)(m->seed >> (8 * i));
	shmkit__xxh x;
	shmkit__xxh_init(&x, 0);
	shmkit__xxh_update(&x, seedle, 8);
	shmkit__xxh_update(&x, key, m->ksize);
	uint64_t tag = shmkit__xxh_digest(&x) | 1;
	uint64_t sh = m->shard_bits ? tag >> (64 - m->shard_bits) : 0;
	uint8_t *ctl = m->shards + sh * m->stride;
	shmkit__a64 *seq = SHMKIT__A64(ctl, 48);
	shmkit__a32 *redo = SHMKIT__A32(ctl, 40);
	uint64_t base = sh * m->per_shard;
	uint64_t home = ((tag >> 1) & 0xffffffffu) * m->per_shard >> 32;
	for (int attempt = 0; attempt < 256; attempt++) {
		uint64_t s = atomic_load_explicit(seq, memory_order_acquire);
		if (s & 1) {
			sched_yield();
			continue;
		}
		int found = 0;
		uint64_t i = home;
		for (uint64_t n = 0; n < m->per_shard; n++) {
			uint8_t *slot = m->slots + (base + i) * m->slot_size;
			uint64_t meta;
			memcpy(&meta, slot, 8);
			if (meta == 0)
				break;
			if (meta == tag && memcmp(slot + 8, key, m->ksize) == 0) {
				memcpy(val, slot + m->voff, m->vsize);
				found = 1;
				break;
			}
			if (++i == m->per_shard)
				i = 0;
		}
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load(seq) != s)
			continue;
		if (atomic_load(redo) != 0) {
			sched_yield();
			continue;
		}
		return found;
	}
	return shmkit__fail(SHMKIT_EBUSY, "%s: shard %llu stays busy (a writer holds it or died in it)", m->seg->spec,
	                    (unsigned long long)sh);
}

SHMKIT_API void shmkit_map_close(shmkit_map *m)
{
	if (!m)
		return;
	shmkit_close(m->seg);
	free(m);
}

#endif /* SHMKIT_IMPLEMENTATION */
#endif /* SHMKIT_H */
