#!/usr/bin/env bash
# Made by kohya-plan: runs this run's training exactly as `kohya-plan launch` would.
set -euo pipefail
cd '<ROOT>/sd-scripts'
exec /opt/sd/bin/python -m accelerate.commands.launch --config_file '<ROOT>/runs/<RUN>/accelerate.json' --num_processes 1 --num_machines 1 --gpu_ids all --mixed_precision fp16 --dynamo_backend no --num_cpu_threads_per_process 2 '<ROOT>/sd-scripts/train_network.py' --config_file '<ROOT>/runs/<RUN>/config.toml' --dataset_config '<ROOT>/runs/<RUN>/dataset.toml'
