#!/usr/bin/env bash
# slurm-down.sh DIR: cancel every job, then stop exactly the daemons slurm-up.sh DIR started
#   (the PIDs in DIR/pids, last first: SIGTERM, SIGKILL after 20 s). Keeps DIR/log; RM=1 also
#   removes DIR. Safe to call more than once, and after a failed slurm-up.sh.
S=${1:?usage: slurm-down.sh DIR}
export SLURM_CONF=$S/etc/slurm.conf
[ -f "$S/pids" ] || { echo "slurm-down: nothing to stop ($S/pids missing)"; exit 0; }
T0=$(date +%s%N)
if grep -q '^slurmctld ' "$S/pids" && grep -q '^slurmd ' "$S/pids"; then
  # jobs first: slurmd signals their steps, so no trainer outlives the cluster
  timeout 20 scancel --user="$(id -un)" 2> /dev/null || true
  for _ in $(seq 60); do
    [ -z "$(timeout 10 squeue -h 2> /dev/null)" ] && break
    sleep 0.5
  done
fi
# stop_all NAME...: SIGTERM those daemons of DIR/pids at once, wait, SIGKILL after 20 s.
# Only a PID that still is the daemon we started (its name matches: a PID can be reused).
stop_all() {
  local name pid comm left
  local -a pids=() names=()
  while read -r name pid; do
    [[ " $* " == *" $name "* ]] || continue
    comm=$(cat "/proc/$pid/comm" 2> /dev/null || true)
    [ "$comm" = "$name" ] || continue
    kill -TERM "$pid" 2> /dev/null && pids+=("$pid") && names+=("$name")
  done < "$S/pids"
  for _ in $(seq 200); do
    left=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2> /dev/null && left=1; done
    [ "$left" = 0 ] && break
    sleep 0.1
  done
  for i in "${!pids[@]}"; do
    if kill -0 "${pids[$i]}" 2> /dev/null; then
      echo "slurm-down: ${names[$i]} (${pids[$i]}) did not stop on SIGTERM: SIGKILL"
      kill -KILL "${pids[$i]}"
    fi
    echo "slurm-down: stopped ${names[$i]} (${pids[$i]}) at $(( ($(date +%s%N) - T0) / 1000000 )) ms"
  done
}
# Slurm's daemons first (slurmctld flushes to slurmdbd), then the database and munge.
stop_all slurmd slurmctld slurmdbd
stop_all mariadbd munged
rm -f "$S/pids"
echo "slurm-down: done in $(( ($(date +%s%N) - T0) / 1000000 )) ms"
[ -n "${RM:-}" ] && rm -rf "$S"
exit 0
