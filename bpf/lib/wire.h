/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Packet header layouts, one place for every program.
 *
 * Our own structs rather than vmlinux.h's: its structs carry
 * preserve_access_index, so each field access is a CO-RE relocation against
 * the running kernel's BTF, and some live in a module's BTF, not vmlinux's
 * (struct vxlanhdr is in the vxlan module: Debian's 6.1 refuses a program
 * using it, "failed to resolve CO-RE relocation ... struct vxlanhdr"). A
 * packet header has no layout to relocate. Every multi-byte field is in
 * network order. Fields are named as on the wire (RFC 791, 8200, 768, 7348;
 * IEEE 802.1Q). */
#ifndef __BPFNET_LIB_WIRE_H
#define __BPFNET_LIB_WIRE_H

struct wire_eth {
	__u8 dst[6];
	__u8 src[6];
	__be16 proto;           /* ethertype */
} __attribute__((packed));

struct wire_vlan {
	__be16 tci;             /* PCP, DEI, VID */
	__be16 proto;           /* the ethertype that follows */
};

struct wire_ip4 {
	__u8 ver_ihl;           /* version 4 << 4 | header length in 32-bit words */
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;        /* flags (DF, MF) and fragment offset */
	__u8 ttl;
	__u8 protocol;
	__sum16 check;
	__be32 saddr;
	__be32 daddr;
};

#define WIRE_IP4_DF     0x4000  /* host order */
#define WIRE_IP4_MF     0x2000
#define WIRE_IP4_OFFSET 0x1fff

struct wire_ip6 {
	__be32 ver_tc_flow;     /* version 6 << 28 | traffic class | flow label */
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__be32 saddr[4];
	__be32 daddr[4];
};

struct wire_udp {
	__be16 source;
	__be16 dest;
	__be16 len;
	__sum16 check;
};

struct wire_vxlan {
	__be32 flags;           /* WIRE_VXLAN_I set: the VNI is valid */
	__be32 vni;             /* VNI in the top 24 bits */
};

#define WIRE_VXLAN_I 0x08000000 /* "VNI valid" flag, host order */

#endif /* __BPFNET_LIB_WIRE_H */
