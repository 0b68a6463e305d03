"""Reports: `render` (the leaf that writes sections as Markdown and HTML), `experiment` (one
experiment's report), `stages` (a pretraining-stage sweep's), `figures` (one section per paper
figure, over a suite) and `suite` (a folder of several experiments; its `write_report` reports
any folder). Import the module you need; this package imports nothing, so that any part may use
`render` without a cycle."""
