#!/usr/bin/env python3
"""Measuring helper for the scripts in tests/bench/ (python3 standard library only).

  benchrun.py run [options] -- COMMAND [ARGS...]
      Spawns COMMAND with stdin from /dev/null, reads its stdout through a pipe and
      prints key=value lines (times in seconds from just before the spawn):
        first_byte_s=     time of the first byte on stdout
        mark_NAME_s=      time of the first stdout line matching --mark NAME=REGEX
        instret_NAME=     with --monitor: the sum of the harts' instret from Ferry's
                          monitor ("info cpus") when mark NAME arrived (--instret-at NAME)
        rss_*_kb=         with --rss-at NAME: memory of the process --rss-delay seconds
                          after mark NAME (VmRSS, RssAnon, RssFile, Pss, and the Rss of
                          the guest-RAM mapping, i.e. the mapping of exactly --ram-mb MiB)
        rc=               exit status (128+N when killed by signal N), after --stop-at
                          NAME sent SIGTERM, or "timeout"
        wall_s=           time until the process was reaped
      --log FILE keeps the raw stdout, --errlog FILE the stderr.

  benchrun.py stats [--scale K]   numbers on stdin, one a line -> "median min max n"
"""
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time


def die(msg):
    print("benchrun.py: " + msg, file=sys.stderr)
    sys.exit(2)


def monitor_instret(path, timeout=5.0):
    """Sum of instret= over the harts listed by Ferry's monitor `info cpus`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            break
        except OSError:
            s.close()
            if time.monotonic() > deadline:
                return None
            time.sleep(0.01)
    s.settimeout(timeout)
    buf = b""

    def read_prompt():
        nonlocal buf
        while not buf.endswith(b"(ferry) "):
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk

    try:
        read_prompt()
        buf = b""
        s.sendall(b"info cpus\n")
        read_prompt()
    except OSError:
        pass
    finally:
        s.close()
    vals = [int(v) for v in re.findall(rb"instret=(\d+)", buf)]
    return sum(vals) if vals else None


def read_kv(path):
    out = {}
    try:
        with open(path) as f:
            for line in f:
                k, _, v = line.partition(":")
                parts = v.split()
                if parts and parts[0].isdigit():
                    out[k.strip()] = int(parts[0])
    except OSError:
        pass
    return out


def sample_memory(pid, ram_kb):
    st = read_kv("/proc/%d/status" % pid)
    roll = read_kv("/proc/%d/smaps_rollup" % pid)
    ram_rss = 0
    try:
        with open("/proc/%d/smaps" % pid) as f:
            size = None
            for line in f:
                if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                    size = None
                elif line.startswith("Size:"):
                    size = int(line.split()[1])
                elif line.startswith("Rss:") and size == ram_kb and ram_kb:
                    ram_rss += int(line.split()[1])
    except OSError:
        pass
    return {
        "rss_kb": st.get("VmRSS"),
        "rss_anon_kb": st.get("RssAnon"),
        "rss_file_kb": st.get("RssFile"),
        "rss_shmem_kb": st.get("RssShmem"),
        "pss_kb": roll.get("Pss"),
        "guest_ram_rss_kb": ram_rss,
        "threads": st.get("Threads"),
    }


def cmd_run(argv):
    opts = {"timeout": 300.0, "marks": [], "instret_at": set(), "monitor": None,
            "rss_at": None, "rss_delay": 1.0, "ram_mb": 0, "stop_at": None,
            "log": None, "errlog": None}
    i = 0
    while i < len(argv) and argv[i] != "--":
        a = argv[i]
        val = argv[i + 1] if i + 1 < len(argv) else die("%s needs a value" % a)
        if a == "--timeout":
            opts["timeout"] = float(val)
        elif a == "--mark":
            name, _, rx = val.partition("=")
            opts["marks"].append((name, re.compile(rx.encode())))
        elif a == "--instret-at":
            opts["instret_at"].add(val)
        elif a == "--monitor":
            opts["monitor"] = val
        elif a == "--rss-at":
            opts["rss_at"] = val
        elif a == "--rss-delay":
            opts["rss_delay"] = float(val)
        elif a == "--ram-mb":
            opts["ram_mb"] = int(val)
        elif a == "--stop-at":
            opts["stop_at"] = val
        elif a == "--log":
            opts["log"] = val
        elif a == "--errlog":
            opts["errlog"] = val
        else:
            die("unknown option " + a)
        i += 2
    cmd = argv[i + 1:]
    if not cmd:
        die("run: no command after --")

    log = open(opts["log"], "wb") if opts["log"] else None
    err = open(opts["errlog"], "wb") if opts["errlog"] else subprocess.DEVNULL
    results = {}
    seen = set()
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=err, close_fds=True)
    fd = proc.stdout.fileno()
    pending = b""
    stop = False
    timed_out = False
    eof = False
    while not eof and not stop:
        left = opts["timeout"] - (time.monotonic() - t0)
        if left <= 0:
            timed_out = True
            break
        r, _, _ = select.select([fd], [], [], min(left, 1.0))
        if not r:
            continue
        chunk = os.read(fd, 65536)
        now = time.monotonic() - t0
        if not chunk:
            eof = True
            break
        if log:
            log.write(chunk)
        if "first_byte_s" not in results:
            results["first_byte_s"] = "%.6f" % now
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            for name, rx in opts["marks"]:
                if name in seen or not rx.search(line):
                    continue
                seen.add(name)
                results["mark_%s_s" % name] = "%.6f" % now
                if name in opts["instret_at"] and opts["monitor"]:
                    v = monitor_instret(opts["monitor"])
                    results["instret_%s" % name] = v if v is not None else "NA"
                if name == opts["rss_at"]:
                    time.sleep(opts["rss_delay"])
                    for k, v in sample_memory(proc.pid, opts["ram_mb"] * 1024).items():
                        results[k] = v if v is not None else "NA"
                if name == opts["stop_at"]:
                    stop = True
    if stop or timed_out:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
    # Drain what is left so the process never blocks on a full pipe.
    try:
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            if log:
                log.write(chunk)
    except OSError:
        pass
    rc = proc.wait()
    results["wall_s"] = "%.6f" % (time.monotonic() - t0)
    results["rc"] = "timeout" if timed_out else (128 - rc if rc < 0 else rc)
    if log:
        log.close()
    for k, v in results.items():
        print("%s=%s" % (k, v))
    return 0


def cmd_stats(argv):
    scale = 1.0
    if argv[:1] == ["--scale"]:
        scale = float(argv[1])
    vals = sorted(float(x) * scale for x in sys.stdin.read().split()
                  if re.match(r"^-?[0-9.eE+]+$", x))
    if not vals:
        print("NA NA NA 0")
        return 1
    n = len(vals)
    med = vals[n // 2] if n % 2 else (vals[n // 2 - 1] + vals[n // 2]) / 2
    def fmt(v):
        return "%.0f" % v if abs(v) >= 1000 else "%.4g" % v
    print("%s %s %s %d" % (fmt(med), fmt(vals[0]), fmt(vals[-1]), n))
    return 0


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("run", "stats"):
        print(__doc__, file=sys.stderr)
        return 2
    return cmd_run(sys.argv[2:]) if sys.argv[1] == "run" else cmd_stats(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
