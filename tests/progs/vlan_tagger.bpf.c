// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Test-side: an 802.1Q/802.1ad "subinterface" made of two tc programs, for
 * kernels without the 8021q module. On a client's plain veth:
 *   tag_egress  pushes the configured tag on every frame the client sends;
 *   tag_ingress takes frames tagged with the configured VID and TPID, pops
 *               the tag and passes them up; anything else (other VLANs,
 *               untagged) is dropped, as a VLAN device never sees it.
 * tag_cfg[0] holds the tag; tag_counts[0] counts what happened, so a test can
 * tell exactly how many frames reached the client on its own VLAN. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lib/common.h"
#include "lib/eth.h"
#include "lib/vlan.h"

struct tag_cfg {
	__u16 tci;              /* host order; only the VID is matched on ingress */
	__be16 proto;           /* network order */
	__u32 pad;
};

struct tag_counts {
	__u64 pushed;           /* frames sent, tag pushed */
	__u64 popped;           /* frames received on our VLAN, tag popped */
	__u64 other_vlan;       /* frames of another VLAN or TPID, dropped */
	__u64 untagged;         /* untagged frames, dropped */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct tag_cfg);
	__uint(max_entries, 1);
} tag_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct tag_counts);
	__uint(max_entries, 1);
} tag_counts SEC(".maps");

SEC("tc")
int tag_egress(struct __sk_buff *skb)
{
	struct tag_counts *n;
	struct tag_cfg *c;
	__u32 zero = 0;

	c = bpf_map_lookup_elem(&tag_cfg, &zero);
	n = bpf_map_lookup_elem(&tag_counts, &zero);
	if (!c || !n || !c->proto)
		return TC_ACT_SHOT;
	if (bpf_skb_vlan_push(skb, c->proto, c->tci))
		return TC_ACT_SHOT;
	__sync_fetch_and_add(&n->pushed, 1);
	return TC_ACT_OK;
}

SEC("tc")
int tag_ingress(struct __sk_buff *skb)
{
	struct tag_counts *n;
	struct wire_eth *eth;
	struct tag_cfg *c;
	__be16 proto = 0;
	__u32 zero = 0;
	__u16 tci = 0;
	int tagged;

	c = bpf_map_lookup_elem(&tag_cfg, &zero);
	n = bpf_map_lookup_elem(&tag_counts, &zero);
	eth = eth_hdr_get(skb);
	if (!c || !n || !eth)
		return TC_ACT_SHOT;
	tagged = vlan_get_outer(skb, eth, (void *)(long)skb->data_end, &tci, &proto);
	if (tagged <= 0) {
		__sync_fetch_and_add(&n->untagged, 1);
		return TC_ACT_SHOT;
	}
	if (proto != c->proto ||
	    (tci & VLAN_VID_MASK) != (c->tci & VLAN_VID_MASK)) {
		__sync_fetch_and_add(&n->other_vlan, 1);
		return TC_ACT_SHOT;
	}
	if (bpf_skb_vlan_pop(skb))
		return TC_ACT_SHOT;
	__sync_fetch_and_add(&n->popped, 1);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
