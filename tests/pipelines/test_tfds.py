"""``--tfds``: the TensorFlow Datasets copy, read back with tensorflow-datasets' own
``builder_from_directory`` and compared with what ``mdaf_tf.data`` reads from the GZIP
shards."""

import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
from pipeline_helpers import shard_bytes, write_rows

from mdaf_tf.data import make_dataset
from pipelines import impressions, synthetic, taobao_ad, tfds_output
from pipelines.errors import PipelineError

SMALL = ["--users", 300, "--items", 120, "--categories", 12, "--impressions-per-user", 60]
TINY = ["--users", 30, "--items", 40, "--categories", 5, "--impressions-per-user", 40]
SPLITS = ("train", "val", "test")
HEADER = ["user_id", "item_id", "cate_id", "timestamp", "label", "brand", "price", "age",
          "action"]
DECLARED = ["--categorical", "brand", "--numeric", "price,age", "--history-fields",
            "item_id,cate_id,brand", "--history-only", "action", "--max-seq-len", 4]
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AD_FILES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "taobao_ad_files")
DATASETS = ["synthetic_dir", "declared_dir", "taobao_ad_dir"]


def _run(module, *argv):
    module.main([str(a) for a in argv])


def _meta(data_dir):
    with open(os.path.join(data_dir, "metadata.json")) as f:
        return json.load(f)


def _tfds_dir(data_dir):
    return os.path.join(data_dir, _meta(data_dir)["tfds"])


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory):
    """Several shards per split: 12600 / 2700 / 2700 examples, 1000 a shard."""
    out = tmp_path_factory.mktemp("synthetic") / "ds"
    _run(synthetic, "--output", out, "--quiet", "--tfds", "--examples-per-shard", 1000, *SMALL)
    return str(out)


def _declared_rows(n=600):
    rng = np.random.default_rng(7)
    rows = []
    for _ in range(n):
        item = int(rng.integers(0, 30))
        price = "" if rng.random() < 0.2 else round(float(rng.normal(50, 15)), 2)
        rows.append([f"u{int(rng.integers(0, 12))}", item, f"c{item % 5}",
                     1_600_000_000 + int(rng.integers(0, 5 * 86400)), int(rng.random() < 0.4),
                     f"b{item % 7}", price, int(rng.integers(18, 70)),
                     ["view", "cart", "buy"][int(rng.integers(0, 3))]])
    return rows


@pytest.fixture(scope="module")
def declared_dir(tmp_path_factory):
    """Extra categorical, float32 numeric (with missing values) and history-only fields."""
    tmp = tmp_path_factory.mktemp("declared")
    src = write_rows(tmp / "log.csv", _declared_rows(), HEADER)
    out = tmp / "ds"
    _run(impressions, "--input", src, "--output", out, "--quiet", "--tfds",
         "--examples-per-shard", 150, *DECLARED)
    return str(out)


@pytest.fixture(scope="module")
def taobao_ad_dir(tmp_path_factory):
    """The ad-click pipeline (its own dataset name, a float32 price) on the shipped files."""
    out = tmp_path_factory.mktemp("taobao_ad") / "ds"
    _run(taobao_ad, *(f"--{flag.replace('_', '-')}={os.path.join(AD_FILES, flag + '.csv')}"
                      for flag in ("raw_sample", "ad_feature", "user_profile")),
         "--protocol", "time", "--history", "impressions", "--max-seq-len", 4,
         "--examples-per-shard", 7, "--output", out, "--quiet", "--tfds")
    return str(out)


def _from_shards(data_dir, split):
    """Every feature of ``split`` as ``mdaf_tf.data.make_dataset`` reads the GZIP shards."""
    names = _meta(data_dir)["features"]
    ds = make_dataset(data_dir, split, 1 << 20, include_timestamp=True,
                      extra_features=tuple(n for n in names if n != "label"))
    (features, label), = ds.as_numpy_iterator()
    return {**features, "label": label}


def _from_tfds(data_dir, split, **kwargs):
    """The whole split as TFDS reads it; by default file after file, in the shards' order."""
    kwargs.setdefault("read_config", tfds.ReadConfig(interleave_cycle_length=1))
    builder = tfds.builder_from_directory(_tfds_dir(data_dir))
    return tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1, **kwargs))


def _rows(columns):
    """Each example's values as one bytes string, in the columns' order."""
    names = sorted(columns)
    return [b"".join(columns[n][i].tobytes() for n in names)
            for i in range(len(columns["label"]))]


@pytest.mark.parametrize("which", DATASETS)
def test_every_example_reads_as_from_the_gzip_shards(request, which):
    data_dir = request.getfixturevalue(which)
    meta = _meta(data_dir)
    for split in SPLITS:
        got, want = _from_tfds(data_dir, split), _from_shards(data_dir, split)
        assert sorted(got) == sorted(meta["features"]) == sorted(want)
        assert len(got["label"]) == meta["splits"][split]["examples"] > 0
        for name, values in want.items():
            if name == "label":  # make_dataset gives the label as float32
                assert got[name].dtype == np.int64
                values = values.astype(np.int64)
            assert got[name].dtype == values.dtype, name
            np.testing.assert_array_equal(got[name], values, err_msg=f"{split}/{name}")


def test_default_and_shuffled_reads_hold_the_same_examples(synthetic_dir):
    want = _from_shards(synthetic_dir, "train")
    want["label"] = want["label"].astype(np.int64)
    interleaved = _from_tfds(synthetic_dir, "train", read_config=tfds.ReadConfig())
    shuffled = _from_tfds(synthetic_dir, "train", read_config=tfds.ReadConfig(),
                          shuffle_files=True)
    for got in (interleaved, shuffled):
        assert sorted(_rows(got)) == sorted(_rows(want))
    assert _rows(shuffled) != _rows(want)  # 13 shards read in another order


def test_numeric_fields_are_float32_with_missing_values_kept(declared_dir):
    got = _from_tfds(declared_dir, "train")
    assert got["price"].dtype == got["age"].dtype == np.float32
    assert 0 < np.isnan(got["price"]).sum() < len(got["price"])
    assert got["hist_action"].shape == (len(got["label"]), 4)


@pytest.mark.parametrize("which", DATASETS)
def test_split_infos_match_metadata_and_files(request, which):
    data_dir = request.getfixturevalue(which)
    meta = _meta(data_dir)
    builder = tfds.builder_from_directory(_tfds_dir(data_dir))
    assert meta["tfds"] == f"tfds/{meta['dataset']}/3.0.0"
    assert (builder.name, str(builder.version)) == (meta["dataset"], "3.0.0")
    for split in SPLITS:
        info = builder.info.splits[split]
        assert info.num_examples == meta["splits"][split]["examples"]
        files = sorted(f for f in os.listdir(_tfds_dir(data_dir)) if f"-{split}." in f)
        assert len(files) == len(meta["splits"][split]["shards"]) == info.num_shards
        paths = [os.path.join(_tfds_dir(data_dir), f) for f in files]
        counted = [sum(1 for _ in _records(p)) for p in paths]
        assert list(info.shard_lengths) == counted
        assert info.num_bytes == sum(os.path.getsize(p) for p in paths)


def _records(path):
    import tensorflow as tf

    return tf.data.TFRecordDataset(path).as_numpy_iterator()


def test_records_are_the_gzip_shards_bytes_decompressed(synthetic_dir):
    meta = _meta(synthetic_dir)
    name = meta["dataset"]
    for split in SPLITS:
        shards = meta["splits"][split]["shards"]
        assert len(shards) > 1
        for i, shard in enumerate(shards):
            with open(os.path.join(synthetic_dir, shard), "rb") as f:
                want = gzip.decompress(f.read())
            copy = f"{name}-{split}.tfrecord-{i:05d}-of-{len(shards):05d}"
            with open(os.path.join(_tfds_dir(synthetic_dir), copy), "rb") as f:
                assert f.read() == want


def test_metadata_files_are_tfds_own(synthetic_dir):
    listed = set(os.listdir(_tfds_dir(synthetic_dir)))
    assert {"dataset_info.json", "features.json"} <= listed
    with open(os.path.join(_tfds_dir(synthetic_dir), "dataset_info.json")) as f:
        info = json.load(f)
    assert info["fileFormat"] == "tfrecord" and not info.get("disableShuffling", False)
    assert [s["name"] for s in info["splits"]] == list(SPLITS)


def test_without_the_option_nothing_tfds_and_reruns_add_or_drop_it(tmp_path, cli):
    out = tmp_path / "ds"
    code, err = cli(synthetic, "--output", out, "--quiet", *TINY)
    assert code == 0, err
    assert not (out / "tfds").exists() and "tfds" not in _meta(out)
    assert _meta(out)["args"]["tfds"] is False
    shards = shard_bytes(out)
    code, err = cli(synthetic, "--output", out, "--quiet", "--tfds", *TINY)  # no --overwrite
    assert code == 0, err
    assert (out / "tfds").is_dir() and shard_bytes(out) == shards
    code, err = cli(synthetic, "--output", out, "--quiet", *TINY)
    assert code == 0, err
    assert not (out / "tfds").exists() and "tfds" not in _meta(out)


def test_an_empty_split_is_left_out(tmp_path, cli):
    out = tmp_path / "ds"
    code, err = cli(synthetic, "--output", out, "--quiet", "--tfds", "--test-fraction", 0,
                    *TINY)
    assert code == 0, err
    assert _meta(out)["splits"]["test"]["examples"] == 0
    builder = tfds.builder_from_directory(_tfds_dir(out))
    assert sorted(builder.info.splits) == ["train", "val"]
    assert not [f for f in os.listdir(_tfds_dir(out)) if "-test." in f]


def test_missing_package_is_a_one_line_error_before_any_work(tmp_path, cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    out = tmp_path / "ds"
    code, err = cli(synthetic, "--output", out, "--tfds", *TINY)
    assert code == 2
    assert err == "error: --tfds needs tensorflow-datasets (pip install 'mdaf-tf[tfds]')\n"
    assert not out.exists()


def test_a_failed_tfds_copy_leaves_the_previous_dataset(tmp_path, cli, monkeypatch):
    out = tmp_path / "ds"
    code, err = cli(synthetic, "--output", out, "--quiet", *TINY)
    assert code == 0, err
    before = {p: (out / p).read_bytes() for p in os.listdir(out) if (out / p).is_file()}
    real, calls = tfds_output._gunzip, []

    def fail_second(src, dst):
        calls.append(src)
        real(src, dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(tfds_output, "_gunzip", fail_second)
    with pytest.raises(OSError, match="No space left"):
        synthetic.main([str(a) for a in ["--output", out, "--quiet", "--tfds", *TINY]])
    assert {p: (out / p).read_bytes() for p in os.listdir(out) if (out / p).is_file()} == before
    assert not (out / "tfds").exists()
    assert os.listdir(tmp_path) == ["ds"]  # no temporary directory left behind


def test_invalid_dataset_name_is_a_one_line_error():
    with pytest.raises(PipelineError, match=r"^--tfds: dataset name 'Ad-Log' is not a valid "):
        tfds_output.relative_dir({"dataset": "Ad-Log", "schema_version": 3})


def test_quiet_run_prints_nothing_and_does_not_start_tensorflow(tmp_path):
    code = ("import sys; from pipelines import synthetic; synthetic.main(sys.argv[1:]); "
            "print('tensorflow' in sys.modules)")
    argv = ["--output", tmp_path / "ds", "--quiet", "--tfds", *TINY]
    done = subprocess.run([sys.executable, "-c", code, *map(str, argv)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert (done.returncode, done.stderr, done.stdout) == (0, "", "False\n")
    assert (tmp_path / "ds" / "tfds").is_dir()
