"""Benchmarks for protocol-gateway: `python -m bench` (see bench/README.md).

Every figure is measured next to a baseline taken in the same run on the same machine,
because the machine is shared and noisy: the ratio travels better than the number.
"""
