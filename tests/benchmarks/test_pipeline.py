"""benchmarks/pipeline.py: each deflate variant really runs the library it is named after."""

import zlib

import numpy as np
import pytest

from benchmarks import pipeline


def gzip_with(module, data: bytes) -> bytes:
    """``data`` as a level-1 gzip stream (wbits 31, mtime 0) written by ``module``."""
    z = module.compressobj(1, module.DEFLATED, 31)
    return z.compress(data) + z.flush()


def test_zlib_and_isal_variants_write_their_own_librarys_bytes(tmp_path):
    isal_zlib = pytest.importorskip("isal.isal_zlib")
    source = tmp_path / "behaviour.csv"
    pipeline.generate(str(source), 3000, seed=1)
    results = {}
    for suffix, flags in pipeline.variants():
        results[suffix] = pipeline.run_pipeline(str(source), str(tmp_path / f"out{suffix}"),
                                                flags)
    assert set(results) == {"_zlib", "_isal"}
    modules = {"zlib": zlib, "isal": isal_zlib}
    shards = {}
    for suffix, result in results.items():
        library = suffix[1:]
        # The flag is passed explicitly (the pipelines' default is isal) and recorded.
        assert result["args"] == ["--gzip-library", library]
        assert result["gzip_library"] == library
        files = sorted((tmp_path / f"out{suffix}").glob("*.tfrecord.gz"))
        assert files and sum(f.stat().st_size for f in files) == result["output_gz_bytes"]
        shards[suffix] = {f.name: f.read_bytes() for f in files}
        for raw in shards[suffix].values():
            records = zlib.decompress(raw, 31)
            # The library a variant names reproduces its shards byte for byte; the other
            # one does not.
            assert gzip_with(modules[library], records) == raw
            other = "isal" if library == "zlib" else "zlib"
            assert gzip_with(modules[other], records) != raw

    # Same records, different compressed bytes (and sizes).
    assert shards["_zlib"].keys() == shards["_isal"].keys()
    for name, raw in shards["_zlib"].items():
        assert zlib.decompress(raw, 31) == zlib.decompress(shards["_isal"][name], 31)
        assert raw != shards["_isal"][name]
    assert results["_zlib"]["output_gz_bytes"] != results["_isal"]["output_gz_bytes"]
    assert results["_zlib"]["examples"] == results["_isal"]["examples"] > 0


def test_generated_taobao_ad_files_run_through_the_pipeline_in_proportion(tmp_path):
    """The generated files keep the real files' shape: every row valid and in the window,
    about 23 rows a user, about 5% clicks, NULL brands and users without a profile."""
    result = pipeline.run_taobao_ad(str(tmp_path), 20_000)
    assert result["input_rows"] == result["examples"] == 20_000
    assert result["peak_rss_gib"] > 0 and result["input_rows_per_s"] > 0
    rows = (tmp_path / "raw_sample.csv").read_text().splitlines()
    assert rows[0] == "user,time_stamp,adgroup_id,pid,nonclk,clk"
    users = {line.split(",")[0] for line in rows[1:]}
    assert 15 < 20_000 / len(users) < 35
    clicks = sum(line.endswith(",1") for line in rows[1:])
    assert 0.03 < clicks / 20_000 < 0.07
    assert "NULL" in (tmp_path / "ad_feature.csv").read_text()
    profiled = len((tmp_path / "user_profile.csv").read_text().splitlines()) - 1
    assert profiled < int(20_000 * 1_141_729 / 26_557_961)


def test_a_generated_behaviour_log_runs_with_its_history(tmp_path):
    result = pipeline.run_taobao_ad(str(tmp_path), 5_000, log_rows=20_000)
    assert result["history"] == "behavior-log" and result["log_rows"] == 20_000
    assert result["all_rows_per_s"] > result["input_rows_per_s"] > 0
    rows = (tmp_path / "behavior_log.csv").read_text().splitlines()
    assert rows[0] == "user,time_stamp,btag,cate,brand" and len(rows) == 20_001
    fields = [line.split(",") for line in rows[1:]]
    assert 0.85 < sum(f[2] == "pv" for f in fields) / 20_000 < 0.95
    assert 0.07 < sum(f[4] == "NULL" for f in fields) / 20_000 < 0.13


def test_the_child_peak_is_its_own_not_the_parents(tmp_path):
    """Linux seeds a child's ru_maxrss with the parent's peak at the spawn; the wrapper's
    VmHWM is the child's own address space."""
    held = np.ones(2**28 // 8)  # the parent holds 256 MiB
    peak = pipeline.run_module_peak("platform", [], str(tmp_path))
    assert held.sum() > 0 and 0 < peak < 0.2
