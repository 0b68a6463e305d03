"""Run orchestration: experiments planned into run folders (`sweep`), trained inline, in a
process pool or on SLURM (`executors`), and the GPU evidence queue (`gpu_plan`, `gpu_queue`,
`evidence_pack`). The only layer that reaches torch, by importing `lgtransfer.engine` modules
inside the functions that train."""
