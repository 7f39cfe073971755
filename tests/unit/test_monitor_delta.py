"""The monitor's read-outs without a kernel: flow_json (the seed's stats2json
for one mon_flows entry) and delta (the seed's delta_stats, what
`stats --watch` writes to tunnel-delta.json). Pure: no root."""
from bpfnet.abi import MonFlowKey, MonFlowVal, ip_pack
from bpfnet.functions.monitor import FLOW_KEYS, delta, flow_id, flow_json


def row(vni=10, osip="10.99.0.1", odip="10.99.0.2", isip="192.168.0.1", idip="192.168.0.2",
        tx=0, txb=0, rx=0, rxb=0):
    return {"vni": vni, "outer_sip": osip, "outer_dip": odip, "inner_sip": isip,
            "inner_dip": idip, "tx_pkts": tx, "tx_bytes": txb, "rx_pkts": rx, "rx_bytes": rxb}


def test_flow_json_has_the_seeds_keys_in_order():
    k = MonFlowKey(outer_sip=ip_pack("10.99.0.1"), outer_dip=ip_pack("10.99.0.2"), vni=16777215,
                   inner_sip=ip_pack("192.168.0.1"), inner_dip=ip_pack("192.168.0.2"))
    v = MonFlowVal(tx_pkts=1, tx_bytes=100, rx_pkts=2, rx_bytes=300)
    j = flow_json(k, v)
    assert tuple(j) == FLOW_KEYS
    assert j == row(vni=16777215, tx=1, txb=100, rx=2, rxb=300)


def test_flow_json_zero_inner_addresses():
    """A non-IP inner frame reads 0.0.0.0 as in the seed; beside an IPv6
    peer an all-zero address is :: (IPv6 DAD's unspecified source)."""
    k = MonFlowKey(outer_sip=ip_pack("10.99.0.1"), outer_dip=ip_pack("239.1.1.1"), vni=10)
    j = flow_json(k, MonFlowVal())
    assert (j["inner_sip"], j["inner_dip"]) == ("0.0.0.0", "0.0.0.0")
    k.inner_dip = ip_pack("ff02::1")
    j = flow_json(k, MonFlowVal())
    assert (j["inner_sip"], j["inner_dip"]) == ("::", "ff02::1")


def test_flow_id_is_vni_and_the_four_addresses():
    assert flow_id(row(tx=5)) == (10, "10.99.0.1", "10.99.0.2", "192.168.0.1", "192.168.0.2")


def test_delta_first_round_is_everything_that_moved():
    cur = [row(tx=3, txb=300), row(vni=11), row(vni=12, rx=1, rxb=64)]
    assert delta([], cur) == [row(tx=3, txb=300), row(vni=12, rx=1, rxb=64)]


def test_delta_subtracts_the_previous_round():
    prev = [row(tx=3, txb=300, rx=1, rxb=100)]
    cur = [row(tx=5, txb=520, rx=1, rxb=100)]
    assert delta(prev, cur) == [row(tx=2, txb=220, rx=0, rxb=0)]


def test_delta_leaves_out_what_did_not_move():
    prev = [row(tx=3, txb=300), row(vni=11, rx=1, rxb=64)]
    cur = [row(tx=3, txb=300), row(vni=11, rx=2, rxb=128)]
    assert delta(prev, cur) == [row(vni=11, rx=1, rxb=64)]


def test_delta_of_a_restarted_entry_counts_from_zero():
    """Evicted, then seen again: its counters went down, so it counts whole."""
    prev = [row(tx=10, txb=1000)]
    cur = [row(tx=2, txb=200)]
    assert delta(prev, cur) == [row(tx=2, txb=200)]


def test_delta_keys_on_the_whole_flow():
    prev = [row(tx=4, txb=400)]
    cur = [row(tx=4, txb=400), row(idip="192.168.0.3", tx=1, txb=100)]
    assert delta(prev, cur) == [row(idip="192.168.0.3", tx=1, txb=100)]


def test_delta_does_not_change_its_inputs():
    prev, cur = [row(tx=1, txb=10)], [row(tx=2, txb=20)]
    delta(prev, cur)
    assert (prev, cur) == ([row(tx=1, txb=10)], [row(tx=2, txb=20)])
