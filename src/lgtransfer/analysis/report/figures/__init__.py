"""The paper's figures redrawn from our runs, each beside the paper's claim.

A folder holding several experiments (a sweep, or a whole suite) gets one report with a section
per paper figure. Experiments say which figure they redraw (`figure:` in the experiment file,
recorded in each run's manifest). Each figure family is a small module here, whose section
function `registry.figure` registers:

- `groups` (Figs 3, 4, 6, 7) and `controls` (Fig 8): each experiment's accuracy-vs-length panels;
- `ablations`, single auxiliary tasks (Fig 14): accuracy past the main length per auxiliary set;
- `ratio`, length ratio (Fig 10): the gap heatmap beside the paper's;
- `dynamics`, training dynamics (Fig 11): main-task accuracy per length over steps, per seed;
- `nope`, RoPE vs NoPE (Figs 12-13): the gap per group, both encodings;
- `pretrained`, pretrained models (Figs 9, 15): each stage sweep's own figures.

Every figure adds a table row per claim: what the paper says, what we measured, and whether it
reproduces. The criteria are fixed in code, never tuned to the outcome.

This module imports every figure module so that they register themselves; `registry` has
`figure_sections`, which draws them.
"""

from lgtransfer.analysis.report.figures import (  # noqa: F401  (imported to register their figures)
    ablations,
    controls,
    dynamics,
    groups,
    matrix,
    nope,
    pretrained,
    ratio,
)
