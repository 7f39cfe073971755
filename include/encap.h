/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* In-program VXLAN encapsulation, shared by the bridge and the mesh and by
 * python/bpfnet/abi.py. Each function has its own pair of maps
 * (br_encap/br_encap_stats, mesh_encap/mesh_encap_stats) of these types.
 * A changed layout is a new map name (see README, "Upgrades"). */
#ifndef __BPFNET_ENCAP_H
#define __BPFNET_ENCAP_H

#include "bpfnet.h"

#define ENCAP_F_NATIVE (1U << 0) /* encapsulate and decapsulate in the programs */
#define ENCAP_F_IPV6   (1U << 1) /* the underlay is IPv6 (else IPv4) */

/* Outer headers, bytes: Ethernet + IPv4/IPv6 + UDP + VXLAN. */
#define ENCAP_HLEN4 50
#define ENCAP_HLEN6 70

/* <fn>_encap[0]: written by the control plane at load. With ENCAP_F_NATIVE
 * clear (`--encap device`, or a kernel that failed the probe) every frame
 * takes the VXLAN device, as before. */
struct encap_cfg {
	__u32 underlay;         /* ifindex the encapsulated frames leave by */
	__u32 flags;            /* ENCAP_F_* */
	__be16 dstport;         /* VXLAN UDP port, network order */
	__u8 src_mac[6];        /* the underlay's MAC: outer source */
	__u16 sport_min;        /* outer UDP source ports: [min, max), host */
	__u16 sport_max;        /* order (the kernel's ip_local_port_range) */
	__u32 pad;
	struct bpfnet_ip local; /* outer source address (required for native) */
};

/* <fn>_encap_stats[0]: per-CPU counters of the path each frame took. */
struct encap_stats {
	__u64 encap;            /* frames encapsulated in the program */
	__u64 encap_l2;         /* of these, non-IP inner frames (ARP): change_head */
	__u64 tx_device;        /* frames sent through the VXLAN device */
	__u64 tx_fallback;      /* of these, native on but the frame not fit for it
				 * (IPv6 GSO, VLAN tag in metadata, other family,
				 * no route or neighbour from the program) */
	__u64 decap;            /* frames decapsulated in the program */
	__u64 rx_fallback_gso;  /* VXLAN for us left to the device: GSO/GRO */
	__u64 rx_fallback_frag; /* ... IP fragments */
	__u64 rx_fallback_tcp;  /* ... TCP, which GSO/GRO frames of the same flow
				 * take the device for: one path keeps it in order */
	__u64 rx_fallback;      /* ... anything else unsure (IPv4 options, VXLAN
				 * flags, unknown VNI or peer, IPv6 checksum) */
	__u64 drop_mtu;         /* too big for the underlay (DF): refused */
	__u64 drop_encap;       /* a helper failed half-way: dropped */
};

#endif /* __BPFNET_ENCAP_H */
