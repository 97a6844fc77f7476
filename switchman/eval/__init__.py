"""Evaluation: cost-quality metrics over outcome matrices, sweeps, and reports with plots.

Import what you need from the submodules; this package imports nothing, so reading a metric
does not load what sits above it:

- ``metrics``: pure functions of outcome matrices and operating points (numpy only);
- ``sweep``: a policy's decisions across the cost-weight sweep and their observed points;
- ``report``: tables and the cost-quality plot (matplotlib, imported when one is drawn);
- ``run``: ``switchman eval``, which trains routers and so sits above ``switchman.router``.
"""
