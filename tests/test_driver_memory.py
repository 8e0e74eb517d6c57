"""The driver's memory record: start, end, peak and growth per trial of a sweep."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from runner.driver_memory import MemoryWatch, peak_mb, release_freed, resident_mb


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_the_watch_reports_what_the_process_grew_by_per_trial():
    watch = MemoryWatch.start()
    held = np.ones(64 * 2**20 // 8)  # 64 MB, touched
    report = watch.report(trials=16)
    assert report["trials"] == 16
    assert report["rss_end_mb"] - report["rss_start_mb"] == pytest.approx(64, abs=8)
    assert report["rss_growth_kb_per_trial"] == pytest.approx(64 * 1024 / 16, rel=0.15)
    assert report["peak_rss_mb"] >= report["rss_end_mb"] >= resident_mb() - 1 > 0
    del held
    # the high-water mark keeps the freed 64 MB (it may lag the resident size a little)
    assert peak_mb() >= report["peak_rss_mb"] - 1
    assert "rss_growth_kb_per_trial" not in MemoryWatch.start().report(trials=0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_memory_freed_below_live_objects_goes_back_to_the_os():
    chunks = [bytes(4000) + bytes([i % 256]) for i in range(40_000)]  # 160 MB on the heap
    keep = bytes(5000)  # on the heap above them: its top cannot shrink past it
    before = resident_mb()
    del chunks
    freed_but_mapped = resident_mb()
    assert release_freed()
    after = resident_mb()
    assert before - freed_but_mapped < 40  # free() alone kept most of it
    assert freed_but_mapped - after > 100  # malloc_trim returned it
    del keep
