"""An S3-compatible server for tests: moto's standalone server on 127.0.0.1 (plain S3 over HTTP, so the
code under test talks to it as it would to AWS S3 or MinIO), with one bucket and throwaway credentials
in the environment. Nothing leaves the machine."""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from moto.server import ThreadedMotoServer

from dvmset.store import ObjectStore

BUCKET = "dvmset-test"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
NO_CREDENTIALS = {  # none from a profile or an instance: only what a test sets
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    "AWS_CONFIG_FILE": "/nonexistent",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str

    def store(self, prefix: str) -> ObjectStore:
        """The store at `s3://<bucket>/<prefix>` on this server."""
        return ObjectStore(f"s3://{BUCKET}/{prefix}", self.endpoint_url)

    def objects(self, prefix: str) -> dict[str, bytes]:
        """Every object under `prefix`, by its path relative to the prefix: its bytes."""
        store = self.store(prefix)
        return {relative: store.fs.cat_file(store.key(relative)) for relative in store.files("")}


@contextmanager
def s3_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """A moto S3 server on a free port of 127.0.0.1 with the bucket `BUCKET`, credentials in the environment."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    for name, value in {**CREDENTIALS, **NO_CREDENTIALS}.items():
        monkeypatch.setenv(name, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        s3 = S3Server(f"http://{host}:{port}")
        urllib.request.urlopen(urllib.request.Request(f"{s3.endpoint_url}/moto-api/reset", method="POST")).close()
        s3.store("").fs.mkdir(BUCKET)  # moto keeps its buckets per process: reset above, then made again
        yield s3
    finally:
        server.stop()
