#!/usr/bin/env bash
# Start a throwaway single-node Slurm cluster on localhost (munged, slurmctld, slurmd), without
# systemd and without accounting, for tests/test_slurm.py. Run as root. Stop it with
# .ci/slurm-down.sh. Adapted from ../shared/notes/slurm-single-node.md (Debian 12, Slurm 22.05).
#
# Idempotent: packages are installed only when missing, daemons that are already running are
# left alone (unless slurm.conf changed: then slurmctld and slurmd are restarted), and stale PID
# files from killed daemons are ignored. Exits nonzero, with the reason, when the node does not
# become idle.
#
# Environment:
#   SLURM_REAL_MEMORY  node memory in MB for slurm.conf (default: 90% of what slurmd -C sees;
#                      never set it above the real memory, or slurmd marks the node invalid)
#   SLURM_UP_WAIT_S    seconds to wait for the node to become idle (default 60)
set -euo pipefail

die() { echo "slurm-up: ERROR: $*" >&2; exit 1; }
log() { echo "slurm-up: $*"; }

[ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts daemons)"
WAIT_S="${SLURM_UP_WAIT_S:-60}"

# --- packages ----------------------------------------------------------------------------
# --no-install-recommends: 9 packages instead of 43 (HDF5, RRD, ROCm plugins, ...).
PKGS="slurm-wlm munge"
if ! dpkg -s $PKGS >/dev/null 2>&1; then
  log "installing $PKGS"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $PKGS >/dev/null
fi
for bin in munged slurmctld slurmd sinfo sbatch squeue; do
  command -v "$bin" >/dev/null || [ -x "/usr/sbin/$bin" ] || die "$bin missing after install"
done

# --- is a daemon alive? (by PID file, and the PID must still be that program) --------------
running() { # running PID: exists and is not a zombie (a killed daemon lingers as one until
  # PID 1 reaps it, and kill -0 still succeeds on it)
  case "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" in Z | X | "") return 1 ;; esac
}
alive() { # alive PIDFILE NAME
  local pid
  [ -s "$1" ] || return 1
  pid="$(cat "$1" 2>/dev/null)" || return 1
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] && running "$pid"
}
stop() { # stop PIDFILE NAME: SIGTERM, wait up to 30 s, then SIGKILL
  local pid
  if alive "$1" "$2"; then
    pid="$(cat "$1")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 150); do running "$pid" || break; sleep 0.2; done
    if running "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$1"
}

# --- slurm.conf ------------------------------------------------------------------------------
HOST="$(hostname -s)" # slurmd picks its node by this name
NCPU="$(nproc)"
if [ -n "${SLURM_REAL_MEMORY:-}" ]; then
  MEM="$SLURM_REAL_MEMORY"
else
  MEM="$(/usr/sbin/slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -1)"
  [ -n "$MEM" ] || MEM="$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)"
  MEM=$((MEM * 9 / 10))
fi

CONF="$(cat <<CONF
# Written by .ci/slurm-up.sh: single node, no accounting, no cgroups.
ClusterName=localci
SlurmctldHost=${HOST}(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MailProg=/bin/true
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
ReturnToService=2
# Finished jobs stay visible to squeue this long; the Snakemake plugin's squeue status mode
# needs MinJobAge >= 3 x slurm-init-seconds-before-status-checks.
MinJobAge=300
# Reject at once (instead of pending forever) a job larger than the node.
EnforcePartLimits=ALL
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=${HOST} NodeAddr=127.0.0.1 CPUs=${NCPU} RealMemory=${MEM} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
)"
mkdir -p /etc/slurm
CHANGED=0
if [ "$(cat /etc/slurm/slurm.conf 2>/dev/null)" != "$CONF" ]; then
  printf '%s\n' "$CONF" >/etc/slurm/slurm.conf
  CHANGED=1
  log "wrote /etc/slurm/slurm.conf (node $HOST: CPUs=$NCPU RealMemory=$MEM)"
fi
install -d -o slurm -g slurm -m 0755 /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm
# in case an earlier run used SlurmUser=root
chown -R slurm:slurm /var/lib/slurm/slurmctld

# --- munge (authentication); the Debian package creates /etc/munge/munge.key --------------------
[ -s /etc/munge/munge.key ] || { mungekey --create; chown munge:munge /etc/munge/munge.key; }
install -d -o munge -g munge -m 0755 /run/munge
if alive /run/munge/munged.pid munged; then
  log "munged already running"
else
  rm -f /run/munge/munged.pid /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
  runuser -u munge -- /usr/sbin/munged || die "munged failed to start"
fi
munge -n | unmunge >/dev/null || die "munge round trip failed (munge -n | unmunge)"

# --- slurmctld, slurmd -------------------------------------------------------------------------
if [ "$CHANGED" = 1 ]; then # a running daemon would keep the old node definition
  stop /run/slurmd.pid slurmd
  stop /run/slurmctld.pid slurmctld
fi
if alive /run/slurmctld.pid slurmctld; then
  log "slurmctld already running"
else
  rm -f /run/slurmctld.pid
  /usr/sbin/slurmctld || die "slurmctld failed to start; see /var/log/slurm/slurmctld.log"
fi
if alive /run/slurmd.pid slurmd; then
  log "slurmd already running"
else
  rm -f /run/slurmd.pid
  /usr/sbin/slurmd || die "slurmd failed to start; see /var/log/slurm/slurmd.log"
fi

# --- wait until the node takes jobs ----------------------------------------------------------------
# idle: ready; mixed/allocated/completing: ready and already running jobs (up run twice).
state=""
for _ in $(seq $((WAIT_S * 5))); do
  state="$(sinfo -h -n "$HOST" -o %T 2>/dev/null || true)"
  case "$state" in idle | mixed | allocated | completing) break ;; esac
  sleep 0.2
done
sinfo || true
case "$state" in
  idle | mixed | allocated | completing) log "node $HOST is $state" ;;
  *)
    echo "--- tail /var/log/slurm/slurmctld.log" >&2
    tail -n 20 /var/log/slurm/slurmctld.log >&2 || true
    echo "--- tail /var/log/slurm/slurmd.log" >&2
    tail -n 20 /var/log/slurm/slurmd.log >&2 || true
    die "node $HOST did not become idle within ${WAIT_S}s (sinfo state: '${state:-none}')"
    ;;
esac
