"""DVMSet builder: typed core (ids, records, config, catalog, storage, errors, CLI)."""

__version__ = "0.1.0"
