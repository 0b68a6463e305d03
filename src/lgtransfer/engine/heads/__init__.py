"""Attention-head measurements on a model (torch): hooks and ablations, the causal test, `lgt
heads`, and recording during training. Their statistics and plots are torch-free, in
`lgtransfer.analysis`.
"""
