"""benchmarks/pipeline.py: each deflate variant really runs the library it is named after."""

import zlib

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
