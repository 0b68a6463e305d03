"""The run folder on disk (`rundir`) and how a run stops (`stopping`): stdlib-only leaves that
every layer above may use."""
