#!/usr/bin/env bash
# A single-node SLURM cluster with accounting on this host, for the `slurm`-marked tests:
# munge, MariaDB, slurmdbd, slurmctld and slurmd (Debian packages slurm-wlm slurmdbd munge
# mariadb-server), cluster "divrob", account "divrob" holding root.
#
# Idempotent: daemons already answering are left alone; run it as often as you like.
# Needs root. Exits 0 with the cluster idle and `sacct` answering, else non-zero with the reason.
#
# Test-cluster choices (none of them is needed by divrob; they keep the tests short):
#   AuthInfo=cred_expire=10  a requeued job may start again after 10 s instead of 120 s
#   MaxArraySize=4           small, so the tests see divrob split a larger array for real
#   CPUs=8 on a smaller box  the tests run several tiny jobs at once (config_overrides)
#   PropagatePrioProcess=1   a job runs at the nice value of the process that submitted it, so
#                            tests can keep quick jobs from slowing the one they time
set -euo pipefail

CLUSTER=divrob
ACCOUNT=divrob
HOST=$(hostname -s)
CPUS=${DIVROB_SLURM_CPUS:-8}
LOG=/var/log/slurm
DBPASS=divrob-slurm-ci

say() { echo "start_cluster: $*"; }
die() { echo "start_cluster: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (it configures and starts system daemons)"

if ! command -v slurmctld >/dev/null || ! command -v slurmdbd >/dev/null || ! command -v munged >/dev/null \
   || ! command -v mariadbd >/dev/null; then
  command -v apt-get >/dev/null || die "slurm-wlm slurmdbd munge mariadb-server are not installed and there is no apt-get"
  say "installing slurm-wlm slurmdbd munge mariadb-server"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurm-wlm slurmdbd munge mariadb-server mariadb-client >/dev/null
fi

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local t=$1 what=$2; shift 2
  for _ in $(seq "$t"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  die "$what did not come up within ${t}s (logs in $LOG, /var/log/munge, /var/log/mysql)"
}

# ---- munge --------------------------------------------------------------------------------
mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge
chmod 0700 /etc/munge /var/log/munge
chmod 0400 /etc/munge/munge.key
chmod 0755 /run/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  say "starting munged"
  rm -f /run/munge/munged.pid
  runuser -u munge -- /usr/sbin/munged
  wait_for 20 munged sh -c 'munge -n | unmunge'
fi

# ---- MariaDB and the accounting database --------------------------------------------------
mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
if ! mysqladmin ping >/dev/null 2>&1; then
  say "starting MariaDB"
  if [ ! -d /var/lib/mysql/mysql ]; then
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
  fi
  (setsid /usr/sbin/mariadbd --user=mysql --datadir=/var/lib/mysql --socket=/run/mysqld/mysqld.sock \
     --pid-file=/run/mysqld/mysqld.pid --bind-address=127.0.0.1 >/var/log/mysql-divrob.log 2>&1 &)
  wait_for 60 MariaDB mysqladmin ping
fi
mysql <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DBPASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
SQL

# ---- configuration ------------------------------------------------------------------------
mkdir -p /etc/slurm "$LOG" /var/spool/slurmctld /var/spool/slurmd
write_if_changed() {  # write_if_changed PATH MODE < content; prints "changed" when it wrote
  local tmp; tmp=$(mktemp)
  cat >"$tmp"
  if [ -f "$1" ] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; return 0; fi
  install -m "$2" "$tmp" "$1"; rm -f "$tmp"; echo changed
}

dbd_changed=$(write_if_changed /etc/slurm/slurmdbd.conf 0600 <<CONF
# written by divrob tests/slurm/start_cluster.sh
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
LogFile=$LOG/slurmdbd.log
PidFile=/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DBPASS
StorageLoc=slurm_acct_db
CONF
)

conf_changed=$(write_if_changed /etc/slurm/slurm.conf 0644 <<CONF
# written by divrob tests/slurm/start_cluster.sh
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
AuthInfo=cred_expire=10
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=5
ReturnToService=2
MaxArraySize=4
KillWait=30
PropagatePrioProcess=1
SlurmdParameters=config_overrides
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
)

# ---- daemons ------------------------------------------------------------------------------
pid_of() { local f=/run/$1.pid; [ -s "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"; }
running() { pid_of "$1" >/dev/null; }
restart_if() {  # restart_if CHANGED NAME: a daemon of ours whose config changed is stopped first
  local pid
  if [ -n "$1" ] && pid=$(pid_of "$2"); then
    say "config changed: restarting $2"
    kill "$pid" || true
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  fi
}

restart_if "$dbd_changed" slurmdbd
if ! running slurmdbd; then
  say "starting slurmdbd"
  /usr/sbin/slurmdbd
fi
wait_for 60 slurmdbd sacctmgr -n list cluster

# (grep without -q: with pipefail an early exit would fail the pipe)
if ! sacctmgr -n -P list cluster format=cluster | grep -x "$CLUSTER" >/dev/null; then
  sacctmgr -i add cluster "$CLUSTER" >/dev/null
fi
if ! sacctmgr -n -P list account format=account | grep -x "$ACCOUNT" >/dev/null; then
  sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" description=divrob-tests organization=divrob >/dev/null
fi
for user in root ${SUDO_USER:-}; do  # and whoever ran this through sudo, who submits the test jobs
  if ! sacctmgr -n -P list assoc user="$user" cluster="$CLUSTER" format=account | grep -x "$ACCOUNT" >/dev/null; then
    sacctmgr -i add user "$user" account="$ACCOUNT" cluster="$CLUSTER" >/dev/null
  fi
done

restart_if "$conf_changed" slurmctld
restart_if "$conf_changed" slurmd
if ! running slurmctld; then
  say "starting slurmctld"
  /usr/sbin/slurmctld
fi
wait_for 60 slurmctld scontrol ping
if ! running slurmd; then
  say "starting slurmd"
  /usr/sbin/slurmd
fi

node_ready() {
  local s; s=$(sinfo -h -n "$HOST" -o %t 2>/dev/null | head -1)
  case "$s" in
    idle|mix|alloc) return 0 ;;
    down*|drain*|drng*|fail*) scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true; return 1 ;;
    *) return 1 ;;
  esac
}
wait_for 90 "node $HOST (sinfo)" node_ready
wait_for 60 "sacct" sacct -n -X -S now-1minutes
say "cluster $CLUSTER ready: $(sinfo -h -o '%P %a %D %t %c CPUs') ; MaxArraySize $(scontrol show config | awk '/^MaxArraySize/ {print $3}')"
