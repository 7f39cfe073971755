// bpfnet tunnel monitor: a live chord diagram of /tunnel.json (d3-chord).
// Hosts view: groups are outer IPs (VTEPs), ribbons the bytes between them.
// Click a host: its traffic by inner IP, as the seed's chord-transitions did.
// ?interval=MS sets the polling period (default 2000).
(function () {
  "use strict";

  const params = new URLSearchParams(window.location.search);
  const POLL_MS = Math.max(200, Number(params.get("interval")) || 2000);
  const OUTER_R = 215, INNER_R = 197;

  const state = {
    rows: [], prev: null, prevAt: 0, rates: new Map(),
    vni: "all", mode: "totals", focus: null, renders: 0,
  };

  const fmtBytes = (v) => (v < 1000 ? d3.format(",.0f")(v) : d3.format(".3~s")(v)) + "B";
  const fmtRate = (v) => fmtBytes(v) + "/s";
  const fmtInt = d3.format(",");
  const fmtValue = (v) => (state.mode === "rates" ? fmtRate(v) : fmtBytes(v));
  const flowId = (r) => [r.vni, r.outer_sip, r.outer_dip, r.inner_sip, r.inner_dip].join("|");
  const isZero = (ip) => ip === "0.0.0.0" || ip === "::";
  const isGroup = (ip) => /^ff/i.test(ip) || (/^\d+\./.test(ip) && +ip.split(".")[0] >= 224 &&
                                             +ip.split(".")[0] <= 239);
  // an all-zero inner address is a non-IP frame, or an unspecified source
  const label = (ip) => (isZero(ip) ? ip + " / non-IP" : ip + (isGroup(ip) ? " (group)" : ""));
  const innerLabel = (ip, other) => (isZero(ip) && isZero(other) ? "non-IP" : ip);

  const svg = d3.select("#chord").attr("viewBox", [-410, -395, 820, 790]);
  const gRibbons = svg.append("g").attr("class", "ribbons");
  const gGroups = svg.append("g").attr("class", "groups");
  const chord = d3.chord().padAngle(0.03).sortSubgroups(d3.descending);
  const arc = d3.arc().innerRadius(INNER_R).outerRadius(OUTER_R);
  const ribbon = d3.ribbon().radius(INNER_R - 1).padAngle(0.002);
  const color = d3.scaleOrdinal(d3.schemeTableau10);

  // a row's weight: bytes both ways, or bytes/s over the last poll
  function weight(r) {
    if (state.mode === "rates") return state.rates.get(flowId(r)) || 0;
    return r.tx_bytes + r.rx_bytes;
  }

  function filtered() {
    return state.rows.filter((r) => state.vni === "all" || String(r.vni) === state.vni);
  }

  // nodes and a symmetric matrix from pairs (a, b, weight)
  function build(pairs) {
    const names = Array.from(new Set(pairs.flatMap((p) => [p[0], p[1]])));
    names.sort((a, b) => d3.ascending(sortKey(a), sortKey(b)));
    const index = new Map(names.map((n, i) => [n, i]));
    const matrix = names.map(() => names.map(() => 0));
    for (const [a, b, w] of pairs) {
      const i = index.get(a), j = index.get(b);
      matrix[i][j] += w;
      if (i !== j) matrix[j][i] += w;
    }
    return { names, matrix };
  }

  function sortKey(ip) {
    if (ip.includes(".") && !ip.includes(":")) {
      return "4" + ip.split(".").map((o) => o.padStart(3, "0")).join(".");
    }
    return "6" + ip;
  }

  function hostsData(rows) {
    return build(rows.map((r) => [r.outer_sip, r.outer_dip, weight(r)]));
  }

  function innerRows(rows, host) {
    return rows.filter((r) => r.outer_sip === host || r.outer_dip === host);
  }

  function innerData(rows, host) {
    return build(innerRows(rows, host).map((r) => [r.inner_sip, r.inner_dip, weight(r)]));
  }

  function midAngle(d) {
    return (d.startAngle + d.endAngle) / 2;
  }

  function arcTween(d) {
    const prev = this._current || { startAngle: d.startAngle, endAngle: d.startAngle };
    const i = d3.interpolate(prev, d);
    this._current = d;
    return (t) => arc(i(t));
  }

  function draw(names, matrix, view) {
    const total = d3.sum(matrix.flat());
    d3.select("#empty").property("hidden", total > 0)
      .text(state.rows.length ? "no traffic in this selection" : "no VXLAN traffic counted yet");
    const chords = total > 0 ? chord(matrix) : Object.assign([], { groups: [] });
    const t = svg.transition().duration(state.renders ? 450 : 0);

    // leaving elements are marked so that a render during their fade-out
    // (the next poll) neither picks them up again nor restarts the fade
    const groups = gGroups.selectAll("g.group:not(.exiting)")
      .data(chords.groups, (d) => view + names[d.index]);
    groups.exit().classed("exiting", true).transition(t).style("opacity", 0).remove();
    const enter = groups.enter().append("g").attr("class", "group").style("opacity", 0);
    enter.append("path");
    enter.append("title");
    const text = enter.append("text").attr("dy", "0.35em");
    text.append("tspan").attr("class", "name");
    text.append("tspan").attr("class", "sub").attr("dx", "0.5em");
    const all = enter.merge(groups);
    all.attr("data-ip", (d) => names[d.index])
      .attr("data-value", (d) => d.value)
      .on("click", (event, d) => {
        if (view === "hosts") focusOn(names[d.index]);
      });
    all.transition(t).style("opacity", 1);
    all.select("path").attr("fill", (d) => color(names[d.index]))
      .transition(t).attrTween("d", arcTween);
    all.select("title").text((d) => `${label(names[d.index])}: ${fmtValue(d.value)}` +
      (view === "hosts" ? " (click for its inner IPs)" : ""));
    all.select("text")
      .attr("text-anchor", (d) => (midAngle(d) > Math.PI ? "end" : null))
      .transition(t)
      .attr("transform", (d) => `rotate(${(midAngle(d) * 180) / Math.PI - 90}) ` +
        `translate(${OUTER_R + 8})${midAngle(d) > Math.PI ? " rotate(180)" : ""}`);
    all.select("tspan.name").text((d) => label(names[d.index]));
    // tiny arcs (floods to a group) keep their name but not their figure
    all.select("tspan.sub").text((d) => (d.endAngle - d.startAngle > 0.02 ? fmtValue(d.value) : ""));

    const ribbons = gRibbons.selectAll("path:not(.exiting)")
      .data(chords, (d) => view + names[d.source.index] + ">" + names[d.target.index]);
    ribbons.exit().classed("exiting", true).transition(t).style("opacity", 0).remove();
    const renter = ribbons.enter().append("path").style("opacity", 0);
    renter.append("title");
    const rall = renter.merge(ribbons);
    // a ribbon takes the colour of its smaller end: in a star (one monitored
    // host talking to many) each peer keeps its own colour
    const size = (i) => (chords.groups[i] ? chords.groups[i].value : 0);
    const end = (d) => (size(d.source.index) <= size(d.target.index) ? d.source : d.target);
    rall.attr("fill", (d) => color(names[end(d).index]))
      .attr("data-pair", (d) => names[d.source.index] + " " + names[d.target.index]);
    rall.select("title").text((d) => `${label(names[d.source.index])} \u2194 ` +
      `${label(names[d.target.index])}: ${fmtValue(d.source.value)}`);
    rall.transition(t).style("opacity", 1).attr("d", ribbon);
  }

  function table(columns, rows) {
    const tbl = d3.select("#table");
    tbl.select("thead").selectAll("tr").data([columns]).join("tr")
      .selectAll("th").data((c) => c).join("th")
      .attr("class", (c) => (c.num ? "num" : null)).text((c) => c.title);
    tbl.select("tbody").selectAll("tr").data(rows).join("tr")
      .selectAll("td").data((r) => columns.map((c) => [c, r])).join("td")
      .attr("class", ([c]) => (c.num ? "num" : null))
      .text(([c, r]) => c.get(r));
  }

  function hostsTable(rows) {
    const pairs = d3.rollups(rows, (rs) => ({
      a: rs[0].outer_sip, b: rs[0].outer_dip,
      vnis: Array.from(new Set(rs.map((r) => r.vni))).sort(d3.ascending).join(","),
      value: d3.sum(rs, weight), pkts: d3.sum(rs, (r) => r.tx_pkts + r.rx_pkts),
    }), (r) => r.outer_sip + " " + r.outer_dip).map((e) => e[1]);
    pairs.sort((x, y) => d3.descending(x.value, y.value));
    d3.select("#table").attr("class", "pairs");
    table([
      { title: "host", get: (p) => label(p.a) },
      { title: "host", get: (p) => label(p.b) },
      { title: "VNIs", get: (p) => p.vnis },
      { title: state.mode === "rates" ? "rate" : "bytes", num: true, get: (p) => fmtValue(p.value) },
      { title: "packets", num: true, get: (p) => fmtInt(p.pkts) },
    ], pairs);
  }

  function breakdownTable(rows, host) {
    const list = innerRows(rows, host).map((r) => {
      const mine = r.outer_sip === host;
      return {
        vni: r.vni, peer: mine ? r.outer_dip : r.outer_sip,
        src: r.inner_sip, dst: r.inner_dip, value: weight(r),
        tx: r.tx_bytes, rx: r.rx_bytes, pkts: r.tx_pkts + r.rx_pkts,
      };
    });
    list.sort((x, y) => d3.descending(x.value, y.value));
    d3.select("#table").attr("class", "breakdown");
    table([
      { title: "VNI", num: true, get: (r) => r.vni },
      { title: "peer host", get: (r) => label(r.peer) },
      { title: "inner IP", get: (r) => innerLabel(r.src, r.dst) },
      { title: "inner IP", get: (r) => innerLabel(r.dst, r.src) },
      { title: state.mode === "rates" ? "rate" : "bytes", num: true, get: (r) => fmtValue(r.value) },
      { title: "tx", num: true, get: (r) => fmtBytes(r.tx) },
      { title: "rx", num: true, get: (r) => fmtBytes(r.rx) },
      { title: "packets", num: true, get: (r) => fmtInt(r.pkts) },
    ], list);
  }

  function render() {
    const rows = filtered();
    const vniText = state.vni === "all" ? "all VNIs" : "VNI " + state.vni;
    if (state.focus !== null) {
      const { names, matrix } = innerData(rows, state.focus);
      draw(names, matrix, "inner");
      breakdownTable(rows, state.focus);
      d3.select("#title").text(`${label(state.focus)} by inner IP, ${vniText}`);
    } else {
      const { names, matrix } = hostsData(rows);
      draw(names, matrix, "hosts");
      hostsTable(rows);
      d3.select("#title").text(`traffic between VTEPs, ${vniText}`);
    }
    d3.select("#back").property("hidden", state.focus === null);
    document.body.dataset.view = state.focus === null ? "hosts" : "inner";
    state.renders += 1;
    document.body.dataset.renders = String(state.renders);
  }

  function focusOn(host) {
    state.focus = host;
    render();
  }

  function updateVnis() {
    const vnis = Array.from(new Set(state.rows.map((r) => String(r.vni))))
      .sort((a, b) => a - b);
    const sel = d3.select("#vni");
    sel.selectAll("option.vni").data(vnis, (v) => v).join("option")
      .attr("class", "vni").attr("value", (v) => v).text((v) => v);
    if (state.vni !== "all" && !vnis.includes(state.vni)) state.vni = "all";
    sel.property("value", state.vni);
  }

  function updateRates(rows, now) {
    state.rates = new Map();
    if (state.prev) {
      const dt = (now - state.prevAt) / 1000;
      for (const r of rows) {
        const p = state.prev.get(flowId(r));
        const cur = r.tx_bytes + r.rx_bytes;
        const before = p ? p.tx_bytes + p.rx_bytes : 0;
        state.rates.set(flowId(r), dt > 0 ? (cur >= before ? cur - before : cur) / dt : 0);
      }
    }
    state.prev = new Map(rows.map((r) => [flowId(r), r]));
    state.prevAt = now;
  }

  async function poll() {
    try {
      const [rows, st] = await Promise.all([
        fetch("/tunnel.json", { cache: "no-store" }).then(check),
        fetch("/status.json", { cache: "no-store" }).then(check),
      ]);
      updateRates(rows, performance.now());
      state.rows = rows;
      updateVnis();
      d3.select("#status").classed("error", false).text(
        `${st.namespace}${st.device ? " / " + st.device : ""} \u00b7 UDP ${st.port} \u00b7 ` +
        `${fmtInt(st.flows)} of ${fmtInt(st.max_flows)} flows \u00b7 ` +
        `${fmtInt(st.evicted)} evicted \u00b7 ${new Date().toLocaleTimeString()}`);
      render();
    } catch (err) {
      d3.select("#status").classed("error", true).text(String(err.message || err));
    } finally {
      window.setTimeout(poll, POLL_MS);
    }
  }

  async function check(resp) {
    const body = await resp.json();
    if (!resp.ok) throw new Error(body.error || resp.statusText);
    return body;
  }

  d3.select("#vni").on("change", function () {
    state.vni = this.value;
    render();
  });
  d3.selectAll("input[name=mode]").on("change", function () {
    state.mode = this.value;
    render();
  });
  d3.select("#back").on("click", () => focusOn(null));

  poll();
})();
