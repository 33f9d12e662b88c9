"""sd-scripts' console output → events → the run's state (pure, but for `replay_file`)."""
