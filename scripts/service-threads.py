#!/usr/bin/env python3
# CPU time and context switches per thread of every service JVM on this machine (processes running a quarkus-run.jar:
# a serving benchmark's router, pods and gateway), from /proc/PID/task/TID/{stat,status}, polled every 0.5 s. SIGUSR1
# takes the baseline (e.g. when the benchmark prints its first measured row); on SIGTERM/SIGINT, or once every service
# is gone, prints each process's threads grouped by name: CPU seconds, voluntary switches (each one a sleep, hence a
# wake-up) and involuntary ones, since the baseline. BENCHMARKS.md "Issue 16: the per-layer round trip" shows a use:
#   python3 scripts/service-threads.py > threads.txt & P=$!
#   scripts/bench-serving.sh ... | while read -r l; do echo "$l"; case "$l" in "round 1: all-in-one, 1 "*) kill -USR1 $P;; esac; done
#   kill $P
# A process is labelled with its pid, its app directory and its moe.* settings; its 14 busiest thread names are listed.
import os, sys, time, signal, re
tick = os.sysconf('SC_CLK_TCK')
last = {}  # (pid, tid) -> (proc label, comm, cpu s, vcs, nvcs)
labels = {}
def label(pid):
    if pid in labels: return labels[pid]
    try:
        cmd = open(f'/proc/{pid}/cmdline','rb').read().split(b'\0')
    except OSError: return None
    cmd = [c.decode(errors='replace') for c in cmd]
    if not any('quarkus-run.jar' in c for c in cmd): return None
    jar = [c for c in cmd if 'quarkus-run.jar' in c][0]
    mod = os.path.dirname(jar)
    hosts = [c for c in cmd if c.startswith('-Dmoe.expert.hosts=')]
    mode = [c for c in cmd if c.startswith('-Dmoe.router.experts.mode=')]
    extra = [c for c in cmd if c.startswith('-Dmoe.') and 'hosts' not in c and 'path' not in c]
    l = f"{pid} {mod} {' '.join(hosts+mode)} {' '.join(extra)}"
    labels[pid] = l
    return l
def poll():
    n = 0
    for pid in os.listdir('/proc'):
        if not pid.isdigit(): continue
        l = label(pid)
        if l is None: continue
        n += 1
        try: tids = os.listdir(f'/proc/{pid}/task')
        except OSError: continue
        for tid in tids:
            try:
                st = open(f'/proc/{pid}/task/{tid}/stat').read()
                comm = st[st.index('(')+1:st.rindex(')')]
                f = st[st.rindex(')')+2:].split()
                cpu = (int(f[11]) + int(f[12])) / tick
                s = open(f'/proc/{pid}/task/{tid}/status').read()
                v = int(re.search(r'^voluntary_ctxt_switches:\s+(\d+)', s, re.M).group(1))
                nv = int(re.search(r'^nonvoluntary_ctxt_switches:\s+(\d+)', s, re.M).group(1))
                last[(pid, tid)] = (l, re.sub(r'[-#]?\d+$', '', comm), cpu, v, nv)
            except (OSError, ValueError): pass
    return n
base = {}
def mark(*a):
    poll(); base.clear(); base.update(last)
    print('baseline taken', len(base), 'threads', file=sys.stderr)
def dump(*a):
    agg = {}
    for (pid, tid), (l, comm, cpu, v, nv) in last.items():
        b = base.get((pid, tid))
        if b: cpu, v, nv = cpu - b[2], v - b[3], nv - b[4]
        k = (l, comm); a0 = agg.get(k, [0, 0, 0, 0]); agg[k] = [a0[0]+cpu, a0[1]+v, a0[2]+nv, a0[3]+1]
    byproc = {}
    for (l, comm), x in agg.items(): byproc.setdefault(l, []).append((comm, x))
    for l, rows in sorted(byproc.items()):
        tot = sum(x[0] for _, x in rows)
        print(f"== {l}: cpu {tot:.2f} s")
        for comm, x in sorted(rows, key=lambda r: -r[1][0])[:14]:
            print(f"   {comm:32s} threads {x[3]:3d} cpu {x[0]:8.2f} s  vol-switches {x[1]:9d}  invol {x[2]:8d}")
    sys.stdout.flush(); os._exit(0)
signal.signal(signal.SIGUSR1, mark); signal.signal(signal.SIGTERM, dump); signal.signal(signal.SIGINT, dump)
seen = False
while True:
    n = poll()
    if n: seen = True
    if seen and n == 0: dump()
    time.sleep(0.5)
