/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Internet checksums (RFC 1071) with bpf_csum_diff. Sums are kept in the
 * byte order of memory, as the kernel's csum_partial does: a folded sum is
 * stored into a header as is, with no byte swap. */
#ifndef __BPFNET_LIB_CSUM_H
#define __BPFNET_LIB_CSUM_H

/* Folds a 32-bit partial sum (bpf_csum_diff's result, or a sum of such) to
 * 16 bits. Returns the folded sum, not its complement. */
static __always_inline __u16 csum_fold(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* The partial sum of @len bytes at @buf (stack memory, @len a constant
 * multiple of 4, at most 512) added to @seed. A negative result is the
 * helper's error. */
static __always_inline __s64 csum_add_buf(void *buf, __u32 len, __u32 seed)
{
	return bpf_csum_diff(NULL, 0, buf, len, seed);
}

#endif /* __BPFNET_LIB_CSUM_H */
