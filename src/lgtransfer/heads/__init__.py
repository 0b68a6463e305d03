"""Attention-head reuse between the main and the auxiliary tasks (`lgt heads`, docs/paper.md §8).
Each module is imported by its own name; this package imports nothing.

`analysis`: finds the trained runs to analyse (`TrainedRun`), measures every selected checkpoint
in two length bands, and writes `DIR/heads/` (`run_heads`, `HeadOptions`).

`measure`: hooks and measurements on one model: batched head ablation, importance maps, the
attention difference on aligned inputs.

`causal`: the causal test: the k heads most important to the aux tasks ablated together,
against R random sets of k heads.

`stats`: the head analysis's own statistics: the causal test's bootstrap interval and
summary.json (`summarize_reuse`). Torch-free.

`plots`: the figures, tables and the report section (`heads_section`). Torch-free, so reports
can import it without loading torch.
"""
