"""Reports: one self-contained HTML file per session (:mod:`.html`) and trend statistics (:mod:`.trend`).

Plots are SVG drawn by matplotlib (the ``pytest-litmus[report]`` extra), imported
only when a plot is drawn: nothing here is loaded by the pytest plugin, and the
statistics and ``litmus trend``'s text need no plotting library.
"""
