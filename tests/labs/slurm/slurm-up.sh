#!/usr/bin/env bash
# slurm-up.sh DIR: a single-node Slurm 22.05 cluster on localhost for tests, everything under DIR:
#   munged (own key and socket), mariadbd (private data folder, for sacct), slurmdbd, slurmctld and
#   slurmd. PIDs go to DIR/pids (one "name pid" per line) for slurm-down.sh; logs to DIR/log.
#   Clients then need:  export SLURM_CONF=DIR/etc/slurm.conf   (printed at the end).
# Packages (Debian/Ubuntu):
#   apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge slurmdbd mariadb-server
# Environment: CTLD_PORT, SLURMD_PORT, DBD_PORT, DB_PORT (defaults 6817, 6818, 6819, 3307) so that
#   two clusters can run side by side; CPUS and MEM_MB for the node (default: this machine's cores
#   and 85 % of its memory). Runs as root (slurmd starts job steps as the submitting user).
# Exit status 0 once `sinfo` shows the node idle, else 1 (the daemons started so far keep running:
#   call slurm-down.sh DIR in every case).
set -euo pipefail
S=${1:?usage: slurm-up.sh DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
CTLD_PORT=${CTLD_PORT:-6817}
SLURMD_PORT=${SLURMD_PORT:-6818}
DBD_PORT=${DBD_PORT:-6819}
DB_PORT=${DB_PORT:-3307}
CPUS=${CPUS:-$(nproc)}
MEM_MB=${MEM_MB:-$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.85 }' /proc/meminfo)}
T0=$(date +%s%N)
mkdir -p "$S"
S=$(cd "$S" && pwd)
rm -rf "${S:?}"/{etc,log,run,spool,munge,mysql}
mkdir -p "$S"/{etc,log,run,spool/slurmctld,spool/slurmd,munge,mysql}
chmod 700 "$S/munge"
: > "$S/pids"
export SLURM_CONF=$S/etc/slurm.conf
MSOCK=$S/munge/munge.socket.2
step() { echo "$(( ($(date +%s%N) - T0) / 1000000 )) ms: $*"; }
wait_for() {  # wait_for TRIES TEST...: run TEST every 0.1 s until it succeeds
  local n=$1; shift
  for _ in $(seq "$n"); do "$@" && return 0; sleep 0.1; done
  return 1
}

# --- munge: own key and socket, so the system's munge (if any) is not touched
dd if=/dev/urandom of="$S/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$S/munge/munge.key"
munged --force --socket="$MSOCK" --key-file="$S/munge/munge.key" --pid-file="$S/munge/munged.pid" \
  --log-file="$S/log/munged.log" --seed-file="$S/munge/munged.seed"
echo "munged $(cat "$S/munge/munged.pid")" >> "$S/pids"
munge -S "$MSOCK" -n | unmunge -S "$MSOCK" > /dev/null   # round trip
step "munged up"

# --- mariadb for slurmdbd: private data folder, TCP on 127.0.0.1 only
mariadb-install-db --no-defaults --datadir="$S/mysql/data" --user=root \
  --auth-root-authentication-method=normal --skip-test-db > "$S/log/mariadb-install.log" 2>&1
mariadbd --no-defaults --user=root --datadir="$S/mysql/data" --socket="$S/mysql/mysqld.sock" \
  --pid-file="$S/mysql/mysqld.pid" --port="$DB_PORT" --bind-address=127.0.0.1 --skip-name-resolve \
  --innodb-buffer-pool-size=32M --innodb-lock-wait-timeout=900 --performance-schema=OFF \
  --log-error="$S/log/mariadbd.err" < /dev/null > "$S/log/mariadbd.out" 2>&1 &
echo "mariadbd $!" >> "$S/pids"
wait_for 300 test -S "$S/mysql/mysqld.sock"
mariadb --no-defaults -S "$S/mysql/mysqld.sock" -u root -e \
  "CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurmpw';
   GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
step "mariadbd up"

cat > "$S/etc/slurmdbd.conf" << EOC
AuthType=auth/munge
AuthInfo=socket=$MSOCK
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurmpw
StorageLoc=slurm_acct_db
LogFile=$S/log/slurmdbd.log
PidFile=$S/run/slurmdbd.pid
DebugLevel=info
EOC
chmod 600 "$S/etc/slurmdbd.conf"
sed -e "s|@CLUSTER@|$S|g" -e "s|@CTLD_PORT@|$CTLD_PORT|g" -e "s|@SLURMD_PORT@|$SLURMD_PORT|g" \
  -e "s|@DBD_PORT@|$DBD_PORT|g" -e "s|@CPUS@|$CPUS|g" -e "s|@MEM_MB@|$MEM_MB|g" \
  "$HERE/slurm.conf.in" > "$SLURM_CONF"
if grep -qE "@[A-Z_]+@" "$SLURM_CONF"; then echo "unfilled placeholder in $SLURM_CONF" >&2; exit 1; fi

# --- slurmdbd, then register the cluster (slurmctld would otherwise wait for it)
slurmdbd
wait_for 100 test -s "$S/run/slurmdbd.pid"
echo "slurmdbd $(cat "$S/run/slurmdbd.pid")" >> "$S/pids"
for _ in $(seq 40); do
  timeout 10 sacctmgr -i add cluster lab > /dev/null 2>&1 && break
  sleep 0.25
done
sacctmgr -n -P list cluster format=cluster | grep -qx lab
step "slurmdbd up, cluster registered"

# --- controller (-c: clean start, no saved jobs) and the node; this host's name need not be
# "localhost", hence -N localhost
slurmctld -c
wait_for 100 test -s "$S/run/slurmctld.pid"
echo "slurmctld $(cat "$S/run/slurmctld.pid")" >> "$S/pids"
slurmd -N localhost
wait_for 100 test -s "$S/run/slurmd.pid"
echo "slurmd $(cat "$S/run/slurmd.pid")" >> "$S/pids"
st=
for _ in $(seq 300); do
  st=$(sinfo -h -N -o %T 2> /dev/null || true)
  [ "$st" = idle ] && break
  sleep 0.1
done
sinfo
step "slurm up; node state: ${st:-unknown}"
echo "export SLURM_CONF=$SLURM_CONF"
[ "$st" = idle ]
