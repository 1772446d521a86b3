"""The Azure stack (`cloud: azure`): one component per file, wired by stack.py."""
