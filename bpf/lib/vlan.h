/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* 802.1Q / 802.1ad tags, wherever the kernel keeps them. */
#ifndef __BPFNET_LIB_VLAN_H
#define __BPFNET_LIB_VLAN_H

#include "lib/common.h"
#include "lib/eth.h"
#include "lib/wire.h"

#define VLAN_HLEN     4
#define VLAN_VID_MASK 0x0fff

/* Reads the outermost VLAN tag of @skb into @tci (host order: PCP, DEI,
 * VID) and @proto (network order). The tag is either in skb metadata -- the
 * receive path strips one tag before tc ingress, as a NIC with rx VLAN
 * offload does -- or still in the packet (BPF_PROG_TEST_RUN, or a frame
 * that never went through the receive path). Both are what
 * bpf_skb_vlan_pop removes. The caller must have checked @eth, the packet's
 * Ethernet header, against @data_end (eth_hdr_get).
 * Returns 1 if tagged, 0 if untagged, -1 if the packet ends inside the VLAN
 * header. */
static __always_inline int vlan_get_outer(struct __sk_buff *skb,
					  struct wire_eth *eth, void *data_end,
					  __u16 *tci, __be16 *proto)
{
	struct wire_vlan *vh;

	if (skb->vlan_present) {
		*tci = (__u16)skb->vlan_tci;
		*proto = (__be16)skb->vlan_proto;
		return 1;
	}
	if (!eth_is_vlan(eth->proto))
		return 0;
	vh = (void *)(eth + 1);
	if ((void *)(vh + 1) > data_end)
		return -1;
	*tci = bpf_ntohs(vh->tci);
	*proto = eth->proto;
	return 1;
}

/* Pushes the tag @proto (network order) / @tci (host order) as the
 * outermost one; it goes into skb metadata, and the device (tx VLAN
 * offload) or the stack writes it into the frame on transmit. Like
 * redirect_to, it first stores @tci in cb[2] and @proto in cb[3]:
 * BPF_PROG_TEST_RUN returns cb but not the skb's tag metadata, so this is
 * how prog tests see what was pushed. Returns bpf_skb_vlan_push's result;
 * packet pointers are dead afterwards. */
static __always_inline long vlan_push(struct __sk_buff *skb, __be16 proto,
				      __u16 tci)
{
	skb->cb[2] = tci;
	skb->cb[3] = proto;
	return bpf_skb_vlan_push(skb, proto, tci);
}

#endif /* __BPFNET_LIB_VLAN_H */
