"""Virtual node runtime: node registration, heartbeats and the pod controller."""
