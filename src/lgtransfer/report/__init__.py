"""Reports: `render` (the leaf that writes sections as Markdown and HTML), `experiment` (one
experiment's report, and a folder's), `figures` (one section per paper figure, over a suite) and
`stages` (a pretraining-stage sweep). Import the module you need; this package imports nothing,
so that any part may use `render` without a cycle."""
