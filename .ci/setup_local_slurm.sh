#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, from Debian's packages, for
# tests/test_slurm_e2e.py and CI (.ci/run):
#
#   munged -> MariaDB -> slurmdbd (job accounting, so `sacct` works) -> slurmctld -> slurmd
#
# Run as root on Debian/Ubuntu. Idempotent: installs only what is missing, rewrites only the
# files it wrote itself (marked "written by trajzoo"), starts only daemons that are not running,
# and finishes when `sinfo` shows the node idle. No systemd needed: daemons are started
# directly. Every wait is bounded; on failure the script prints the daemon logs and exits 1.
#
#   sudo tests/slurm/setup_local_slurm.sh            # set up / start
#   tests/slurm/setup_local_slurm.sh --status        # sinfo + sacct of the last jobs
#
# Cluster "trajzoo", one partition "local" (Default) holding this host with the CPUs and
# memory `slurmd -C` reports. proctrack/linuxproc and task/none: no cgroups required (works
# in containers). Memory is not a consumable resource (CR_Core): --mem is only checked
# against the node's RealMemory.
set -euo pipefail

CLUSTER=trajzoo
PARTITION=local
MARK="# written by trajzoo tests/slurm/setup_local_slurm.sh"
LOGDIR=/var/log/slurm

log() { echo "[setup_local_slurm] $*" >&2; }
die() {
  log "ERROR: $*"
  for f in /var/log/munge/munged.log /var/log/mysql/error.log "$LOGDIR/slurmdbd.log" \
           "$LOGDIR/slurmctld.log" "$LOGDIR/slurmd.log"; do
    [ -f "$f" ] && { echo "--- tail $f" >&2; tail -n 20 "$f" >&2; }
  done
  exit 1
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND every 0.5 s until it succeeds.
wait_for() {
  local secs=$1 what=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "timed out after ${secs}s waiting for $what"
    sleep 0.5
  done
}

running() { pgrep -x "$1" >/dev/null 2>&1; }

if [ "${1:-}" = "--status" ]; then
  sinfo
  sacct -X --starttime now-1days -o JobID,JobName%40,Comment%60,State,Elapsed | tail -n 20
  exit 0
fi

[ "$(id -u)" = 0 ] || die "run as root"
START=$SECONDS

# --- 1. packages --------------------------------------------------------------------------
need=()
for pair in slurmctld:slurm-wlm slurmd:slurm-wlm sbatch:slurm-wlm munged:munge \
            slurmdbd:slurmdbd mariadbd:mariadb-server; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] || need+=("${pair#*:}")
done
if [ "${#need[@]}" -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 || die "missing ${need[*]} and no apt-get"
  pkgs=$(printf '%s\n' "${need[@]}" | sort -u | tr '\n' ' ')
  log "installing $pkgs"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || die "apt-get update failed"
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $pkgs >/dev/null || die "apt-get install $pkgs failed"
fi
export PATH="$PATH:/usr/sbin:/sbin"

# --- 2. host name ---------------------------------------------------------------------------
HOST=$(hostname -s)
if ! getent hosts "$HOST" >/dev/null; then
  log "adding $HOST to /etc/hosts"
  echo "127.0.1.1 $HOST $MARK" >> /etc/hosts
fi

# --- 3. munge --------------------------------------------------------------------------------
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  log "creating /etc/munge/munge.key"
  mungekey --create --keyfile /etc/munge/munge.key 2>/dev/null \
    || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
fi
if ! running munged; then
  log "starting munged"
  runuser -u munge -- munged
fi
wait_for 20 "munge" bash -c 'munge -n | unmunge'

# --- 4. MariaDB (storage of slurmdbd) -----------------------------------------------------
install -d -o mysql -g mysql -m 0755 /run/mysqld /var/log/mysql
if [ ! -d /var/lib/mysql/mysql ]; then
  log "initialising the MariaDB data directory"
  mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null || die "mariadb-install-db failed"
fi
if ! running mariadbd && ! running mysqld; then
  log "starting MariaDB"
  # --skip-networking: slurmdbd reaches it through the unix socket (StorageHost=localhost).
  # setsid: its own session, so it outlives the shell (or CI step) that started it, like the
  # daemonising SLURM and munge daemons.
  setsid nohup mariadbd --user=mysql --skip-networking --log-error=/var/log/mysql/error.log \
    >/dev/null 2>&1 </dev/null &
fi
wait_for 60 "MariaDB" mariadb-admin ping

# --- 5. slurmdbd.conf ---------------------------------------------------------------------
install -d -o slurm -g slurm -m 0755 /etc/slurm "$LOGDIR" /run/slurm /var/spool/slurmctld /var/spool/slurmd
DBD_CONF=/etc/slurm/slurmdbd.conf
restart_dbd=0
if [ -f "$DBD_CONF" ] && ! grep -qF "$MARK" "$DBD_CONF"; then
  log "keeping the existing $DBD_CONF (not written by this script)"
else
  if [ -f "$DBD_CONF" ]; then
    DB_PASS=$(sed -n 's/^StoragePass=//p' "$DBD_CONF")
  fi
  DB_PASS=${DB_PASS:-$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')}
  new=$(cat <<EOF
$MARK
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
DebugLevel=info
LogFile=$LOGDIR/slurmdbd.log
PidFile=/run/slurm/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
)
  if [ ! -f "$DBD_CONF" ] || [ "$new" != "$(cat "$DBD_CONF")" ]; then
    printf '%s\n' "$new" > "$DBD_CONF"
    restart_dbd=1
  fi
  chown slurm:slurm "$DBD_CONF"
  chmod 0600 "$DBD_CONF"   # slurmdbd refuses a config others can read (it holds the password)
  mariadb <<EOF || die "creating the MariaDB user for slurmdbd failed"
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL PRIVILEGES ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
EOF
fi
# --- 6. slurm.conf (sacctmgr reads it too) ------------------------------------------------
CONF=/etc/slurm/slurm.conf
NODE_LINE=$(slurmd -C | head -n 1)   # NodeName=<host> CPUs=.. Boards=.. ... RealMemory=..
[[ "$NODE_LINE" == NodeName=* ]] || die "unexpected output of slurmd -C: $NODE_LINE"
restart_slurm=0
if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
  log "keeping the existing $CONF (not written by this script)"
else
  new=$(cat <<EOF
$MARK
ClusterName=$CLUSTER
SlurmctldHost=$HOST
SlurmUser=slurm
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# Finished jobs stay in slurmctld for 5 minutes (squeue); sacct reads them from slurmdbd.
MinJobAge=300
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageEnforce=associations
# sacct shows the plugin's --comment (rule_<rule>_wildcards_<...>): tests/test_slurm_e2e.py
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/none
$NODE_LINE State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
)
  if [ ! -f "$CONF" ] || [ "$new" != "$(cat "$CONF")" ]; then
    log "writing $CONF"
    printf '%s\n' "$new" > "$CONF"
    restart_slurm=1
  fi
  chmod 0644 "$CONF"
fi

# --- 7. start slurmdbd, register the cluster ---------------------------------------------
stop_daemon() {  # stop_daemon NAME PIDFILE: SIGTERM the pid in PIDFILE, wait up to 15 s
  local pid
  pid=$(cat "$2" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    log "restarting $1 (new configuration)"
    kill "$pid"
    local deadline=$((SECONDS + 15))
    while kill -0 "$pid" 2>/dev/null; do
      [ "$SECONDS" -lt "$deadline" ] || { kill -9 "$pid" 2>/dev/null || true; break; }
      sleep 0.3
    done
  fi
}
[ "$restart_dbd" = 1 ] && stop_daemon slurmdbd /run/slurm/slurmdbd.pid
if ! running slurmdbd; then
  log "starting slurmdbd"
  slurmdbd
fi
wait_for 60 "slurmdbd" sacctmgr -n list cluster

# The cluster and root's association must exist in the accounting database before slurmctld
# enforces associations.
if ! sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
  log "adding cluster $CLUSTER to the accounting database"
  sacctmgr -i add cluster "$CLUSTER" >/dev/null || die "sacctmgr add cluster failed"
fi

if [ "$restart_slurm" = 1 ]; then
  stop_daemon slurmd /run/slurm/slurmd.pid
  stop_daemon slurmctld /run/slurm/slurmctld.pid
fi

# --- 8. slurmctld, slurmd ------------------------------------------------------------------
if ! running slurmctld; then
  log "starting slurmctld"
  slurmctld
fi
wait_for 30 "slurmctld" scontrol ping
if ! running slurmd; then
  log "starting slurmd"
  slurmd
fi

node_usable() {  # idle, or busy with jobs (mix/alloc) when the cluster was already running
  case "$(sinfo -h -n "$HOST" -o %t 2>/dev/null | head -n 1)" in idle|mix|alloc) return 0;; *) return 1;; esac
}
deadline=$((SECONDS + 60))
until node_usable; do
  state=$(sinfo -h -n "$HOST" -o %t 2>/dev/null | head -n 1 || true)
  case "$state" in
    down*|drain*|inval*) scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true ;;
  esac
  [ "$SECONDS" -lt "$deadline" ] || die "node $HOST not idle after 60 s (state: ${state:-none})"
  sleep 0.5
done

# root's association (account root) is created with the cluster; check that it is there.
sacctmgr -n -P list assoc cluster="$CLUSTER" user=root format=account | grep -q . \
  || die "no association for root on cluster $CLUSTER"

log "ready in $((SECONDS - START)) s: $(sinfo -h -o '%P %D %t %c CPUs %m MB' | head -n 1)"
