"""Where the engine's batches come from: a collector (online) or a fixed dataset (offline).

See `lit_rl.sources.base.DataSource` for the seam; the engine (`OffPolicyModule`) picks
`CollectorSource` or `DatasetSource` from the recipe (a `dataset` key means offline).
"""
