/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Tunnel metadata for an external (collect_md) VXLAN device, IPv4 or IPv6. */
#ifndef __BPFNET_LIB_TUNNEL_H
#define __BPFNET_LIB_TUNNEL_H

#include "lib/common.h"
#include "lib/ip.h"

#define TUNNEL_TTL 64

/* Reads the received frame's tunnel metadata: @vni (host order) and the
 * sending VTEP @remote (network order, IPv4-mapped for IPv4). Returns 0, or a
 * negative errno when the frame carries none (not from a collect_md device). */
static __always_inline int tunnel_get(struct __sk_buff *skb, __u32 *vni,
				      struct bpfnet_ip *remote)
{
	struct bpf_tunnel_key key;

	__builtin_memset(&key, 0, sizeof(key));
	if (bpf_skb_get_tunnel_key(skb, &key, sizeof(key), 0) == 0) {
		/* the helper gives IPv4 in host order */
		ip_set_v4(remote, bpf_htonl(key.remote_ipv4));
	} else {
		__builtin_memset(&key, 0, sizeof(key));
		if (bpf_skb_get_tunnel_key(skb, &key, sizeof(key),
					   BPF_F_TUNINFO_IPV6))
			return -1;
		/* IPv6 comes in network order */
		__builtin_memcpy(remote->addr, key.remote_ipv6, 16);
	}
	*vni = key.tunnel_id;
	return 0;
}

/* Sets the tunnel metadata for transmission through a collect_md device:
 * destination @remote, source @local (zero: routing picks) and @vni (host
 * order). Both addresses must be of one family. Returns the helper's result. */
static __always_inline int tunnel_set(struct __sk_buff *skb,
				      const struct bpfnet_ip *remote,
				      const struct bpfnet_ip *local, __u32 vni)
{
	struct bpf_tunnel_key key;
	__u64 flags = 0;

	__builtin_memset(&key, 0, sizeof(key));
	key.tunnel_id = vni;
	key.tunnel_ttl = TUNNEL_TTL;
	if (ip_is_v4(remote)) {
		key.remote_ipv4 = bpf_ntohl(remote->addr[3]);
		if (ip_is_v4(local))
			key.local_ipv4 = bpf_ntohl(local->addr[3]);
	} else {
		__builtin_memcpy(key.remote_ipv6, remote->addr, 16);
		if (!ip_is_zero(local) && !ip_is_v4(local))
			__builtin_memcpy(key.local_ipv6, local->addr, 16);
		flags = BPF_F_TUNINFO_IPV6;
	}
	return bpf_skb_set_tunnel_key(skb, &key, sizeof(key), flags);
}

#endif /* __BPFNET_LIB_TUNNEL_H */
