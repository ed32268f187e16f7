"""The load-test harness (``python -m loadtest``); built under its own issue."""
