#!/usr/bin/env python3
"""bench/run.sh's report: rows (JSON lines) → bench.json, bench.md and latency.svg in RESULTS_DIR,
and the markdown on stdout. Ratios compare lrsgate with the baselines of the same scenario and
run; the tenants scenarios compare with post_1kb's baselines (the same request, one tenant).

  report.py ROWS RESULTS_DIR SECONDS CONNECTIONS CPUS [APPENDIX.md]

APPENDIX.md (the micro-benches' and the scale bench's tables) is appended to bench.md as is.
"""

import json
import sys

GOALS = [
    "validated POST throughput >= 0.8x the plain proxy (post_1kb: vs nginx)",
    "added p50 latency <= 50 us over the direct baseline (post_1kb over one connection)",
    "<= 40 us lrsgate CPU per validated request (post_1kb)",
    "validated 1 KB POST CPU per request <= 1.15x the Pingora passthrough's (post_1kb)",
    "validated 1 KB POST throughput >= 0.85x the Pingora passthrough's (post_1kb)",
    "judged statement list CPU per request <= 1.3x the Pingora passthrough's (get_list)",
]
BASELINES = ("direct", "nginx", "passthrough")


def main(rows_path, out_dir, secs, conns, cpus, appendix=None):
    rows = [json.loads(line) for line in open(rows_path) if line.strip()]
    if not rows:
        md = open(appendix).read() if appendix else ""
        open(f"{out_dir}/bench.md", "w").write(md)
        print(md)
        return
    # Baselines of the same scenario and round (rows without a round: the first round's).
    base = {}
    for r in rows:
        if r.get("path") in BASELINES:
            base[(r["scenario"], r["path"], r.get("round", 1))] = r
    for r in rows:
        if r.get("path") not in ("lrsgate", "passthrough") or "rps" not in r:
            continue
        ref = "post_1kb" if r["scenario"].startswith("tenants_") else r["scenario"]
        rnd = r.get("round", 1)
        for path in BASELINES:
            b = base.get((ref, path, rnd))
            if b is None or b is r:
                continue
            if b["rps"]:
                r[f"vs_{path}"] = round(r["rps"] / b["rps"], 3)
            if path == "passthrough" and b.get("cpu_us_per_req") and r.get("cpu_us_per_req"):
                r["cpu_vs_passthrough"] = round(r["cpu_us_per_req"] / b["cpu_us_per_req"], 3)
            if path == "nginx" and b.get("cpu_us_per_req") and r.get("cpu_us_per_req"):
                r["cpu_vs_nginx"] = round(r["cpu_us_per_req"] / b["cpu_us_per_req"], 3)
        d = base.get((ref, "direct", rnd))
        if d:
            r["added_p50_us"] = round((r["p50_ms"] - d["p50_ms"]) * 1000)
    meta = {"seconds": int(secs), "connections": int(conns), "cpus": int(cpus)}
    json.dump({"meta": meta, "rows": rows}, open(f"{out_dir}/bench.json", "w"), indent=2)

    lines = [
        f"Each run {secs} s, {conns} connections, wrk -t1 on CPU 0, servers on CPU 1 ({cpus} CPUs, shared).",
        "",
        "CPU µs/req is the serving process's own (the stand-in LRS for direct). Ratios are against the same scenario's",
        "baselines in the same round; `pt` is the plain Pingora passthrough (bench/passthrough.rs).",
        "",
        "| scenario | round | path | req/s | p50 ms | p99 ms | p99.9 ms | errors | CPU µs/req | peak RSS MB | vs direct | vs nginx | vs pt | CPU vs pt | CPU vs nginx | added p50 µs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "rps" not in r:
            continue
        fmt = lambda k: "" if r.get(k) is None else str(r[k])
        lines.append(
            f"| {r['scenario']} | {fmt('round')} | {r['path']} | {r['rps']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['p999_ms']:.2f} "
            f"| {r['errors']} | {fmt('cpu_us_per_req')} | {fmt('peak_rss_mb')} | {fmt('vs_direct')} | {fmt('vs_nginx')} "
            f"| {fmt('vs_passthrough')} | {fmt('cpu_vs_passthrough')} | {fmt('cpu_vs_nginx')} | {fmt('added_p50_us')} |"
        )
    instr = [r for r in rows if r["scenario"].startswith("instructions_")]
    if instr:
        lines += ["", "| instructions per request (callgrind, one connection) | path | requests | instructions | vs passthrough |",
                  "|---|---|---|---|---|"]
        floor = {r["scenario"]: r["instructions_per_req"] for r in instr if r["path"] == "passthrough"}
        for r in instr:
            f = floor.get(r["scenario"])
            ratio = f"{r['instructions_per_req'] / f:.3f}" if f else ""
            lines.append(f"| {r['scenario'][len('instructions_'):]} | {r['path']} | {r['requests']} | {r['instructions_per_req']} | {ratio} |")
    extras = [r for r in rows if ("rps" not in r or "tenants" in r) and not r["scenario"].startswith("instructions_")]
    if extras:
        lines += ["", "| measure | value |", "|---|---|"]
        for r in extras:
            if r["scenario"].startswith("idle_"):
                lines.append(
                    f"| {r['connections']} idle keep-alive connections, {r['path']} | RSS {r['rss_before_mb']} → {r['rss_after_mb']} MB "
                    f"({r['kb_per_connection']} KB each) |"
                )
            elif r["scenario"] == "ratelimit_accuracy":
                lines.append(
                    f"| one token at full speed, limit {r['limit_per_second']}/s | {r['requests']} requests, "
                    f"{r['refused']} refused (429), {r['accepted_per_second']} accepted per second |"
                )
            elif "tenants" in r:
                lines.append(
                    f"| {r['tenants']} tenants (file mode) | start {r['start_seconds']} s, RSS after load "
                    f"{r['rss_after_load_mb']} MB, {r['distinct_tokens']} distinct tokens |"
                )
    # Audit on against off, the same load interleaved by round: mean req/s and CPU per request.
    audit = {}
    for r in rows:
        if r["scenario"].startswith("audit_") and "rps" in r:
            _, mode, load = r["scenario"].split("_", 2)
            audit.setdefault(load, {}).setdefault(mode, []).append(r)
    if audit:
        lines += ["", "| audit trail (every request one event) | off req/s | on req/s | on / off | off CPU µs | on CPU µs |",
                  "|---|---|---|---|---|---|"]
        for load, modes in audit.items():
            mean = lambda rs, k: sum(x[k] for x in rs) / len(rs) if rs else 0
            off, on = modes.get("off", []), modes.get("on", [])
            ratio = mean(on, "rps") / mean(off, "rps") if mean(off, "rps") else 0
            lines.append(
                f"| {load} | {mean(off, 'rps'):.0f} | {mean(on, 'rps'):.0f} | {ratio:.3f} "
                f"| {mean(off, 'cpu_us_per_req'):.1f} | {mean(on, 'cpu_us_per_req'):.1f} |"
            )
    def mean_of(scenario, key):
        vals = [r[key] for r in rows if r["scenario"] == scenario and r["path"] == "lrsgate" and r.get(key) is not None]
        return round(sum(vals) / len(vals), 3) if vals else None

    post = next((r for r in rows if r["scenario"] == "post_1kb" and r["path"] == "lrsgate"), None)
    if post:
        lines += ["", "Goals (reported, never asserted; means over rounds):", ""]
        checks = [
            (mean_of("post_1kb", "vs_nginx"), 0.8, ">=", GOALS[0]),
            (mean_of("latency_1kb_1conn", "added_p50_us"), 50, "<=", GOALS[1]),
            (mean_of("post_1kb", "cpu_us_per_req"), 40, "<=", GOALS[2]),
            (mean_of("post_1kb", "cpu_vs_passthrough"), 1.15, "<=", GOALS[3]),
            (mean_of("post_1kb", "vs_passthrough"), 0.85, ">=", GOALS[4]),
            (mean_of("get_list", "cpu_vs_passthrough"), 1.3, "<=", GOALS[5]),
        ]
        for value, goal, op, text in checks:
            if value is None:
                continue
            met = value >= goal if op == ">=" else value <= goal
            lines.append(f"- {text}: {value} ({'met' if met else 'missed'})")
    md = "\n".join(lines) + "\n"
    if appendix:
        md += open(appendix).read()
    open(f"{out_dir}/bench.md", "w").write(md)
    open(f"{out_dir}/latency.svg", "w").write(svg(rows))
    print(md)


def svg(rows):
    """Grouped bars: p50 / p99 / p99.9 per scenario and path, log scale (ms)."""
    import math

    data = [r for r in rows if "rps" in r]
    colors = {"p50_ms": "#4e79a7", "p99_ms": "#f28e2b", "p999_ms": "#e15759"}
    bar, gap, left, top, height = 9, 14, 190, 30, 260
    width = left + len(data) * (3 * bar + gap) + 40
    hi = max([r["p999_ms"] for r in data] + [1.0])
    lo = 0.01
    y = lambda v: top + height - height * (math.log10(max(v, lo)) - math.log10(lo)) / (math.log10(hi * 1.2) - math.log10(lo))
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{top + height + 150}" font-family="sans-serif" font-size="10">',
        f'<text x="10" y="18" font-size="13">lrsgate bench: latency percentiles (ms, log scale)</text>',
    ]
    tick = lo
    while tick <= hi * 1.2:
        out.append(f'<line x1="{left - 5}" x2="{width - 20}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 8}" y="{y(tick) + 3:.1f}" text-anchor="end">{tick:g}</text>')
        tick *= 10
    for i, r in enumerate(data):
        x0 = left + i * (3 * bar + gap)
        for j, key in enumerate(("p50_ms", "p99_ms", "p999_ms")):
            yy = y(r[key])
            out.append(
                f'<rect x="{x0 + j * bar}" y="{yy:.1f}" width="{bar - 1}" height="{top + height - yy:.1f}" fill="{colors[key]}"/>'
            )
        label = f"{r['scenario']} / {r['path']}"
        lx, ly = x0 + bar, top + height + 8
        out.append(f'<text x="{lx}" y="{ly}" transform="rotate(60 {lx} {ly})">{label}</text>')
    for j, (key, c) in enumerate(colors.items()):
        out.append(f'<rect x="{left + j * 70}" y="{top + height + 130}" width="10" height="10" fill="{c}"/>')
        out.append(f'<text x="{left + j * 70 + 14}" y="{top + height + 139}">{key[:-3]}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main(*sys.argv[1:])
