# Made by kohya-plan: runs this run's training exactly as `kohya-plan launch` would.
$ErrorActionPreference = 'Stop'
Set-Location -LiteralPath '<ROOT>/sd-scripts'
& '<ROOT>/venv/bin/python' '-m' 'accelerate.commands.launch' '--config_file' '<ROOT>/runs/<RUN>/accelerate.json' '--num_processes' '2' '--num_machines' '1' '--multi_gpu' '--gpu_ids' '0,1' '--mixed_precision' 'bf16' '--dynamo_backend' 'no' '--num_cpu_threads_per_process' '2' '--main_process_port' '29500' '<ROOT>/sd-scripts/train_network.py' '--config_file' '<ROOT>/runs/<RUN>/config.toml' '--dataset_config' '<ROOT>/runs/<RUN>/dataset.toml'
exit $LASTEXITCODE
