"""Plots for docs/performance.md (run through scripts/plot)."""

import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

GROUPS = ["acquire_live", "acquire_create", "release", "disconnect_holding_8", "status"]


def collect_criterion(root):
    """{group: {peers: {networks: median_ns}}} from criterion's estimates."""
    out = {}
    for group in GROUPS:
        gdir = os.path.join(root, group)
        if not os.path.isdir(gdir):
            continue
        for fn in sorted(os.listdir(gdir)):
            if not fn.startswith("peers="):
                continue
            peers = int(fn.split("=", 1)[1])
            for nets in sorted(os.listdir(os.path.join(gdir, fn))):
                est = os.path.join(gdir, fn, nets, "new", "estimates.json")
                if not os.path.exists(est):
                    continue
                with open(est) as f:
                    e = json.load(f)
                out.setdefault(group, {}).setdefault(str(peers), {})[nets] = {
                    "median_ns": e["median"]["point_estimate"],
                    "mean_ns": e["mean"]["point_estimate"],
                }
    return out


def plot_networks(crit, path):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, group in zip(axes, ["acquire_live", "acquire_create"]):
        for peers, row in sorted(crit.get(group, {}).items(), key=lambda kv: int(kv[0])):
            xs = sorted(int(n) for n in row)
            ys = [row[str(n)]["median_ns"] for n in xs]
            ax.plot(xs, ys, marker="o", label=f"{peers} peers")
        ax.set_xscale("log")
        ax.set_ylim(bottom=0)
        ax.set_xlabel("live networks")
        ax.set_ylabel("median time per operation (ns)")
        ax.set_title(f"core: {group}")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle("Broker operation cost against live networks (criterion, sans-IO core)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_core_ops(crit, path):
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for group in ["acquire_live", "release", "disconnect_holding_8"]:
        rows = crit.get(group, {})
        xs = sorted(int(p) for p in rows)
        if not xs:
            continue
        ys = [rows[str(p)].get("100", {}).get("median_ns") for p in xs]
        ax.plot(xs, ys, marker="o", label=f"{group} (100 networks)")
    ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("connected peers")
    ax.set_ylabel("median time per operation (ns)")
    ax.set_title("Broker operation cost against connected peers (criterion)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_clients(e2e, path):
    scale = e2e["scale"]
    xs = [s["clients"] for s in scale]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, label in [("p50_us", "p50"), ("p99_us", "p99")]:
        ax.plot(xs, [s["latency"][key] for s in scale], marker="o", label=f"daemon {label}")
    rt = e2e["round_trip"]["echo"]
    ax.axhline(rt["p50_us"], color="gray", linestyle="--", label="echo baseline p50 (1 client)")
    ax.axhline(rt["p99_us"], color="gray", linestyle=":", label="echo baseline p99 (1 client)")
    ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("connected clients, each holding the network")
    ax.set_ylabel("acquire round trip (µs)")
    ax.set_title("End-to-end acquire latency against clients")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax2.plot(xs, [s["rss_kib"] / 1024 for s in scale], marker="o", color="tab:green")
    ax2.set_xscale("log")
    ax2.set_ylim(bottom=0)
    ax2.set_xlabel("connected clients")
    ax2.set_ylabel("daemon resident memory (MiB)")
    ax2.set_title("Daemon RSS against clients")
    ax2.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def tables(crit, e2e):
    lines = []
    for group, rows in crit.items():
        nets = sorted({int(n) for r in rows.values() for n in r})
        lines.append(f"\n{group} (median ns)\n")
        lines.append("| peers \\ networks | " + " | ".join(str(n) for n in nets) + " |")
        lines.append("|---|" + "---|" * len(nets))
        for peers in sorted(rows, key=int):
            cells = [
                f"{rows[peers][str(n)]['median_ns']:.0f}" if str(n) in rows[peers] else ""
                for n in nets
            ]
            lines.append(f"| {peers} | " + " | ".join(cells) + " |")
    if e2e:
        rt = e2e["round_trip"]
        lines.append("\nround trip (µs)\n")
        lines.append("| server | p50 | p90 | p99 | p99.9 | mean |")
        lines.append("|---|---|---|---|---|---|")
        for k in ["daemon", "echo"]:
            s = rt[k]
            lines.append(
                f"| {k} | {s['p50_us']:.1f} | {s['p90_us']:.1f} | {s['p99_us']:.1f} | {s['p999_us']:.1f} | {s['mean_us']:.1f} |"
            )
        lines.append(
            f"| ratio | {rt['ratio_p50']:.2f} | | {rt['ratio_p99']:.2f} | | {rt['ratio_mean']:.2f} |"
        )
        lines.append("\nscale\n")
        lines.append("| clients | p50 µs | p99 µs | RSS KiB |")
        lines.append("|---|---|---|---|")
        for s in e2e["scale"]:
            lines.append(
                f"| {s['clients']} | {s['latency']['p50_us']:.1f} | {s['latency']['p99_us']:.1f} | {s['rss_kib']} |"
            )
        m = e2e["memory"]
        lines.append(
            f"\nRSS idle {m['rss_idle_kib']} KiB, at {m['clients']} clients {m['rss_at_max_kib']} KiB, "
            f"{m['bytes_per_client']:.0f} bytes per client; p99 ratio max/1 = {e2e['scale_p99_ratio_max_vs_1']:.2f}; "
            f"start-up median {e2e['startup']['median_ms']:.2f} ms"
        )
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--criterion", default="target/criterion")
    ap.add_argument("--e2e", default="docs/perf/e2e.json")
    ap.add_argument("--out", default="docs/perf")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    crit = collect_criterion(a.criterion)
    if crit:
        with open(os.path.join(a.out, "criterion.json"), "w") as f:
            json.dump(crit, f, indent=1, sort_keys=True)
            f.write("\n")
        plot_networks(crit, os.path.join(a.out, "core-vs-networks.png"))
        plot_core_ops(crit, os.path.join(a.out, "core-vs-peers.png"))
    e2e = None
    if os.path.exists(a.e2e):
        with open(a.e2e) as f:
            e2e = json.load(f)
        plot_clients(e2e, os.path.join(a.out, "e2e-vs-clients.png"))
    if not crit and not e2e:
        sys.exit("no results to plot")
    print(tables(crit, e2e))


if __name__ == "__main__":
    main()
