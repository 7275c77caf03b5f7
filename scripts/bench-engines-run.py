#!/usr/bin/env python3
"""Helper of scripts/bench-engines.sh: runs one shell command and accounts CPU.

    bench-engines-run.py SERVER_PID 'shell command'

Runs the command with bash -c, polls /proc every 0.2 s for every descendant
process (CPU ticks and VmHWM per pid, summed by command name; a process's
last <0.2 s is missed), reads the database server's CPU before and after
(SERVER_PID's own and reaped children's time plus its live children's: a
PostgreSQL backend's time lands in the postmaster's once it exits), and prints one JSON line on stdout (so
the command must redirect its own stdout). Exit status is the command's.
"""
import json
import os
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


def read_server(pid):
    procs = snapshot_full()
    if pid not in procs:
        return None
    total = procs[pid][3]
    for p, (ppid, _, cpu, _) in procs.items():
        if ppid == pid:
            total += cpu
    return total


def snapshot_full():
    procs = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        r = s.rfind(")")
        fields = s[r + 2:].split()
        u, st, cu, cs = (int(x) for x in fields[11:15])
        procs[int(d)] = (int(fields[1]), s[s.find("(") + 1:r], (u + st) / TICK, (u + st + cu + cs) / TICK)
    return procs


def snapshot():
    procs = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        r = s.rfind(")")
        comm = s[s.find("(") + 1:r]
        fields = s[r + 2:].split()
        ppid = int(fields[1])
        cpu = (int(fields[11]) + int(fields[12])) / TICK
        procs[int(d)] = (ppid, comm, cpu)
    return procs


def main():
    server, cmd = int(sys.argv[1]), sys.argv[2]
    cg0 = read_server(server)
    t0 = time.monotonic()
    p = subprocess.Popen(["bash", "-c", cmd])
    seen = {}  # pid -> [kernel comm, name, cpu_s, hwm_kb]
    while True:
        procs = snapshot()
        desc = {p.pid}
        changed = True
        while changed:
            changed = False
            for pid, (ppid, _, _) in procs.items():
                if ppid in desc and pid not in desc:
                    desc.add(pid)
                    changed = True
        for pid in desc:
            if pid not in procs:
                continue
            _, comm, cpu = procs[pid]
            hwm = 0
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            hwm = int(line.split()[1])
            except OSError:
                pass
            e = seen.setdefault(pid, [None, comm, 0.0, 0])
            if e[0] != comm:
                e[0] = e[1] = comm
                if len(comm) == 15:
                    # comm is cut at 15 characters (label-backup-plugin-*):
                    # name by argv[0].
                    try:
                        with open(f"/proc/{pid}/cmdline", "rb") as f:
                            a0 = f.read().split(b"\0")[0].decode(errors="replace")
                        e[1] = os.path.basename(a0) or comm
                    except OSError:
                        pass
            e[2] = max(e[2], cpu)
            e[3] = max(e[3], hwm)
        if p.poll() is not None:
            break
        time.sleep(0.2)
    wall = time.monotonic() - t0
    cg1 = read_server(server)
    by = {}
    for _, comm, cpu, hwm in seen.values():
        if comm in ("bash", "time"):
            continue
        b = by.setdefault(comm, {"cpu_s": 0.0, "max_hwm_mib": 0.0})
        b["cpu_s"] = round(b["cpu_s"] + cpu, 2)
        b["max_hwm_mib"] = round(max(b["max_hwm_mib"], hwm / 1024), 1)
    out = {
        "rc": p.returncode,
        "wall_s": round(wall, 3),
        "server_cpu_s": round(cg1 - cg0, 2) if cg0 is not None and cg1 is not None else None,
        "procs": by,
        "load": open("/proc/loadavg").read().split()[:3],
    }
    print(json.dumps(out))
    sys.exit(p.returncode)


if __name__ == "__main__":
    main()
