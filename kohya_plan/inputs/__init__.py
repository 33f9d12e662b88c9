"""What a plan points at, read-only: image folders, checkpoints, the Hub, this machine."""
