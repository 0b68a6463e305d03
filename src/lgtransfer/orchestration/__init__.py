"""Run orchestration: experiments planned into run folders (`sweep`), trained inline, in a
process pool or on SLURM (`executors`), and the GPU evidence queue (`gpu_plan`, `gpu_queue`,
`evidence_pack`). Loading it never loads torch: it reaches the engine only by importing an
engine module inside the function that trains."""
