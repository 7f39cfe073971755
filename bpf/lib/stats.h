/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Per-CPU counters: a one-entry PERCPU_ARRAY whose value is a struct of
 * __u64 fields, one per counter, so `bpftool map dump` prints their names
 * (an array map cannot be keyed by an enum: the kernel drops its BTF). */
#ifndef __BPFNET_LIB_STATS_H
#define __BPFNET_LIB_STATS_H

/* Adds 1 to counter @field of per-CPU stats map @map (a BTF-defined map
 * variable). No atomics: each CPU owns its copy. */
#define stats_inc(map, field)                                              \
	({                                                                 \
		__u32 __stats_key = 0;                                     \
		__typeof__(*(map).value) *__stats =                        \
			bpf_map_lookup_elem(&(map), &__stats_key);         \
		if (__stats)                                               \
			__stats->field += 1;                               \
	})

#endif /* __BPFNET_LIB_STATS_H */
