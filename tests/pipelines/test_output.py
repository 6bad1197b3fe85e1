import gzip

import numpy as np
import pytest
from pipeline_helpers import WINDOW_START, shard_bytes, write_rows

from pipelines import taobao


def _log(tmp_path):
    rng = np.random.default_rng(0)
    rows = [[int(rng.integers(1, 9)), int(rng.integers(1, 40)), int(rng.integers(1, 5)),
             ["pv", "cart", "fav", "buy"][int(rng.integers(0, 4))],
             WINDOW_START + int(rng.integers(0, 5000))] for _ in range(400)]
    return write_rows(tmp_path / "log.csv", rows)


def _records(data_dir):
    return {n: gzip.decompress(b) for n, b in shard_bytes(data_dir).items()}


def test_small_shards_written_in_parallel_keep_order(tmp_path, cli):
    src = _log(tmp_path)
    assert cli(taobao, "--input", src, "--output", tmp_path / "one")[0] == 0
    assert cli(taobao, "--input", src, "--output", tmp_path / "many",
               "--examples-per-shard", "37")[0] == 0
    one, many = _records(tmp_path / "one"), _records(tmp_path / "many")
    assert len(many) > 10
    for split in ("train", "val"):
        joined = b"".join(v for k, v in sorted(many.items()) if k.startswith(split))
        assert joined == b"".join(v for k, v in one.items() if k.startswith(split))


def test_isal_default_gzip_holds_the_same_records_as_zlib(tmp_path, cli):
    pytest.importorskip("isal")
    src = _log(tmp_path)
    assert cli(taobao, "--input", src, "--output", tmp_path / "z",
               "--gzip-library", "zlib")[0] == 0
    assert cli(taobao, "--input", src, "--output", tmp_path / "i")[0] == 0
    assert _records(tmp_path / "z") == _records(tmp_path / "i")
    assert shard_bytes(tmp_path / "z") != shard_bytes(tmp_path / "i")
    code, err = cli(taobao, "--input", src, "--output", tmp_path / "x", "--gzip-library",
                    "isal", "--compression-level", "6")
    assert code == 2 and "0 to 3" in err and "Traceback" not in err
