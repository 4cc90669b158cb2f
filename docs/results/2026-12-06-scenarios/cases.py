import gzip, json, sys
d = json.load(gzip.open(sys.argv[1]))
for c in d['cases']:
    lat = c.get('latency') or {}
    t = (c.get('accuracy') or {}).get('task') or {}
    sc = c.get('scenarios') or {}
    line = f"{c['id']:45s} {c['outcome']:7s} {c['size']['artifact_mb']:7.2f} MB  med {lat.get('median_ms') or 0:7.3f} p99 {lat.get('p99_ms') or 0:7.3f}  top1 {t.get('top1')} drop {t.get('drop_points')}"
    if sc:
        off = sc.get('offline') or {}; sv = sc.get('server') or {}
        line += f"\n     kept {sc.get('kept',{}).get('streams')}x{sc.get('kept',{}).get('threads')} offline {off.get('samples_per_s')} ratios {[round(r,3) for r in off.get('ratios',[])]} server {sv.get('qps')} p99 {sv.get('p99_ms')} bracket {sv.get('bracket')} norm {(sv.get('normalized') or {}).get('qps')} compared {(sv.get('compared') or {}).get('qps')} ({(sv.get('compared') or {}).get('split')}) secs {sc.get('seconds_total')}"
    b = (c.get('compression_info') or {}).get('budget')
    if b:
        line += f"\n     budget full drop {b['full_int8_drop_points']:.2f} -> {b['drop_points']:.2f} reverted {b['reverted_layers']} search {b['search_s']} s"
    if c['outcome'] != 'passed':
        line += f"\n     reason: {c.get('reason','')[:200]}"
    print(line)
