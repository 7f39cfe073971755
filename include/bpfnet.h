/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Contract shared by every bpfnet object and python/bpfnet/abi.py.
 * Declarations only, fixed-width types, explicit padding. */
#ifndef __BPFNET_H
#define __BPFNET_H

/* An underlay or tenant IP address, IPv4 or IPv6, 16 bytes in network order.
 * IPv4 is stored IPv4-mapped (::ffff:a.b.c.d) so one key layout serves both. */
struct bpfnet_ip {
	__be32 addr[4]; /* network order */
};

/* tc (cls_bpf) attach point bpfnet owns: filters are added and removed only
 * with this priority and handle, so foreign filters are never touched. */
#define BPFNET_TC_PRIO   0xbf00
#define BPFNET_TC_HANDLE 0xbf
/* The bridge's and the mesh's decapsulation on an underlay, which the
 * monitor may share: after it (a higher prio runs later), so the monitor
 * counts every frame. */
#define BPFNET_TC_PRIO_DECAP 0xbf01

/* Default FDB ageing, like the kernel bridge's. */
#define BPFNET_AGEING_S 300

#endif /* __BPFNET_H */
