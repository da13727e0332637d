#!/usr/bin/env bash
# Stop the single-node Slurm started by .ci/slurm-up.sh: slurmd, slurmctld, then munged, each by
# its PID file (never by process name), waiting for each to exit (SIGKILL after 30 s).
# Safe to run when nothing is running; stale PID files are removed.
set -uo pipefail

[ "$(id -u)" = 0 ] || { echo "slurm-down: ERROR: must run as root" >&2; exit 1; }

# running PID: exists and is not a zombie (an exited daemon lingers as one until PID 1 reaps it)
running() {
  case "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" in Z | X | "") return 1 ;; esac
}

status=0
for entry in /run/slurmd.pid:slurmd /run/slurmctld.pid:slurmctld /run/munge/munged.pid:munged; do
  f="${entry%%:*}" name="${entry##*:}"
  [ -s "$f" ] || continue
  pid="$(cat "$f")"
  # only a live process that is still that daemon (a stale PID may have been reused)
  if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] && running "$pid"; then
    kill "$pid" 2>/dev/null
    for _ in $(seq 150); do running "$pid" || break; sleep 0.2; done
    if running "$pid"; then
      echo "slurm-down: $name ($pid) ignored SIGTERM for 30 s; sending SIGKILL" >&2
      kill -9 "$pid" 2>/dev/null || status=1
    fi
    echo "slurm-down: stopped $name ($pid)"
  fi
  rm -f "$f"
done
exit "$status"
