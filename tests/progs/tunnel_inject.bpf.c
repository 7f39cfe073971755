// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Test-side: BPF_PROG_TEST_RUN cannot hand a program tunnel metadata, so this
 * program sets the metadata a collect_md VXLAN device would have attached
 * (VNI and sender from inject_cfg) and tail-calls the program under test
 * (inject_progs[0]). The sender is written as the key's local address, since
 * bpf_skb_get_tunnel_key reports a received frame's source as "remote". */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lib/common.h"
#include "bpfnet.h"

struct inject_cfg {
	struct bpfnet_ip remote;
	__u32 vni;
	__u32 ipv6;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct inject_cfg);
	__uint(max_entries, 1);
} inject_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
	__uint(max_entries, 1);
} inject_progs SEC(".maps");

SEC("tc")
int inject_tunnel(struct __sk_buff *skb)
{
	struct bpf_tunnel_key key;
	struct inject_cfg *c;
	__u32 zero = 0;
	__u64 flags = 0;

	c = bpf_map_lookup_elem(&inject_cfg, &zero);
	if (!c)
		return 99;
	__builtin_memset(&key, 0, sizeof(key));
	key.tunnel_id = c->vni;
	if (c->ipv6) {
		__builtin_memcpy(key.local_ipv6, c->remote.addr, 16);
		key.remote_ipv6[3] = bpf_htonl(1);
		flags = BPF_F_TUNINFO_IPV6;
	} else {
		key.local_ipv4 = bpf_ntohl(c->remote.addr[3]);
		key.remote_ipv4 = 0x7f000001;
	}
	if (bpf_skb_set_tunnel_key(skb, &key, sizeof(key), flags))
		return 98;
	bpf_tail_call(skb, &inject_progs, 0);
	return 97;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
