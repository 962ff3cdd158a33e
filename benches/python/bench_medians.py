"""Medians of `chunkyard bench --json` runs, old binary against new:
files DIR/old-N.json and DIR/new-N.json (one JSON line per format each),
printed per format and figure as old / new (new/old).

    for i in 1 2 3; do for b in old new; do
      chunkyard-$b bench --depth 100 --formats npy,zarr,hdf5 --workload all --json > DIR/$b-$i.json
    done; done
    python3 benches/python/bench_medians.py DIR
"""
import json, glob, statistics as st, sys
d = sys.argv[1] if len(sys.argv) > 1 else "/work/b21"
runs = {}
for f in sorted(glob.glob(d + "/*-*.json")):
    b = f.split("/")[-1].split("-")[0]
    for line in open(f):
        r = json.loads(line)
        runs.setdefault((b, r["format"]), []).append(r)
def flat(r):
    out = {"build_s": r["elapsed_s"], "storing_GBps": r["storing_gb_per_s"], "peak_MiB": r["peak_rss_bytes"]/2**20}
    rd = r.get("reads") or {}
    for k, v in rd.items():
        if isinstance(v, dict):
            for kk, vv in v.items():
                if isinstance(vv, (int, float)) and "bytes" not in kk:
                    out[f"{k}.{kk}"] = vv
        elif isinstance(v, (int, float)) and k not in ("sum",) and "bytes" not in k:
            out[k] = v
    out["reads_peak_MiB"] = rd.get("peak_rss_bytes", 0)/2**20
    return out
fmts = sorted({f for _, f in runs})
for fmt in fmts:
    old = [flat(r) for r in runs.get(("old", fmt), [])]
    new = [flat(r) for r in runs.get(("new", fmt), [])]
    print(f"## {fmt} (old n={len(old)}, new n={len(new)}): median old / new (new/old)")
    for k in new[0]:
        o = st.median(x[k] for x in old if k in x); n = st.median(x[k] for x in new if k in x)
        print(f"  {k:32s} {o:10.3f} {n:10.3f}  {n/o if o else float('nan'):6.2f}")
