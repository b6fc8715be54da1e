"""Chart lrsgate's latency histograms as scraped every second during a bench run.

    python3 bench/histograms.py SCRAPE_DIR RESULTS_DIR

Each scrape is a /metrics text; consecutive scrapes give each second's bucket counts, from which
p50/p90/p99 are read (linear within a bucket, as Prometheus' histogram_quantile does). Writes
RESULTS_DIR/histograms.svg and histograms.json. Standard library only.
"""
import json
import os
import re
import sys

SERIES = {
    "edge (forwarded statements)": ('lrsgate_edge_request_duration_seconds_bucket', {'resource': 'statements', 'outcome': 'forwarded'}),
    "LRS (statements)": ('lrsgate_upstream_duration_seconds_bucket', {'resource': 'statements'}),
}
QUANTILES = (0.5, 0.9, 0.99)
LINE = re.compile(r'^(\w+)\{([^}]*)\} (\S+)$')


def buckets(text, name, want):
    out = {}
    for line in text.splitlines():
        m = LINE.match(line)
        if not m or m.group(1) != name:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        if all(labels.get(k) == v for k, v in want.items()):
            le = float('inf') if labels['le'] == '+Inf' else float(labels['le'])
            out[le] = out.get(le, 0.0) + float(m.group(3))
    return out


def quantile(q, delta):
    bounds = sorted(delta)
    total = delta[bounds[-1]] if bounds else 0
    if total <= 0:
        return None
    rank, prev_bound, prev_count = q * total, 0.0, 0.0
    for b in bounds:
        if delta[b] >= rank:
            if b == float('inf'):
                return prev_bound
            width = delta[b] - prev_count
            return prev_bound + (b - prev_bound) * ((rank - prev_count) / width if width else 0)
        prev_bound, prev_count = b, delta[b]
    return prev_bound


def main(scrape_dir, results):
    files = sorted(f for f in os.listdir(scrape_dir) if f.endswith('.txt'))
    texts = [open(os.path.join(scrape_dir, f)).read() for f in files]
    data = {}
    for title, (name, want) in SERIES.items():
        points = []
        for second, (a, b) in enumerate(zip(texts, texts[1:]), start=1):
            ba, bb = buckets(a, name, want), buckets(b, name, want)
            delta = {le: bb[le] - ba.get(le, 0.0) for le in bb}
            row = {'second': second, 'requests': delta.get(float('inf'), 0)}
            for q in QUANTILES:
                v = quantile(q, delta)
                row[f'p{int(q * 100)}_ms'] = None if v is None else round(v * 1000, 3)
            points.append(row)
        data[title] = points
    os.makedirs(results, exist_ok=True)
    with open(os.path.join(results, 'histograms.json'), 'w') as f:
        json.dump(data, f, indent=1)
    svg(data, os.path.join(results, 'histograms.svg'))
    for title, points in data.items():
        got = [p for p in points if p['p99_ms'] is not None]
        if got:
            mid = got[len(got) // 2]
            print(f"  histograms: {title}: second {mid['second']}: p50 {mid['p50_ms']} ms, p99 {mid['p99_ms']} ms", file=sys.stderr)


def svg(data, path):
    w, h, pad = 760, 300, 50
    colours = {'p50_ms': '#1f77b4', 'p90_ms': '#2ca02c', 'p99_ms': '#d62728'}
    panels = []
    for n, (title, points) in enumerate(data.items()):
        x0 = pad + n * (w // 2)
        pw, ph = w // 2 - pad - 10, h - 2 * pad
        ymax = max([p[k] for p in points for k in colours if p[k] is not None] or [1])
        xmax = max(len(points), 1)
        parts = [f'<text x="{x0}" y="{pad - 20}" font-size="13">{title}: quantiles per second (ms)</text>',
                 f'<rect x="{x0}" y="{pad}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>',
                 f'<text x="{x0 - 5}" y="{pad + 4}" font-size="10" text-anchor="end">{ymax:.2f}</text>',
                 f'<text x="{x0 - 5}" y="{pad + ph}" font-size="10" text-anchor="end">0</text>',
                 f'<text x="{x0 + pw}" y="{pad + ph + 14}" font-size="10" text-anchor="end">{xmax} s</text>']
        for k, colour in colours.items():
            pts = [(x0 + pw * (i + 1) / xmax, pad + ph - ph * p[k] / ymax) for i, p in enumerate(points) if p[k] is not None]
            if pts:
                parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in pts)}"/>')
        for i, (k, colour) in enumerate(colours.items()):
            parts.append(f'<text x="{x0 + 10 + 60 * i}" y="{pad + ph + 30}" font-size="11" fill="{colour}">{k[:-3]}</text>')
        panels.append('\n'.join(parts))
    with open(path, 'w') as f:
        f.write(f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif">\n'
                + '\n'.join(panels) + '\n</svg>\n')


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
