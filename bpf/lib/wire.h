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

/* ARP for IPv4 over Ethernet (RFC 826): the only kind bpfnet answers. */
struct wire_arp {
	__be16 htype;           /* 1: Ethernet */
	__be16 ptype;           /* ETH_P_IP */
	__u8 hlen;              /* 6 */
	__u8 plen;              /* 4 */
	__be16 op;              /* WIRE_ARP_REQUEST or WIRE_ARP_REPLY */
	__u8 sha[6];            /* sender hardware address */
	__u8 spa[4];            /* sender protocol address */
	__u8 tha[6];            /* target hardware address */
	__u8 tpa[4];            /* target protocol address */
} __attribute__((packed));

#define WIRE_ARP_REQUEST 1
#define WIRE_ARP_REPLY   2

/* ICMPv6 neighbour solicitation and advertisement (RFC 4861 4.3, 4.4). */
struct wire_nd {
	__u8 type;              /* WIRE_ND_NS or WIRE_ND_NA */
	__u8 code;
	__sum16 check;
	__be32 flags;           /* NA: WIRE_ND_F_*; NS: reserved */
	__be32 target[4];
};

#define WIRE_IPPROTO_ICMPV6 58
#define WIRE_ND_NS 135
#define WIRE_ND_NA 136
#define WIRE_ND_F_ROUTER    0x80000000 /* host order */
#define WIRE_ND_F_SOLICITED 0x40000000
#define WIRE_ND_F_OVERRIDE  0x20000000

/* A source (1) or target (2) link-layer address option, Ethernet. */
struct wire_nd_lladdr {
	__u8 type;              /* WIRE_ND_OPT_SRC_LL or WIRE_ND_OPT_TGT_LL */
	__u8 len;               /* 1: 8 bytes */
	__u8 mac[6];
};

#define WIRE_ND_OPT_SRC_LL 1
#define WIRE_ND_OPT_TGT_LL 2

#endif /* __BPFNET_LIB_WIRE_H */
