"""bpfnet benchmarks: ``make bench`` (``python -m bpfnet.bench --out build/bench``).

Side by side in one run on one machine, variants interleaved (A B C A B C)
so that a noisy neighbour hurts every variant alike; each figure is the
median of the rounds with min and max, and a ratio against the kernel's own
variant from the same run.

    datapath.py  two hosts in namespaces, tenant to tenant: TCP (iperf3) and
                 64-byte UDP frames per second, for bpfnet bridge, mesh and
                 bridge + monitor, the kernel's VXLAN + Linux bridge
                 (multicast learning), the kernel's VXLAN with a unicast
                 flood list, and no encapsulation at all
    progs.py     each program under BPF_PROG_TEST_RUN: ns per packet
    control.py   `bpfnetctl load bridge` as a whole process; FDB provisioning
                 and dumps, bpfnet batch map operations against the kernel
                 FDB over netlink
    cluster.py   20 hosts with agents and etcd: how long a leave, a join and
                 a key take to reach every other host; an agent's cost at rest
    floods.py    10 hosts with agents and etcd, 4 tenants each: floods per host
                 per minute with learning only and with MAC/IP routes + ARP/ND
                 suppression; how long until every host knows a new MAC
    profile.py   `python -m bpfnet.bench.profile` (the second step of `make
                 bench`): perf profiles of the datapath variants, where the
                 CPU time goes per KiB (TCP) and per frame (64 B UDP)
    report.py    summaries, the targets, the Markdown tables and the JSON file

Benchmarks are not tests: nothing here asserts a time.
"""
