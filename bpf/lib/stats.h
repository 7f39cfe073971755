/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Per-CPU counters: a PERCPU_ARRAY of __u64 indexed by a function's enum. */
#ifndef __BPFNET_LIB_STATS_H
#define __BPFNET_LIB_STATS_H

/* Adds 1 to counter @idx of per-CPU array @map; no atomics needed since each
 * CPU owns its slot. Silently ignores an index out of range. */
static __always_inline void stats_inc(void *map, __u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(map, &idx);

	if (v)
		*v += 1;
}

#endif /* __BPFNET_LIB_STATS_H */
