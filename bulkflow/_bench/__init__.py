"""The harness behind ``bulkflow bench``: bulkflow beside baselines and ceilings.

The package imports nothing on purpose: its modules also run as child
processes (``python -m bulkflow._bench._baselines``), whose peak memory is
measured, so none of them may pull in the harness, rich or matplotlib. The
CLI takes ``add_bench_parser`` and ``run_bench`` from ``bulkflow._bench._cli``.
"""
