"""Exit codes of the `gat` commands and the pipeline stages: defined here once, imported everywhere.

| code | meaning |
|---|---|
| 0 | success (gat predict: every input clustered) |
| 1 | failed: bad data, training or export failure, nothing clustered, an output not writable |
| 2 | usage: a bad option, param, params file or preset |
| 3 | gat predict: some inputs skipped (each listed with its reason), the rest clustered |
| 130 | interrupted by Ctrl-C (SIGINT); checkpoints and finished outputs kept |
| 143 | terminated by SIGTERM; handled like Ctrl-C |
"""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_SOME_SKIPPED = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
