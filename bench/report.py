"""Turn benchmark results into ratios against the targets and a printable table."""

from __future__ import annotations

from typing import Any

TARGET_VS_HNSWLIB = 1.5
MAX_API_OVERHEAD = 0.10
LABEL_MAP_SECONDS = 10.0


def _row(results: dict[str, Any], engine: str) -> dict[str, Any] | None:
    return next((r for r in results.get("rows", []) if r["engine"] == engine), None)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if not a or not b else round(a / b, 2)


def summary(results: dict[str, Any], target: float) -> dict[str, Any]:
    """Ratios side by side and whether each issue-5 target is met in this run."""
    engine = results.get("plan", {}).get("engine", "FAISS IVF")
    ivf, hl, us = _row(results, engine), _row(results, "hnswlib"), _row(results, "usearch")
    out: dict[str, Any] = {"target_recall": target}
    if ivf:
        out["earthvec_structure"] = f"{engine}: {ivf['config']}"
        out["earthvec_structure_recall"] = ivf["recall"]
    for name, peer in (("hnswlib", hl), ("usearch", us)):
        if ivf and peer:
            out[f"earthvec_structure_vs_{name}"] = {
                "single": _ratio(ivf["qps_single"], peer["qps_single"]),
                "batched": _ratio(ivf["qps_batch"], peer["qps_batch"]),
                "peer_recall": peer["recall"],
            }
    checks: dict[str, Any] = {}
    if ivf and hl:
        r = out["earthvec_structure_vs_hnswlib"]
        checks["qps >= 1.5x hnswlib at recall >= 0.95"] = bool(
            ivf["reached_target"]
            and r["single"]
            and r["batched"]
            and min(r["single"], r["batched"]) >= TARGET_VS_HNSWLIB
        )
    if ivf and us:
        r = out["earthvec_structure_vs_usearch"]
        checks["qps >= usearch at recall >= 0.95"] = bool(
            ivf["reached_target"] and r["single"] and r["batched"] and min(r["single"], r["batched"]) >= 1.0
        )
    api = results.get("api", {})
    ov = api.get("overhead_vs_raw_faiss")
    if ov:
        worst = max(v for v in (ov.get("single"), ov.get("batched")) if v is not None)
        checks["earthvec API overhead <= 10% over raw FAISS"] = worst <= MAX_API_OVERHEAD
    filt = api.get("filtered")
    if filt:
        checks["filtered query in a small region faster than unfiltered"] = filt["speedup"] > 1.0
    lab = api.get("label_map")
    if lab and "seconds" in lab:
        checks[f"{lab['cells']:,}-cell kNN label map < 10 s (index open, vectors in RAM)"] = (
            lab["seconds"] < LABEL_MAP_SECONDS
        )
    out["checks"] = checks
    return out


def _fmt(v: Any, spec: str = ",.0f") -> str:
    if v is None:
        return "-"
    if isinstance(v, float | int):
        return format(v, spec)
    return str(v)


def render(results: dict[str, Any]) -> str:
    """The results table and the target checks as text."""
    d = results.get("data", {})
    lines = [
        f"earthvec search benchmark: {d.get('n', 0):,} x {d.get('dim', 128)}-d base, "
        f"{d.get('queries', 0)} held-out queries, k=10, {results['args']['threads']} threads "
        f"(load avg at start {results['machine']['load_average_at_start']})",
        "",
        f"{'engine':<26} {'config':<36} {'knob':<20} {'recall@10':>9} {'QPS 1':>8} "
        f"{'QPS batch':>9} {'build s':>8} {'B/vec':>7}",
        "-" * 130,
    ]
    for r in results.get("rows", []):
        knob = f"{r['knob']}={r['knob_value']}" if r["knob"] else "exact"
        lines.append(
            f"{r['engine']:<26} {r['config'][:36]:<36} {knob:<20} {_fmt(r['recall'], '.4f'):>9} "
            f"{_fmt(r['qps_single']):>8} {_fmt(r['qps_batch']):>9} {_fmt(r['build_s'], '.1f'):>8} "
            f"{_fmt(r['bytes_per_vector']):>7}"
        )
    api = results.get("api", {})
    if "missing" in api:
        lines += ["", f"earthvec API rows missing: {api['missing']}"]
    if api.get("filtered"):
        f = api["filtered"]
        lines += [
            "",
            f"filtered query (res-{f['region_resolution']} region, median "
            f"{f['rows_in_region_median']} rows): {f['qps_filtered']:,} QPS vs "
            f"{f['qps_unfiltered']:,} unfiltered (x{f['speedup']}), recall in region "
            f"{f['recall_in_region']}",
        ]
    if api.get("overhead_vs_raw_faiss"):
        o = api["overhead_vs_raw_faiss"]
        lines.append(
            f"earthvec API overhead over raw {o.get('engine', 'FAISS')} at {o.get('knob', o.get('nprobe'))}: "
            f"single {_fmt(o['single'], '+.1%')}, batched {_fmt(o['batched'], '+.1%')}"
        )
    if api.get("streamed_build"):
        s = api["streamed_build"]
        lines.append(
            f"streamed build from Parquet ({s['factory']}): {s['seconds']} s "
            f"(train {s['train_s']} s, add {s['add_s']} s), calibrated {s['calibrated']}"
        )
    lab = api.get("label_map")
    if lab and "seconds" in lab:
        lines.append(
            f"kNN label map of {lab['cells']:,} cells from {lab['seeds']} seeds (k={lab['k']}): "
            f"{lab['seconds']} s with the index open ({lab.get('index', '?')}, opened in "
            f"{lab['index_open_or_build_s']} s); {lab.get('cold_seconds', '-')} s cold from the "
            f"Parquet folder; seeds' spatial CV accuracy {lab['cv_accuracy']}"
        )
    elif lab:
        lines.append(f"label map: {lab}")
    h = results.get("hnsw_batched_add")
    if h:
        lines.append(
            f"FAISS HNSW32 on {h['n']:,} filled by 1 / 2 / 10 add() calls: recall@10 "
            f"{h['recall_1_calls']} / {h['recall_2_calls']} / {h['recall_10_calls']} "
            f"(efSearch {h['efSearch']})"
        )
    c = results.get("compressed")
    if c:
        lines += ["", f"compressed path: {c}"]
    s = results.get("summary", {})
    for name in ("hnswlib", "usearch"):
        r = s.get(f"earthvec_structure_vs_{name}")
        if r:
            lines.append(
                f"{s['earthvec_structure']} / {name} QPS at recall>={s['target_recall']}: "
                f"single x{r['single']}, batched x{r['batched']} ({name} recall {r['peer_recall']})"
            )
    lines += ["", "targets:"]
    for k, v in s.get("checks", {}).items():
        lines.append(f"  [{'PASS' if v else 'FAIL'}] {k}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.report RESULTS.json [ENGINE]``: print the table of a (partial) run.

    ``ENGINE`` names the row compared with hnswlib and usearch (default: the run's plan).
    """
    import json
    import sys
    from pathlib import Path

    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(main.__doc__)
        return 2
    results = json.loads(Path(args[0]).read_text())
    if len(args) > 1:
        results.setdefault("plan", {})["engine"] = args[1]
    results["summary"] = summary(results, results.get("summary", {}).get("target_recall", 0.95))
    print(render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
