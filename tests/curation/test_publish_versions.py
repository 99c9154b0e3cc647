"""Publish's versions, through `publish` and the `dvmset` commands: a version never overwrites another
(the next free one is named), and a publish with nothing new writes nothing, the catalog included,
unless forced (then the rows are the same as the last version's).
"""

from __future__ import annotations

import pickle
import shutil

import pyarrow.parquet as pq
import pytest

from curation.publish import publish
from dvmset.catalog import Catalog
from dvmset.config import load_config
from dvmset.errors import PublishError
from tests.support.publish_catalog import run_cli


@pytest.mark.slow
def test_a_version_is_never_overwritten(published):
    config = load_config(published / "dvmset.toml", environ={})
    catalog = Catalog.open(config.resolved_catalog_url)
    with pytest.raises(PublishError, match="v0001.*exists"):
        publish(catalog, config, "v0001")
    catalog.close()
    code, output = run_cli("publish", "--config", published / "dvmset.toml", "--version", "v0001")
    assert code == 2 and "exists" in output and "v0002" in output  # a usage error: the next free version


@pytest.mark.slow
def test_a_publish_with_nothing_new_writes_nothing_unless_forced(published, tmp_path):
    from curation.versions import NothingChangedError

    work = shutil.copytree(published, tmp_path / "work")
    config = load_config(work / "dvmset.toml", environ={})
    catalog = Catalog.open(config.resolved_catalog_url)
    before = [(v.video_id, v.group_id, v.split, v.updated_at) for v in catalog.videos()]
    catalog.close()
    code, output = run_cli("publish", "--config", work / "dvmset.toml")
    said = " ".join(output.split())
    assert code == 0, output
    assert "nothing changed since v0001" in said and "v0002 was not written" in said and "--force" in said
    manifests = work / "data" / "manifests"
    assert sorted(p.name for p in manifests.iterdir()) == ["v0001"]
    catalog = Catalog.open(config.resolved_catalog_url)
    assert [(v.video_id, v.group_id, v.split, v.updated_at) for v in catalog.videos()] == before
    with pytest.raises(NothingChangedError) as unchanged:
        publish(catalog, config, "v0002")
    assert str(pickle.loads(pickle.dumps(unchanged.value))) == str(unchanged.value)
    catalog.close()
    code, output = run_cli("publish", "--config", work / "dvmset.toml", "--force")
    assert code == 0, output
    assert sorted(p.name for p in manifests.iterdir()) == ["v0001", "v0002"]
    for side in ("train", "test"):
        assert pq.read_table(manifests / "v0002" / f"{side}.parquet").equals(
            pq.read_table(manifests / "v0001" / f"{side}.parquet")
        )
