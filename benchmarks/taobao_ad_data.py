"""Generated Taobao Ad Display/Click files in the real files' format and proportions.

The real ``raw_sample.csv`` has 26.6M rows of 1.14M users (about 23 rows a user) over 8 days,
about 5% clicks, 846k adgroups (``ad_feature.csv``: 6.8k categories, 423k campaigns, 255k
customers, 99.8k brands, some NULL) and 1.06M user profiles (``user_profile.csv``, some
fields empty). ``generate(directory, rows)`` writes the three files scaled to ``rows``
impressions with those ratios, for the pipeline benchmark; no real row is used.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from pipelines import taobao_ad

REAL_ROWS = 26_557_961
REAL_LOG_ROWS = 723_268_134  # behavior_log.csv: 22 days of page views, carts, favourites, buys
RATIOS = {"users": 1_141_729 / REAL_ROWS, "adgroups": 846_811 / REAL_ROWS}
PROFILE_SHARE = 1_061_768 / 1_141_729


def _write(path: str, columns: dict):
    """A CSV with an unquoted header line, as the real files have."""
    with open(path, "wb") as f:
        f.write((",".join(columns) + "\n").encode())
        pacsv.write_csv(pa.table(columns), f, pacsv.WriteOptions(include_header=False,
                                                                 quoting_style="none"))


def generate(directory: str, rows: int, seed: int = 0) -> dict:
    """Write raw_sample.csv, ad_feature.csv and user_profile.csv; return their paths."""
    rng = np.random.default_rng(seed)
    users = max(3, int(rows * RATIOS["users"]))
    adgroups = max(10, int(rows * RATIOS["adgroups"]))
    ad_ids = np.arange(1, adgroups + 1)
    brand = rng.integers(1, max(2, adgroups // 8), adgroups).astype(str).astype(object)
    brand[rng.random(adgroups) < 0.3] = "NULL"
    _write(os.path.join(directory, "ad_feature.csv"), {
        "adgroup_id": ad_ids, "cate_id": rng.integers(1, 6770, adgroups),
        "campaign_id": rng.integers(1, max(2, adgroups // 2), adgroups),
        "customer": rng.integers(1, max(2, adgroups // 3), adgroups),
        "brand": pa.array(brand, pa.string()),
        "price": np.round(rng.lognormal(4, 1.2, adgroups), 2)})
    profiled = np.flatnonzero(rng.random(users) < PROFILE_SHARE) + 1
    n = len(profiled)
    profile = {"userid": profiled}
    for field, values in zip(taobao_ad.PROFILE_FIELDS, (13, 13, 2, 7, 3, 3, 2, 4),
                             strict=True):
        column = rng.integers(0, values, n).astype(str).astype(object)
        if field in ("pvalue_level", "new_user_class_level"):
            column[rng.random(n) < 0.4] = ""
        profile[field] = pa.array(column, pa.string())
    _write(os.path.join(directory, "user_profile.csv"), profile)
    user = rng.integers(1, users + 1, rows)
    clk = (rng.random(rows) < 0.05).astype(np.int64)
    pid = np.where(rng.random(rows) < 0.7, "430548_1007", "430539_1007")
    _write(os.path.join(directory, "raw_sample.csv"), {
        "user": user, "time_stamp": rng.integers(*taobao_ad.WINDOW, rows),
        "adgroup_id": rng.zipf(1.5, rows) % adgroups + 1, "pid": pa.array(pid, pa.string()),
        "nonclk": 1 - clk, "clk": clk})
    return {name: os.path.join(directory, f"{name}.csv")
            for name in ("raw_sample", "ad_feature", "user_profile")}


def generate_behavior_log(directory: str, rows: int, impressions: int, seed: int = 1,
                          chunk: int = 5_000_000) -> str:
    """Write behavior_log.csv with ``rows`` events of the users of ``generate(directory,
    impressions)`` over the 22 days before the impressions' last day (about 90% page views,
    brand NULL for about 10%), ``chunk`` rows at a time (bounded memory at any size); return
    its path."""
    rng = np.random.default_rng(seed)
    users = max(3, int(impressions * RATIOS["users"]))
    start = taobao_ad.WINDOW[1] - 22 * 86400
    btags = pa.array(["pv", "cart", "fav", "buy"])
    path = os.path.join(directory, "behavior_log.csv")
    with open(path, "wb") as f:
        f.write(b"user,time_stamp,btag,cate,brand\n")
        for begin in range(0, rows, chunk):
            n = min(chunk, rows - begin)
            brand = pc.cast(pa.array(rng.integers(1, max(2, impressions // 250), n)), pa.string())
            brand = pc.if_else(pa.array(rng.random(n) < 0.1), "NULL", brand)
            btag = btags.take(pa.array(rng.choice(4, n, p=[0.9, 0.04, 0.03, 0.03])))
            table = pa.table({"user": rng.integers(1, users + 1, n),
                              "time_stamp": rng.integers(start, taobao_ad.WINDOW[1], n),
                              "btag": btag, "cate": rng.integers(1, 6770, n), "brand": brand})
            pacsv.write_csv(table, f, pacsv.WriteOptions(include_header=False,
                                                         quoting_style="none"))
    return path


def pipeline_args(files: dict, output: str) -> list[str]:
    """``pipelines.taobao_ad``'s flags for generated ``files`` (``generate``'s, plus
    ``behavior_log`` for the behaviour-log history) writing to ``output``."""
    args = ["--raw-sample", files["raw_sample"], "--ad-feature", files["ad_feature"],
            "--user-profile", files["user_profile"], "--output", output]
    if "behavior_log" in files:
        args += ["--history", "behavior-log", "--behavior-log", files["behavior_log"]]
    return args
