"""The benchmark's progress lines: throttled, whole, within 80 columns (pure logic)."""

from __future__ import annotations

from bench.progress import WIDTH, Progress, progress_line


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_line_says_done_total_and_rate():
    line = progress_line("(d) full pipeline run 2/3", 120_000, 200_000, 1_850.4)
    assert line == "(d) full pipeline run 2/3: 120,000 / 200,000 events, 1,850/s"
    assert progress_line("writing", 7, None, None, unit="states") == "writing: 7 states"


def test_a_long_label_is_shortened_and_the_numbers_are_kept():
    line = progress_line("x" * 200, 1_000_000_000, 2_000_000_000, 123_456_789.0)
    assert len(line) <= WIDTH
    assert line.endswith(": 1,000,000,000 / 2,000,000,000 events, 123,456,789/s")
    assert "...:" in line


def test_lines_come_every_interval_with_the_rate_since_the_last_line():
    clock, out = Clock(), []
    progress = Progress("(b) consume run 1/3", 10_000, clock=clock, write=out.append)
    for t, done in [(1.0, 500), (4.9, 2_000), (5.0, 2_500), (7.0, 3_000), (10.0, 5_000)]:
        clock.now = 100.0 + t
        progress.update(done)
    assert out == [
        "(b) consume run 1/3: 2,500 / 10,000 events, 500/s",  # 2,500 in the first 5 s
        "(b) consume run 1/3: 5,000 / 10,000 events, 500/s",  # 2,500 more in 5 s
    ]
    clock.now = 120.0
    progress.update(5_000)
    assert out[-1] == "(b) consume run 1/3: 5,000 / 10,000 events, 0/s"  # a stall shows


def test_the_closing_line_has_the_mean_rate_and_the_duration():
    clock, out = Clock(), []
    progress = Progress("writing the changelog", 1_000_000, unit="states", clock=clock,
                        write=out.append)  # fmt: skip
    clock.now += 250.0
    assert progress.update(0) is not None
    progress.finish(1_000_000)
    assert out[-1] == "writing the changelog: 1,000,000 / 1,000,000 states, 4,000/s in 250s"


def test_lines_are_whole_lines_for_a_pipe():
    clock, out = Clock(), []
    progress = Progress("(a) passthrough run 1/1", 200_000, clock=clock, write=out.append)
    for i in range(1, 50):
        clock.now += 1.7
        progress.update(i * 4_000)
    progress.finish(200_000)
    assert out and all("\r" not in line and "\n" not in line for line in out)
    assert all(len(line) <= WIDTH for line in out)


def test_the_restore_bench_reads_progress_from_health():
    from bench.restore import RestoreProgress

    watch = RestoreProgress("cold restore of 1,000", 1_000)
    written: list[str] = []
    watch.lines.write, watch.lines.every_s = written.append, 0.0
    assert not watch({"tables_recovered": False, "changelog_remaining": 0})  # not yet begun
    assert not watch({"tables_recovered": False, "changelog_remaining": 400})
    assert watch({"tables_recovered": True, "changelog_remaining": 0})
    assert [line.split(": ")[1].split(" states")[0] for line in written] == [
        "0 / 1,000",
        "600 / 1,000",
        "1,000 / 1,000",
    ]
