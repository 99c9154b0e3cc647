"""The `dvmset` command line, the application's top floor: `main` creates the app and registers every
command; one module per user (`curate`, `publish`, `label`, `train`, `rhythm`, `generate`, `evaluate`,
`models`), each command parsing its options, making one call into its domain and printing; `common` holds
what they share (exit codes, consoles, options, config and catalog loading)."""
