"""Installing and checking the training environment: `setup`, `doctor` and `selftest`."""
