/* item.h: the element type the C examples share with the Go side
 * (interop.Item in Go):
 *
 *	type Item struct {
 *		Seq      uint64
 *		Producer uint32
 *		Check    uint32
 *	}
 */
#ifndef ITEM_H
#define ITEM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "shmkit.h"

typedef struct item {
	uint64_t Seq;
	uint32_t Producer;
	uint32_t Check;
} item;

/* item_check is the self-check word of item seq (interop.CheckOf in Go). */
static inline uint32_t item_check(uint64_t seq)
{
	return (uint32_t)((seq * UINT64_C(0x9E3779B97F4A7C15)) >> 32) ^ 0x5eedu;
}

/* item_type writes the layout text of struct item: the same string Go's
 * layout.Describe writes for interop.Item, minus the ARCH/ORDER prefix. */
static inline const char *item_type(char *buf, size_t cap)
{
	const shmkit_field f[] = {
		{"Seq", "uint64", offsetof(item, Seq)},
		{"Producer", "uint32", offsetof(item, Producer)},
		{"Check", "uint32", offsetof(item, Check)},
	};
	if (shmkit_struct_text(buf, cap, f, 3, sizeof(item), _Alignof(item)) != SHMKIT_OK)
		return NULL;
	return buf;
}

/* A deliberately wrong description: Producer and Check swapped. */
typedef struct bad_item {
	uint64_t Seq;
	uint32_t Check;
	uint32_t Producer;
} bad_item;

static inline const char *bad_item_type(char *buf, size_t cap)
{
	const shmkit_field f[] = {
		{"Seq", "uint64", offsetof(bad_item, Seq)},
		{"Check", "uint32", offsetof(bad_item, Check)},
		{"Producer", "uint32", offsetof(bad_item, Producer)},
	};
	if (shmkit_struct_text(buf, cap, f, 3, sizeof(bad_item), _Alignof(bad_item)) != SHMKIT_OK)
		return NULL;
	return buf;
}

#endif
