"""The manifest contract: the Parquet schema and its writer/reader, the split, the check, the
dataset card, the release table and the jsonl export. curation writes manifests through it,
model reads them through it; it imports only the dvmset core."""
